//! `monitor.heartbeat.syn` (apis.md §9): terminal heartbeats for transaction
//! assurance (交易保障).

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{Extra, is_empty_extra};
use crate::biz_api;

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeartbeatSyn {
    /// `FP` (当面付).
    pub product: String,
    /// `CR` cash register, `STORE`, `VM` vending machine.
    #[serde(rename = "type")]
    pub equipment_type: String,
    pub equipment_id: String,
    /// `10` started, `20` stopped, `30` normal.
    pub equipment_status: String,
    /// `yyyy-MM-dd HH:mm:ss`.
    pub time: String,
    pub store_id: String,
    /// `2G`, `3G`, `WIFI`, `LAN`.
    pub network_type: String,
    pub sys_service_provider_id: Option<String>,
    pub mac: Option<String>,
    /// JSON array of `{OTN, TC, STAT}` since the last successful heartbeat.
    pub trade_info: Option<String>,
    pub exception_info: Option<String>,
    pub extend_info: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HeartbeatSynResponse {
    pub pid: Option<String>,
    #[serde(flatten, skip_serializing_if = "is_empty_extra")]
    pub extra: Extra,
}

biz_api!(HeartbeatSyn, "monitor.heartbeat.syn", HeartbeatSynResponse);
