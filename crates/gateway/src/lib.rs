//! The acquirer gateway: the bank's side of indirect face-to-face payment.
//! Channels and terminals call it exactly as they would call Alipay; it
//! checks what the acquirer must check, forwards to Alipay with the
//! acquirer's credentials, drives every trade to a closed end, receives
//! Alipay's notifications and forwards them, and keeps the books.
//!
//! Code map:
//! - [`config`]: the TOML file and `JIANLIAN_…` overrides, checked into [`Settings`].
//! - [`service`]: the shared state every surface works through.
//! - [`upstream`]: the acquirer's Alipay client and the mapping of answers to observations.
//! - [`channel_api`]: `POST /gateway.do`, every method.
//! - [`notify_in`]: `POST /notify/alipay`.
//! - [`notify_out`]: delivery of the outbox to channels.
//! - [`worker`]: the job runner (closed loop, refund confirmation, deliveries, sweeper).
//! - [`ops`]: operator actions shared by the CLI and the admin API.
//! - [`app`]: the router and the [`Application`] seam.
//! - [`metrics`]: the Prometheus exposition at `/metrics`.
//! - [`error`]: the error type of the JSON surfaces.
//!
//! **Invariant:** every change of a trade goes through the store's single
//! write path (`Store::apply_observation`); the gateway never writes trade
//! state itself.
//!
//! **Invariant:** only the request that committed a trade intent calls
//! `alipay.trade.pay` for it; every repeat is answered from the record.

pub mod app;
pub mod channel_api;
pub mod config;
pub mod error;
pub mod metrics;
pub mod notify_in;
pub mod notify_out;
pub mod ops;
pub mod service;
pub mod upstream;
pub mod worker;

pub use app::{Application, Running, router};
pub use config::{Config, ConfigError, Settings};
pub use error::Error;
pub use service::{Service, StartError};
pub use worker::{RunReport, run_due};

use jianlian_core::ledger::{Account, TrialBalance};

/// A trial balance as JSON: every account's balance in yuan (debits positive).
pub fn ledger_json(balance: &TrialBalance) -> serde_json::Value {
    let accounts: serde_json::Map<String, serde_json::Value> = balance
        .balances
        .iter()
        .map(|(account, fen): (&Account, &jianlian_alipay::Fen)| {
            (account.code(), serde_json::Value::from(fen.to_yuan()))
        })
        .collect();
    serde_json::json!({ "balanced": true, "accounts": accounts })
}
