//! Indirect merchant onboarding (apis.md §4): `ant.merchant.expand.indirect.*`.
//! The acquirer reports each merchant; Alipay answers with its smid
//! (`sub_merchant_id`). Alipay has no list and no delete (R2.1).

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Extra, is_empty_extra};
use crate::biz_api;

/// A contact of the merchant.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContactInfo {
    pub name: String,
    /// `LEGAL_PERSON`, `CONTROLLER`, `AGENT`, `OTHER`.
    #[serde(rename = "type")]
    pub contact_type: Option<String>,
    pub id_card_no: Option<String>,
    pub mobile: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub tag: Option<Vec<String>>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// An address of the merchant.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AddressInfo {
    pub province_code: Option<String>,
    pub city_code: Option<String>,
    pub district_code: Option<String>,
    pub address: Option<String>,
    pub longitude: Option<String>,
    pub latitude: Option<String>,
    pub poiid: Option<String>,
    /// `BUSINESS_ADDRESS` (default).
    #[serde(rename = "type")]
    pub address_type: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// A settlement card of the merchant at the bank.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BankCardInfo {
    pub card_no: Option<String>,
    pub card_name: Option<String>,
    pub bank_branch_name: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// A website or app of the merchant.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SiteInfo {
    pub site_type: Option<String>,
    pub site_url: Option<String>,
    pub site_name: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// The merchant's data, shared by create, modify and the query answer. Every
/// field is optional here, and [`IndirectCreate`] checks none: Alipay's
/// required flags for these APIs are unconfirmed (apis.md §4 marks them U)
/// and partly conditional (`category_id` or `mcc`), so the receiver decides —
/// Alipay, or the sandbox, whose checks docs/sandbox.md lists — and answers
/// 40002 `isv.invalid-parameter` naming the field.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MerchantProfile {
    pub external_id: Option<String>,
    pub name: Option<String>,
    pub alias_name: Option<String>,
    pub service_phone: Option<String>,
    pub category_id: Option<String>,
    pub mcc: Option<String>,
    pub org_pid: Option<String>,
    /// PID of whoever brought the merchant (R2.3).
    pub source: Option<String>,
    pub contact_info: Option<Vec<ContactInfo>>,
    pub address_info: Option<Vec<AddressInfo>>,
    pub bankcard_info: Option<Vec<BankCardInfo>>,
    pub pay_code_info: Option<Vec<String>>,
    pub logon_id: Option<Vec<String>>,
    pub business_license: Option<String>,
    /// `NATIONAL_LEGAL`, `NATIONAL_LEGAL_MERGE`, `INST_RGST_CTF`.
    pub business_license_type: Option<String>,
    pub memo: Option<String>,
    pub service_codes: Option<Vec<String>>,
    pub site_info: Option<Vec<SiteInfo>>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

/// `ant.merchant.expand.indirect.create`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndirectCreate {
    #[serde(flatten)]
    pub profile: MerchantProfile,
}

/// Answer of create and modify.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndirectCreateResponse {
    pub sub_merchant_id: Option<String>,
    pub service_codes: Option<Vec<String>>,
    pub service_fail_reason: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(
    IndirectCreate,
    "ant.merchant.expand.indirect.create",
    IndirectCreateResponse
);

/// `ant.merchant.expand.indirect.modify`: the smid and the fields to change.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndirectModify {
    pub sub_merchant_id: String,
    #[serde(flatten)]
    pub profile: MerchantProfile,
}

biz_api!(
    IndirectModify,
    "ant.merchant.expand.indirect.modify",
    IndirectCreateResponse
);

/// `ant.merchant.expand.indirect.query`: by smid or by `external_id`.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndirectQuery {
    pub sub_merchant_id: Option<String>,
    pub external_id: Option<String>,
    pub org_pid: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndirectQueryResponse {
    pub sub_merchant_id: Option<String>,
    /// `INDIRECT_LEVEL_M0` … `INDIRECT_LEVEL_M3`.
    pub indirect_level: Option<String>,
    #[serde(flatten)]
    pub profile: MerchantProfile,
}

biz_api!(
    IndirectQuery,
    "ant.merchant.expand.indirect.query",
    IndirectQueryResponse
);
