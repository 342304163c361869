//! `alipay.data.dataservice.bill.downloadurl.query` (apis.md §5.1): where to
//! download a day's bill.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Extra, is_empty_extra};
use crate::biz_api;

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BillDownloadUrlQuery {
    /// `trade` for face-to-face acquiring; `signcustomer` for fund flow.
    pub bill_type: String,
    /// `yyyy-MM-dd` (daily) or `yyyy-MM` (monthly); never today.
    pub bill_date: String,
    pub smid: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BillDownloadUrlQueryResponse {
    /// Valid about 30 seconds.
    pub bill_download_url: Option<String>,
    pub bill_file_code: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(
    BillDownloadUrlQuery,
    "alipay.data.dataservice.bill.downloadurl.query",
    BillDownloadUrlQueryResponse
);
