//! Alipay's `gateway.do` protocol ("OpenAPI 2.0"), usable from both sides of the
//! wire: a client calling Alipay, and a server playing Alipay (the sandbox) or
//! accepting Alipay-style requests (the gateway's channel API).
//!
//! The byte-level rules come from `shared/spec/protocol.md`; the APIs from
//! `shared/spec/apis.md`. This crate depends on no other jianlian crate, and
//! without its `client` feature it does no I/O.

pub mod aes;
pub mod api;
pub mod auth_code;
pub mod cert;
#[cfg(feature = "client")]
pub mod client;
pub mod codes;
pub mod form;
pub mod keys;
mod legacy_sha1;
pub mod money;
pub mod notify;
pub mod request;
pub mod response;
pub mod server;
pub mod time;

pub use aes::AesKey;
pub use api::{AlipayApi, ApiParams};
pub use auth_code::PaymentCodeRule;
pub use codes::{Action, Code};
pub use form::Charset;
pub use keys::{KeyError, PrivateKey, PublicKey, SignType};
pub use money::{Fen, MoneyError, Rate};
pub use response::{Failure, Outcome, Reply, UnknownReason};
pub use server::{ErrorReply, IncomingRequest};
pub use time::{BeijingTime, Clock, ManualClock, SystemClock};
