//! "Run due work": the one step function behind every timed behaviour. It
//! applies the timers that became due (trade timeouts, refund windows, QR and
//! code expiry, and any kind of timed work added later through [`TimedWork`])
//! and makes the notification attempts that are due. Advancing the clock runs
//! it at every instant where something became due, in time order, before the
//! advance returns; in real-time mode a ticker runs it every second.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::SandboxError;
use crate::notify;
use crate::sandbox::Shared;
use crate::state::Core;

/// A kind of timed work (trade timers now; bills and payouts later).
pub trait TimedWork: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    /// The earliest instant with work, if any.
    fn next_due(&self, core: &Core) -> Option<Timestamp>;
    /// Does what is due at `now`; returns how many records changed.
    fn run(&self, core: &mut Core, now: Timestamp) -> usize;
}

/// Trade timeouts, refund windows, QR and payment-code expiry.
#[derive(Debug, Clone, Copy, Default)]
pub struct TradeTimers;

impl TimedWork for TradeTimers {
    fn name(&self) -> &'static str {
        "trade timers"
    }
    fn next_due(&self, core: &Core) -> Option<Timestamp> {
        core.next_trade_timer()
    }
    fn run(&self, core: &mut Core, now: Timestamp) -> usize {
        core.run_trade_timers(now)
    }
}

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DueReport {
    /// Records changed by timers.
    pub timers: usize,
    /// Notification attempts made.
    pub deliveries: usize,
}

/// Most rounds in one run (each round claims a batch of deliveries).
const ROUNDS_MAX: usize = 64;
/// Most due instants visited by one advance.
const ADVANCE_STEPS_MAX: usize = 100_000;
/// Longest single advance: 400 days.
pub const ADVANCE_MAX_SECS: i64 = 400 * 24 * 3600;

/// Runs the work due now; serialised with every other run.
pub async fn run_due(shared: &Arc<Shared>) -> Result<DueReport, SandboxError> {
    let _guard = shared.due_lock.lock().await;
    run_due_locked(shared).await
}

async fn run_due_locked(shared: &Arc<Shared>) -> Result<DueReport, SandboxError> {
    let mut report = DueReport::default();
    for _ in 0..ROUNDS_MAX {
        let now = shared.clock.now();
        let work = shared.timed_work.clone();
        let (changed, deliveries) = shared.with(|core| {
            let changed: usize = work.iter().map(|w| w.run(core, now)).sum();
            (changed, core.claim_deliveries(now))
        })?;
        report.timers += changed;
        if deliveries.is_empty() {
            break;
        }
        report.deliveries += deliveries.len();
        let results = notify::deliver(&shared.http, deliveries).await;
        let at = shared.clock.now();
        shared.with(|core| {
            for r in &results {
                core.record_delivery(r, at);
            }
        })?;
    }
    Ok(report)
}

/// The earliest instant any timed work is due.
pub fn next_due(shared: &Arc<Shared>) -> Result<Option<Timestamp>, SandboxError> {
    let work = shared.timed_work.clone();
    shared.with(|core| {
        work.iter()
            .filter_map(|w| w.next_due(core))
            .chain(core.next_notice_due())
            .min()
    })
}

/// Moves the clock forward by `seconds`, stopping at every instant where work
/// became due and running it, so that the world after the advance is the one
/// that would have been had the time really passed.
pub async fn advance(shared: &Arc<Shared>, seconds: i64) -> Result<Timestamp, SandboxError> {
    if !(0..=ADVANCE_MAX_SECS).contains(&seconds) {
        return Err(SandboxError::BadRequest(format!(
            "seconds must be between 0 and {ADVANCE_MAX_SECS}"
        )));
    }
    let _guard = shared.due_lock.lock().await;
    let start = shared.clock.now();
    let target = start
        .checked_add(SignedDuration::from_secs(seconds))
        .map_err(|e| SandboxError::BadRequest(e.to_string()))?;
    for _ in 0..ADVANCE_STEPS_MAX {
        run_due_locked(shared).await?;
        match next_due(shared)? {
            Some(at) if at <= target => {
                if at > shared.clock.now() {
                    shared.clock.move_to(at);
                } else {
                    // Work due now that a run could not finish (a batch limit):
                    // go round again.
                    continue;
                }
            }
            _ => break,
        }
    }
    shared.clock.move_to(target);
    let offset = shared.clock.offset_secs();
    shared.with(|core| {
        core.st.meta.clock_offset_secs = offset;
        core.touch_meta();
    })?;
    run_due_locked(shared).await?;
    Ok(shared.clock.now())
}
