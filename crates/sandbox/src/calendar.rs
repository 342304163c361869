//! The Chinese working-day calendar (节假日 and 调休) that other-bank payouts
//! follow (R9.2: "T+1 working day; public holidays push it further").
//!
//! Whether a date is a working day is a fact published each year by the State
//! Council, not a rule that can be computed: so the calendar is data. The
//! sandbox ships 2024–2026 (`data/cn_calendar.csv`, exported once from PyPI
//! `chinesecalendar` 1.11.0 and checked against the notices; see
//! dependencies.md §7), more years load from a file in the same format, and a
//! date in a year without data is an error, never a guess.
//!
//! Format: a `date,kind,name` header, then one line per special day:
//! `yyyy-MM-dd,off,<holiday>` (a public holiday, no work) or
//! `yyyy-MM-dd,workday,<holiday>` (a weekend day worked to make up for a
//! holiday). Every other date is a working day from Monday to Friday. Blank
//! lines and lines starting with `#` are ignored. A year counts as known when
//! at least one line names it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use jiff::ToSpan;
use jiff::civil::{Date, Weekday};
use serde::Serialize;

/// The calendar shipped with the sandbox: 2024, 2025 and 2026.
const BUILTIN_CSV: &str = include_str!("../data/cn_calendar.csv");
const HEADER: &str = "date,kind,name";
/// Longest stretch without a working day that a search crosses before it
/// calls the data broken (the longest Chinese holiday is 9 days).
const SEARCH_DAYS_MAX: i32 = 40;

/// What the data says about a special day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    /// A public holiday (休): nobody works, whatever the weekday.
    Off,
    /// A make-up working day (调休上班) on a weekend.
    Workday,
}

/// Why the calendar cannot answer or cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error(
        "the working-day calendar has no data for {year} (it knows {known}); \
         load that year's holidays with --calendar FILE"
    )]
    UnknownYear { year: i16, known: String },
    #[error("calendar {origin} line {line}: {reason}")]
    Malformed {
        origin: String,
        line: usize,
        reason: String,
    },
    #[error("calendar file {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("no working day within {SEARCH_DAYS_MAX} days after {0}: the calendar data is wrong")]
    NoWorkingDay(Date),
}

/// One day as the calendar sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayInfo {
    pub date: Date,
    pub working_day: bool,
    /// Set for public holidays and make-up working days.
    pub kind: Option<DayKind>,
    /// The holiday the special day belongs to.
    pub holiday: Option<String>,
}

/// Public holidays and make-up working days for the years it knows.
#[derive(Clone, PartialEq, Eq)]
pub struct Calendar {
    days: BTreeMap<Date, (DayKind, String)>,
    years: BTreeSet<i16>,
}

impl fmt::Debug for Calendar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Calendar")
            .field("years", &self.years)
            .field("special_days", &self.days.len())
            .finish()
    }
}

impl Calendar {
    /// The calendar shipped with the sandbox (2024–2026).
    pub fn builtin() -> Result<Calendar, CalendarError> {
        Calendar::parse(BUILTIN_CSV, "data/cn_calendar.csv")
    }

