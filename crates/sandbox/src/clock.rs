//! Virtual time. Tests (and the gateway's tests) share a `ManualClock` with the
//! sandbox; the standalone sandbox runs on the machine clock plus an offset
//! that `POST /sandbox/clock/advance` increases. Either way, every timed rule
//! (code expiry, trade timeouts, notification retries, refund window) reads
//! this clock and nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use jiff::{SignedDuration, Timestamp};

use jianlian_alipay::{Clock, ManualClock};

/// Where the sandbox's time comes from.
#[derive(Debug, Clone)]
pub enum SandboxClock {
    /// Time moves only when told to (shared with the test that made it).
    Manual(ManualClock),
    /// The machine clock plus an offset in seconds (persisted).
    RealTime(RealTimeClock),
}

impl SandboxClock {
    pub fn manual(clock: ManualClock) -> SandboxClock {
        SandboxClock::Manual(clock)
    }

    pub fn real_time() -> SandboxClock {
        SandboxClock::RealTime(RealTimeClock::default())
    }

    pub fn now(&self) -> Timestamp {
        match self {
            SandboxClock::Manual(c) => c.now(),
            SandboxClock::RealTime(c) => c.now(),
        }
    }

    /// Moves the clock forward to `at` (never back).
    pub fn move_to(&self, at: Timestamp) {
        let now = self.now();
        if at <= now {
            return;
        }
        match self {
            SandboxClock::Manual(c) => c.set(at),
            SandboxClock::RealTime(c) => {
                // The offset is whole seconds: round up, or the clock would
                // stop short of `at` and work due at `at` would wait for the
                // end of the advance.
                let d = at.duration_since(now);
                let by = d.as_secs() + i64::from(d.subsec_nanos() > 0);
                c.offset_secs.fetch_add(by.max(0), Ordering::SeqCst);
            }
        }
    }

    /// The offset to persist (real-time mode), or 0.
    pub fn offset_secs(&self) -> i64 {
        match self {
            SandboxClock::Manual(_) => 0,
            SandboxClock::RealTime(c) => c.offset_secs.load(Ordering::SeqCst),
        }
    }

    pub fn set_offset_secs(&self, secs: i64) {
        if let SandboxClock::RealTime(c) = self {
            c.offset_secs.store(secs, Ordering::SeqCst);
        }
    }

    pub fn is_real_time(&self) -> bool {
        matches!(self, SandboxClock::RealTime(_))
    }
}

impl Clock for SandboxClock {
    fn now(&self) -> Timestamp {
        SandboxClock::now(self)
    }
}

/// The machine clock shifted forward by an offset.
#[derive(Debug, Clone, Default)]
pub struct RealTimeClock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock for RealTimeClock {
    fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_secs(self.offset_secs.load(Ordering::SeqCst));
        let now = Timestamp::now();
        now.checked_add(offset).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_only() {
        let manual = ManualClock::at_beijing("2026-03-02 10:00:00").unwrap();
        let clock = SandboxClock::manual(manual.clone());
        let start = clock.now();
        clock.move_to(start.checked_add(SignedDuration::from_secs(60)).unwrap());
        assert_eq!(manual.now().duration_since(start).as_secs(), 60);
        clock.move_to(start);
        assert_eq!(manual.now().duration_since(start).as_secs(), 60);

        let real = SandboxClock::real_time();
        let before = real.now();
        real.move_to(before.checked_add(SignedDuration::from_secs(3600)).unwrap());
        assert!(real.offset_secs() >= 3599);
        // Never short of the instant asked for, whatever its fraction.
        let at = real
            .now()
            .checked_add(SignedDuration::from_millis(1500))
            .unwrap();
        real.move_to(at);
        assert!(real.now() >= at);
    }
}
