//! End-to-end tests of the acquirer gateway: the sandbox playing Alipay and
//! the gateway in one process on 127.0.0.1:0, one shared manual clock, a
//! channel calling through the protocol crate's client. One module per rule
//! group of business-rules.md (R2–R4, R7–R10) plus the concurrency, restart,
//! security, observability and official-SDK scenarios.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

mod admin;
mod barcode;
mod merchants;
mod notifications;
mod observability;
mod refunds;
mod resilience;
mod routing;
mod sdk;
mod security;
