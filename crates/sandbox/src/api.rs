//! One authenticated gateway call and its answer, and the dispatch from method
//! name to the engine. Engine functions are pure over the [`Core`]: they read
//! and change records and return the node to sign; HTTP, signing and faults
//! live in `gateway`.

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

use jianlian_alipay::server::success_node;
use jianlian_alipay::{Charset, Code, ErrorReply, IncomingRequest, SignType};

use crate::model::App;
use crate::state::Core;

/// An authenticated call.
#[derive(Debug, Clone)]
pub struct Call {
    pub app: App,
    pub method: String,
    /// `biz_content`, decrypted.
    pub biz: Option<String>,
    pub request: IncomingRequest,
    pub notify_url: Option<String>,
    pub sign_type: SignType,
    pub charset: Charset,
    pub now: Timestamp,
}

/// A success (10000) or in-progress (10003) answer: the node JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub code: Code,
    pub node_json: String,
}

pub type Answer = Result<Reply, ErrorReply>;

/// Serializes a typed response body under `code`.
pub fn reply<T: Serialize>(code: Code, body: &T) -> Answer {
    success_node(code, body)
        .map(|node_json| Reply { code, node_json })
        .map_err(|_| ErrorReply::unknown())
}

/// Parses `biz_content` into the API's request type, naming the bad field.
pub fn parse_biz<T: DeserializeOwned>(call: &Call) -> Result<T, ErrorReply> {
    let biz = call
        .biz
        .as_deref()
        .ok_or_else(|| ErrorReply::invalid_parameter("biz_content is required for this method"))?;
    jianlian_alipay::api::parse_biz(biz).map_err(ErrorReply::invalid_parameter)
}

/// A 40004 `ACQ.*` business failure with the protocol crate's message.
pub fn acq(sub_code: &str, detail: &str) -> ErrorReply {
    let base = jianlian_alipay::codes::sub_code(sub_code).map_or("", |s| s.sub_msg);
    let msg = if detail.is_empty() {
        base.to_owned()
    } else if base.is_empty() {
        detail.to_owned()
    } else {
        format!("{base}: {detail}")
    };
    ErrorReply::business(sub_code, msg)
}

/// The methods the sandbox serves.
pub const METHODS: &[&str] = &[
    "alipay.trade.pay",
    "alipay.trade.precreate",
    "alipay.trade.create",
    "alipay.trade.query",
    "alipay.trade.cancel",
    "alipay.trade.close",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "ant.merchant.expand.indirect.create",
    "ant.merchant.expand.indirect.query",
    "ant.merchant.expand.indirect.modify",
    "alipay.system.oauth.token",
    "alipay.user.info.share",
    "alipay.data.dataservice.bill.downloadurl.query",
    "alipay.open.app.alipaycert.download",
];

/// Runs a call against the engine.
pub fn dispatch(core: &mut Core, call: &Call) -> Answer {
    match call.method.as_str() {
        "alipay.trade.pay" => core.trade_pay(call),
        "alipay.trade.precreate" => core.trade_precreate(call),
        "alipay.trade.create" => core.trade_create(call),
        "alipay.trade.query" => core.trade_query(call),
        "alipay.trade.cancel" => core.trade_cancel(call),
        "alipay.trade.close" => core.trade_close(call),
        "alipay.trade.refund" => core.trade_refund(call),
        "alipay.trade.fastpay.refund.query" => core.refund_query(call),
        "ant.merchant.expand.indirect.create" => core.merchant_create(call),
        "ant.merchant.expand.indirect.query" => core.merchant_query(call),
        "ant.merchant.expand.indirect.modify" => core.merchant_modify(call),
        "alipay.system.oauth.token" => core.oauth_token(call),
        "alipay.user.info.share" => core.user_info_share(call),
        "alipay.data.dataservice.bill.downloadurl.query" => core.bill_download_url(call),
        "alipay.open.app.alipaycert.download" => core.alipaycert_download(call),
        _ => Err(ErrorReply::new(
            Code::InvalidArguments,
            "isv.invalid-method",
            format!(
                "不存在的方法名: {} is not served by the sandbox",
                call.method
            ),
        )),
    }
}
