//! jianlian's offline Alipay sandbox: Alipay played faithfully on one machine.
//! The same `gateway.do` protocol and signatures (through `jianlian-alipay`),
//! the same trade rules (business-rules.md R2–R13, apis.md), the same
//! notifications, plus a virtual clock, fault injection and truth endpoints so
//! every rule and every failure can be tested in seconds.
//!
//! It is Alipay, not the bank: it depends on the protocol crate and third-party
//! crates only. Start it in process with [`Sandbox::start`], or as
//! `jianlian sandbox`.

pub mod api;
pub mod bills;
pub mod bills_control;
pub mod calendar;
pub mod certs;
pub mod clock;
pub mod control;
pub mod faults;
pub mod fees;
pub mod funding;
pub mod gateway;
pub mod ids;
pub mod journal;
pub mod merchants;
pub mod model;
pub mod notify;
pub mod oauth;
pub mod refunds;
pub mod sandbox;
pub mod scheduler;
pub mod settlement;
pub mod sftp;
pub mod state;
pub mod trades;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use bills::BillRecord;
pub use calendar::{Calendar, CalendarError};
pub use clock::SandboxClock;
pub use faults::{FaultAction, FaultRule};
pub use sandbox::{
    AppCreated, AppSpec, BillingOptions, BuyerCreated, BuyerSpec, CardSpec, Sandbox, SandboxCerts,
    SandboxConfig, SandboxHandle, Shared, VoucherSpec,
};
pub use scheduler::{DueReport, TimedWork};
pub use settlement::{Payout, PayoutFilter, PayoutStatus};
pub use sftp::{SftpInfo, SftpUserSpec, SftpUserView};

/// Why a sandbox operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Journal(#[from] journal::JournalError),
    #[error("cannot start the sandbox: {0}")]
    Startup(String),
    #[error("{0}")]
    Certs(#[from] certs::CertError),
}

impl From<trades::ActionError> for SandboxError {
    fn from(e: trades::ActionError) -> Self {
        match e {
            trades::ActionError::NotFound(m) => SandboxError::NotFound(m),
            trades::ActionError::Conflict(m) => SandboxError::Conflict(m),
            trades::ActionError::Invalid(m) => SandboxError::BadRequest(m),
        }
    }
}

/// The HTTP surface: `gateway.do`, the OAuth page, bill downloads and the
/// control API.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/gateway.do", get(gateway::handler).post(gateway::handler))
        .route(
            "/oauth2/publicAppAuthorize.htm",
            get(gateway::authorize_page),
        )
        .route("/sandbox", get(control::index))
        .route("/sandbox/apps", post(control::create_app))
        .route(
            "/sandbox/apps/{app_id}",
            get(control::get_app).patch(control::update_app),
        )
        .route("/sandbox/certs", get(control::certs))
        .route("/sandbox/buyers", post(control::create_buyer))
        .route("/sandbox/buyers/{buyer_id}", get(control::get_buyer))
        .route(
            "/sandbox/buyers/{buyer_id}/payment-codes",
            post(control::payment_code),
        )
        .route(
            "/sandbox/buyers/{buyer_id}/security-codes",
            post(control::security_code),
        )
        .route("/sandbox/trades", get(control::list_trades))
        .route("/sandbox/trades/{trade_no}", get(control::get_trade))
        .route("/sandbox/trades/{trade_no}/confirm", post(control::confirm))
        .route("/sandbox/trades/{trade_no}/abandon", post(control::abandon))
        .route("/sandbox/qr/scan", post(control::scan))
        .route("/sandbox/oauth/authorize", post(control::authorize))
        .route("/sandbox/merchants/{smid}", get(control::get_merchant))
        .route(
            "/sandbox/merchants/{smid}/risk",
            post(control::merchant_risk),
        )
        .route("/sandbox/clock", get(control::clock))
        .route("/sandbox/clock/advance", post(control::advance))
        .route("/sandbox/run-due", post(control::run_due))
        .route(
            "/sandbox/faults",
            post(control::add_fault)
                .get(control::list_faults)
                .delete(control::clear_faults),
        )
        .route("/sandbox/ledger", get(control::ledger))
        .route("/sandbox/notifications", get(control::notifications))
        .route("/downloadBillFile.resource", get(bills::download))
        .route("/sandbox/bills", get(bills_control::list_bills))
        .route(
            "/sandbox/bills/{pid}/{date}/{file}",
            get(bills_control::bill_file),
        )
        .route("/sandbox/sftp", get(bills_control::sftp_info))
        .route(
            "/sandbox/sftp/users/{pid}",
            get(bills_control::get_sftp_user)
                .put(bills_control::put_sftp_user)
                .delete(bills_control::delete_sftp_user),
        )
        .route("/sandbox/settlements", get(bills_control::settlements))
        .route("/sandbox/calendar", get(bills_control::calendar))
        .layer(DefaultBodyLimit::max(
            jianlian_alipay::server::REQUEST_BODY_MAX_BYTES + 4096,
        ))
        .with_state(shared)
}
