//! Time: instants in UTC inside, Beijing wall-clock text at the wire, and the
//! injected [`Clock`].
//!
//! Alipay's `yyyy-MM-dd HH:mm:ss` is always Beijing time (UTC+08:00, no DST).
//! Logic never reads the system time; it asks a [`Clock`], so tests and the
//! sandbox run on virtual time.

use std::fmt;
use std::sync::{Arc, Mutex};

use jiff::civil::{Date, DateTime};
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

/// Beijing time: UTC+08:00 all year.
pub fn beijing() -> TimeZone {
    TimeZone::fixed(BEIJING_OFFSET)
}

const BEIJING_OFFSET: Offset = Offset::constant(8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("time {0:?} is not a Beijing time of the form yyyy-MM-dd HH:mm:ss")]
pub struct TimeError(pub String);

/// Formats an instant as Alipay's `yyyy-MM-dd HH:mm:ss` in Beijing time.
pub fn format_beijing(at: Timestamp) -> String {
    let dt = BEIJING_OFFSET.to_datetime(at);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// Formats with milliseconds (`yyyy-MM-dd HH:mm:ss.SSS`), as in `gmt_refund`.
pub fn format_beijing_millis(at: Timestamp) -> String {
    let dt = BEIJING_OFFSET.to_datetime(at);
    format!(
        "{}.{:03}",
        format_beijing(at),
        dt.subsec_nanosecond() / 1_000_000
    )
}

/// Parses `yyyy-MM-dd HH:mm:ss` (exactly 19 characters, zero padded) as Beijing time.
pub fn parse_beijing(text: &str) -> Result<Timestamp, TimeError> {
    let bad = || TimeError(text.to_owned());
    let b = text.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(bad());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i16, TimeError> {
        text.get(r).and_then(|s| s.parse().ok()).ok_or_else(bad)
    };
    let dt = DateTime::new(
        num(0..4)?,
        i8::try_from(num(5..7)?).map_err(|_| bad())?,
        i8::try_from(num(8..10)?).map_err(|_| bad())?,
        i8::try_from(num(11..13)?).map_err(|_| bad())?,
        i8::try_from(num(14..16)?).map_err(|_| bad())?,
        i8::try_from(num(17..19)?).map_err(|_| bad())?,
        0,
    )
    .map_err(|_| bad())?;
    BEIJING_OFFSET.to_timestamp(dt).map_err(|_| bad())
}

/// The Beijing calendar date of an instant: the business date of trades, bills
/// and settlement.
pub fn beijing_date(at: Timestamp) -> Date {
    BEIJING_OFFSET.to_datetime(at).date()
}

/// The instant a Beijing calendar date starts (00:00:00 +08:00).
pub fn beijing_midnight(date: Date) -> Timestamp {
    // Every civil date in jiff's range maps to a valid instant at a fixed offset.
    BEIJING_OFFSET
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A Beijing wall-clock time on a date (e.g. bills at 09:00, payouts at 07:00).
pub fn beijing_at(date: Date, hour: i8, minute: i8) -> Timestamp {
    let time = jiff::civil::Time::new(hour, minute, 0, 0).unwrap_or(jiff::civil::Time::midnight());
    BEIJING_OFFSET
        .to_timestamp(date.to_datetime(time))
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// An instant written at the wire as Beijing `yyyy-MM-dd HH:mm:ss`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BeijingTime(pub Timestamp);

impl BeijingTime {
    pub fn timestamp(self) -> Timestamp {
        self.0
    }
}

impl From<Timestamp> for BeijingTime {
    fn from(t: Timestamp) -> Self {
        BeijingTime(t)
    }
}

impl fmt::Display for BeijingTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_beijing(self.0))
    }
}

impl fmt::Debug for BeijingTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BeijingTime({})", format_beijing(self.0))
    }
}

impl serde::Serialize for BeijingTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts `yyyy-MM-dd HH:mm:ss`, and the `.S…` fraction some fields carry
/// (`gmt_refund`), which is dropped.
impl<'de> serde::Deserialize<'de> for BeijingTime {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        let main = match text.split_once('.') {
            Some((main, frac)) if !frac.is_empty() && frac.bytes().all(|b| b.is_ascii_digit()) => {
                main
            }
            _ => text.as_str(),
        };
        parse_beijing(main)
            .map(BeijingTime)
            .map_err(serde::de::Error::custom)
    }
}

/// Where the current time comes from. Logic takes a `Clock`; only `main` picks
/// [`SystemClock`].
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> Timestamp;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to: tests and the sandbox's virtual time.
/// Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock starting at a Beijing wall-clock time such as `2026-03-02 10:00:00`.
    pub fn at_beijing(text: &str) -> Result<ManualClock, TimeError> {
        parse_beijing(text).map(ManualClock::new)
    }

    pub fn set(&self, at: Timestamp) {
        *self.lock() = at;
    }

    /// Moves time forward (a negative duration is ignored: time never goes back).
    pub fn advance(&self, by: SignedDuration) -> Timestamp {
        let mut now = self.lock();
        if by.is_positive() {
            *now = now.checked_add(by).unwrap_or(*now);
        }
        *now
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // A poisoned lock still holds a valid timestamp.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_round_trip() {
        let t = parse_beijing("2024-05-13 17:49:20").unwrap();
        assert_eq!(t.to_string(), "2024-05-13T09:49:20Z");
        assert_eq!(format_beijing(t), "2024-05-13 17:49:20");
        assert_eq!(beijing_date(t).to_string(), "2024-05-13");
    }

    #[test]
    fn date_boundary_is_beijing_midnight() {
        let last = parse_beijing("2026-03-01 23:59:59").unwrap();
        let first = parse_beijing("2026-03-02 00:00:00").unwrap();
        assert_eq!(beijing_date(last).to_string(), "2026-03-01");
        assert_eq!(beijing_date(first).to_string(), "2026-03-02");
        assert_eq!(beijing_midnight(beijing_date(first)), first);
    }

    #[test]
    fn rejects_loose_formats() {
        for bad in [
            "2024-5-13 17:49:20",
            "2024-05-13T17:49:20",
            "2024-05-13 17:49",
            "2024-02-30 00:00:00",
            "2024-05-13 24:00:00",
        ] {
            assert!(parse_beijing(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manual_clock_moves_forward_only() {
        let clock = ManualClock::at_beijing("2026-01-01 00:00:00").unwrap();
        let start = clock.now();
        clock.advance(SignedDuration::from_secs(5));
        assert_eq!(
            clock.now().duration_since(start),
            SignedDuration::from_secs(5)
        );
        clock.advance(SignedDuration::from_secs(-10));
        assert_eq!(
            clock.now().duration_since(start),
            SignedDuration::from_secs(5)
        );
    }
}
