//! The acquirer's domain, pure: what a bank acting as indirect acquirer knows
//! and decides, with no I/O, no async and no database types.
//!
//! Code map:
//! - [`ids`]: identifiers that parse instead of validate.
//! - [`channel`]: channels and the visibility rule over the channel tree.
//! - [`merchant`]: the merchant registry, onboarding states, `source`, stores, terminals.
//! - [`trade`]: trades and **the** transition function fed by observations.
//! - [`closed_loop`]: what to do next for an unresolved trade (poll, query, cancel).
//! - [`refund`]: refunds, their states and the cap on refunded amounts.
//! - [`fees`]: fee rates, the credit split, fee returns.
//! - [`ledger`]: the double-entry books and their check.
//! - [`notify`]: the outbox model, the retry schedule and the notify-URL policy.
//!
//! The store (`jianlian-store`) persists these types and runs each transition
//! in one transaction; the gateway calls Alipay and feeds the answers back.

pub mod channel;
pub mod closed_loop;
pub mod fees;
pub mod ids;
pub mod ledger;
pub mod merchant;
pub mod notify;
pub mod refund;
pub mod trade;

pub use closed_loop::{LoopPolicy, NextAction, Planned, Step, StepKind, next_action, plan};
pub use ids::{
    AppId, ChannelOrderNo, ExternalId, IdError, MerchantId, Pid, RefundId, RefundRequestNo, Smid,
    StoreCode, TerminalId, TradeId, UpstreamOrderNo,
};
pub use trade::{Applied, Observation, Trade, TradeState, apply_observation};