    /// Parses the CSV format described in the module documentation; `origin`
    /// names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Calendar, CalendarError> {
        let bad = |line: usize, reason: String| CalendarError::Malformed {
            origin: origin.to_owned(),
            line,
            reason,
        };
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, first)) if first.trim_start_matches('\u{feff}').trim() == HEADER => {}
            _ => {
                return Err(bad(
                    1,
                    format!("the first line must be the header {HEADER:?}"),
                ));
            }
        }
        let mut days = BTreeMap::new();
        let mut years = BTreeSet::new();
        for (n, line) in lines {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let mut cells = line.splitn(3, ',');
            let (Some(date), Some(kind), Some(name)) = (cells.next(), cells.next(), cells.next())
            else {
                return Err(bad(n, "expected date,kind,name".to_owned()));
            };
            let date = parse_date(date.trim())
                .ok_or_else(|| bad(n, format!("{date:?} is not a yyyy-MM-dd date")))?;
            let kind = match kind.trim() {
                "off" => DayKind::Off,
                "workday" => DayKind::Workday,
                other => {
                    return Err(bad(
                        n,
                        format!("kind {other:?} is neither \"off\" nor \"workday\""),
                    ));
                }
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(bad(n, "the holiday name is empty".to_owned()));
            }
            if kind == DayKind::Workday && !is_weekend(date) {
                return Err(bad(
                    n,
                    format!(
                        "{date} is a {:?}: a make-up working day falls on a weekend",
                        date.weekday()
                    ),
                ));
            }
            if days.insert(date, (kind, name.to_owned())).is_some() {
                return Err(bad(n, format!("{date} is listed twice")));
            }
            years.insert(date.year());
        }
        if years.is_empty() {
            return Err(bad(1, "no day is listed".to_owned()));
        }
        Ok(Calendar { days, years })
    }

    /// Reads a calendar file.
    pub fn load(path: &Path) -> Result<Calendar, CalendarError> {
        let text = std::fs::read_to_string(path).map_err(|e| CalendarError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Calendar::parse(&text, &path.display().to_string())
    }

    /// Adds the years of `other`; a year `other` knows replaces that year here
    /// (a corrected notice wins over the shipped data).
    pub fn merge(mut self, other: Calendar) -> Calendar {
        self.days.retain(|d, _| !other.years.contains(&d.year()));
        self.days.extend(other.days);
        self.years.extend(other.years);
        self
    }

    /// The built-in calendar plus the years of a file.
    pub fn builtin_with_file(path: &Path) -> Result<Calendar, CalendarError> {
        Ok(Calendar::builtin()?.merge(Calendar::load(path)?))
    }

    /// The years with data, in order.
    pub fn years(&self) -> Vec<i16> {
        self.years.iter().copied().collect()
    }

    fn known(&self, date: Date) -> Result<(), CalendarError> {
        if self.years.contains(&date.year()) {
            return Ok(());
        }
        let known = self
            .years
            .iter()
            .map(i16::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Err(CalendarError::UnknownYear {
            year: date.year(),
            known,
        })
    }

    /// What the calendar says about `date`.
    pub fn day(&self, date: Date) -> Result<DayInfo, CalendarError> {
        self.known(date)?;
        let special = self.days.get(&date);
        let working_day = match special {
            Some((DayKind::Off, _)) => false,
            Some((DayKind::Workday, _)) => true,
            None => !is_weekend(date),
        };
        Ok(DayInfo {
            date,
            working_day,
            kind: special.map(|(k, _)| *k),
            holiday: special.map(|(_, n)| n.clone()),
        })
    }

    pub fn is_working_day(&self, date: Date) -> Result<bool, CalendarError> {
        Ok(self.day(date)?.working_day)
    }

    /// The first working day strictly after `date` (Friday → Monday; the day
    /// before National Day → after the holiday). Every day crossed must be in
    /// a known year.
    pub fn next_working_day_after(&self, date: Date) -> Result<Date, CalendarError> {
        let mut day = date;
        for _ in 0..SEARCH_DAYS_MAX {
            day = day
                .checked_add(1.day())
                .map_err(|_| CalendarError::NoWorkingDay(date))?;
            if self.is_working_day(day)? {
                return Ok(day);
            }
        }
        Err(CalendarError::NoWorkingDay(date))
    }
}

fn is_weekend(date: Date) -> bool {
    matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// Parses exactly `yyyy-MM-dd`.
pub fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Date {
        parse_date(text).unwrap()
    }

    #[test]
    fn the_builtin_calendar_knows_2024_to_2026() {
        let cal = Calendar::builtin().unwrap();
        assert_eq!(cal.years(), vec![2024, 2025, 2026]);
        assert!(!cal.is_working_day(d("2024-10-01")).unwrap());
        assert!(cal.is_working_day(d("2025-01-02")).unwrap());
        assert!(!cal.is_working_day(d("2025-01-04")).unwrap());
    }

    /// Every day of 2026 against the State Council notice as transcribed in
    /// dependencies.md §7 (independently of the shipped CSV).
    #[test]
    fn every_day_of_2026_matches_the_notice() {
        let off = [
            ("2026-01-01", "2026-01-03"),
            ("2026-02-15", "2026-02-23"),
            ("2026-04-04", "2026-04-06"),
            ("2026-05-01", "2026-05-05"),
            ("2026-06-19", "2026-06-21"),
            ("2026-09-25", "2026-09-27"),
            ("2026-10-01", "2026-10-07"),
        ];
        let made_up = [
            "2026-01-04",
            "2026-02-14",
            "2026-02-28",
            "2026-05-09",
            "2026-09-20",
            "2026-10-10",
        ];
        let cal = Calendar::builtin().unwrap();
        let mut day = d("2026-01-01");
        let mut working = 0;
        while day.year() == 2026 {
            let holiday = off.iter().any(|(a, b)| d(a) <= day && day <= d(b));
            let expected =
                made_up.contains(&day.to_string().as_str()) || (!is_weekend(day) && !holiday);
            assert_eq!(cal.is_working_day(day).unwrap(), expected, "{day}");
            working += usize::from(expected);
            day = day.tomorrow().unwrap();
        }
        // 261 weekdays − 19 holidays on weekdays + 6 made-up Saturdays/Sundays.
        assert_eq!(working, 248);
    }

    #[test]
    fn a_year_without_data_is_an_error_not_a_guess() {
        let cal = Calendar::builtin().unwrap();
        let e = cal.is_working_day(d("2027-03-01")).unwrap_err();
        assert!(matches!(e, CalendarError::UnknownYear { year: 2027, .. }));
        assert!(e.to_string().contains("--calendar"), "{e}");
        // The search after the last known day must not step into 2027 blind.
        assert!(cal.next_working_day_after(d("2026-12-31")).is_err());
        assert!(cal.day(d("2023-12-29")).is_err());
    }

    #[test]
    fn more_years_load_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cn_2027.csv");
        std::fs::write(
            &file,
            "date,kind,name\r\n2027-01-01,off,New Year's Day\r\n# a comment\r\n2027-02-20,workday,Spring Festival\r\n",
        )
        .unwrap();
        let cal = Calendar::builtin_with_file(&file).unwrap();
        assert_eq!(cal.years(), vec![2024, 2025, 2026, 2027]);
        assert!(!cal.is_working_day(d("2027-01-01")).unwrap());
        assert!(
            cal.is_working_day(d("2027-02-20")).unwrap(),
            "a Saturday worked"
        );
        assert_eq!(
            cal.next_working_day_after(d("2026-12-31")).unwrap(),
            d("2027-01-04")
        );
        let info = cal.day(d("2027-02-20")).unwrap();
        assert_eq!(info.kind, Some(DayKind::Workday));
        assert_eq!(info.holiday.as_deref(), Some("Spring Festival"));
        let missing = Calendar::builtin_with_file(&dir.path().join("nope.csv")).unwrap_err();
        assert!(missing.to_string().contains("nope.csv"), "{missing}");
    }

    #[test]
    fn malformed_files_are_refused_with_the_line() {
        for (text, needle) in [
            ("date,kind\n", "header"),
            ("date,kind,name\n2026-13-01,off,X\n", "line 2"),
            ("date,kind,name\n2026-10-01,holiday,X\n", "neither"),
            ("date,kind,name\n2026-10-01,off,\n", "empty"),
            (
                "date,kind,name\n2026-10-01,off,A\n2026-10-01,off,A\n",
                "twice",
            ),
            ("date,kind,name\n2026-10-08,workday,A\n", "weekend"),
            ("date,kind,name\n", "no day"),
        ] {
            let e = Calendar::parse(text, "t.csv").unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_file_year_replaces_the_shipped_one() {
        let fix = Calendar::parse("date,kind,name\n2026-03-02,off,Test day\n", "f").unwrap();
        let cal = Calendar::builtin().unwrap().merge(fix);
        assert!(!cal.is_working_day(d("2026-03-02")).unwrap());
        // The shipped 2026 holidays are gone with the replaced year.
        assert!(cal.is_working_day(d("2026-10-01")).unwrap());
        assert!(!cal.is_working_day(d("2025-10-01")).unwrap());
    }
}
