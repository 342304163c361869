//! Settlement (R9.1, R9.2). A payment's money enters the acquirer's internal
//! account at Alipay at once (the ledger's `charge` entries); once a Beijing
//! day D is over, each app's net of D (the 实收净额 total of its bill rows:
//! receipts − refunds − fees + fees returned) is paid out to the acquirer's
//! bank account:
//! - `same_bank`: D+1, a natural day, at 07:00 (Friday's money on Saturday);
//! - `cross_bank`: the first working day after D at 09:30, on the Chinese
//!   calendar (Friday's and Saturday's money on Monday; holidays push it on).
//!
//! A day whose net is negative (refunds beyond income, possible with an
//! acquirer-level refund position) pays nothing and carries the deficit into
//! the app's next payouts. A cross-bank payout whose date falls in a year the
//! calendar does not know is not guessed: it is recorded as
//! `calendar_missing` with the error, and planned again once a calendar with
//! that year is loaded (`--calendar FILE`).

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use jianlian_alipay::Fen;
use jianlian_alipay::time::{beijing_at, beijing_date};

use crate::bills::{first_day, rows};
use crate::calendar::{Calendar, CalendarError};
use crate::model::{LedgerEntry, LedgerKind, Settlement};
use crate::scheduler::TimedWork;
use crate::state::Core;

/// Same-bank payouts arrive at 07:00 on D+1.
pub const SAME_BANK_AT: (i8, i8) = (7, 0);
/// Other-bank payouts arrive at 09:30 on the next working day.
pub const CROSS_BANK_AT: (i8, i8) = (9, 30);
/// Days planned by one run (see `bills::BILL_DAYS_PER_RUN_MAX`).
const PLAN_DAYS_PER_RUN_MAX: usize = 31;

/// Where a payout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// Planned for `due_at`.
    Scheduled,
    /// Paid out (a ledger `payout` entry).
    Paid,
    /// The day's net, with any deficit carried in, is not positive.
    NothingToPay,
    /// Cross-bank, and the calendar lacks the year of the payout date.
    CalendarMissing,
}

/// One app's settlement of one business day.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payout {
    /// `<app_id>/<yyyy-MM-dd>`.
    pub id: String,
    pub app_id: String,
    pub pid: String,
    /// The trading day settled.
    pub business_date: Date,
    pub settlement: Settlement,
    pub trades: usize,
    pub refunds: usize,
    /// The day's 实收净额 total.
    pub net: Fen,
    /// Deficit carried from earlier days (zero or negative).
    pub carried_in: Fen,
    /// What is paid out: `net + carried_in` when positive, else zero.
    pub amount: Fen,
    /// Deficit passed on to the next day (zero or negative).
    pub carried_out: Fen,
    pub status: PayoutStatus,
    pub due_at: Option<Timestamp>,
    pub paid_at: Option<Timestamp>,
    /// The ledger entry of the payout.
    pub ledger_seq: Option<u64>,
    pub error: Option<String>,
}

impl Payout {
    pub fn key(app_id: &str, date: Date) -> String {
        format!("{app_id}/{date}")
    }

    /// The Beijing date the money arrives, once known.
    pub fn payout_date(&self) -> Option<Date> {
        self.due_at.map(beijing_date)
    }
}

/// When the payout of `date` arrives under `settlement`.
pub fn payout_time(
    calendar: &Calendar,
    settlement: Settlement,
    date: Date,
) -> Result<Timestamp, CalendarError> {
    match settlement {
        Settlement::SameBank => {
            let next = date.tomorrow().unwrap_or(date);
            Ok(beijing_at(next, SAME_BANK_AT.0, SAME_BANK_AT.1))
        }
        Settlement::CrossBank => {
            let next = calendar.next_working_day_after(date)?;
            Ok(beijing_at(next, CROSS_BANK_AT.0, CROSS_BANK_AT.1))
        }
    }
}

fn cutoff(date: Date) -> Timestamp {
    beijing_at(date.tomorrow().unwrap_or(date), 0, 0)
}

fn next_plan_day(core: &Core) -> Option<Date> {
    match core.st.billing.settled_through {
        Some(d) => d.tomorrow().ok(),
        None => first_day(core),
    }
}

impl Core {
    /// The deficit an app carries into its next payout.
    fn carried(&self, app_id: &str) -> Fen {
        let prefix = format!("{app_id}/");
        self.st
            .payouts
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .last()
            .map_or(Fen::ZERO, |(_, p)| p.carried_out)
    }

    /// Plans the payouts of business day `date` (after its end).
    pub fn plan_payouts(&mut self, date: Date, calendar: &Calendar) -> usize {
        let groups = rows::rows_of_day(self.st.trades.values(), date, |t| t.app_id.clone());
        let mut planned = Vec::new();
        for (app_id, day_rows) in &groups {
            let Some(app) = self.st.apps.get(app_id) else {
                continue;
            };
            let totals = rows::total(day_rows);
            let refunds = day_rows.iter().filter(|r| r.is_refund()).count();
            let carried_in = self.carried(app_id);
            let due = totals.net.get().saturating_add(carried_in.get());
            let (amount, carried_out) = if due > 0 {
                (Fen::new(due), Fen::ZERO)
            } else {
                (Fen::ZERO, Fen::new(due))
            };
            let mut p = Payout {
                id: Payout::key(app_id, date),
                app_id: app_id.clone(),
                pid: app.pid.clone(),
                business_date: date,
                settlement: app.settlement,
                trades: day_rows.len() - refunds,
                refunds,
                net: totals.net,
                carried_in,
                amount,
                carried_out,
                status: PayoutStatus::Scheduled,
                due_at: None,
                paid_at: None,
                ledger_seq: None,
                error: None,
            };
            schedule(&mut p, calendar);
            planned.push(p);
        }
        let n = planned.len();
        for p in planned {
            self.put_payout(p);
        }
        n
    }

    /// Pays out what is due at `now`, and plans again payouts that waited
    /// for calendar data.
    pub fn pay_due(&mut self, now: Timestamp, calendar: &Calendar) -> usize {
        let waiting: Vec<Payout> = self
            .st
            .payouts
            .values()
            .filter(|p| p.status == PayoutStatus::CalendarMissing)
            .cloned()
            .collect();
        let mut changed = 0;
        for mut p in waiting {
            schedule(&mut p, calendar);
            if p.status != PayoutStatus::CalendarMissing {
                self.put_payout(p);
                changed += 1;
            }
        }
        let due: Vec<Payout> = self
            .st
            .payouts
            .values()
            .filter(|p| p.status == PayoutStatus::Scheduled && p.due_at.is_some_and(|d| d <= now))
            .cloned()
            .collect();
        for mut p in due {
            let at = p.due_at.unwrap_or(now);
            self.push_ledger(LedgerEntry {
                seq: 0,
                at,
                date: beijing_date(at).to_string(),
                kind: LedgerKind::Payout,
                app_id: p.app_id.clone(),
                pid: p.pid.clone(),
                smid: None,
                trade_no: None,
                out_trade_no: None,
                out_request_no: None,
                buyer_id: None,
                channel: None,
                amount: p.amount,
            });
            p.ledger_seq = self.st.ledger.last().map(|e| e.seq);
            p.status = PayoutStatus::Paid;
            p.paid_at = Some(at);
            self.put_payout(p);
            changed += 1;
        }
        changed
    }

    /// The earliest scheduled payout.
    pub fn next_payout(&self) -> Option<Timestamp> {
        self.st
            .payouts
            .values()
            .filter(|p| p.status == PayoutStatus::Scheduled)
            .filter_map(|p| p.due_at)
            .min()
    }
}

fn schedule(p: &mut Payout, calendar: &Calendar) {
    if p.amount.get() <= 0 {
        p.status = PayoutStatus::NothingToPay;
        p.error = None;
        return;
    }
    match payout_time(calendar, p.settlement, p.business_date) {
        Ok(at) => {
            p.status = PayoutStatus::Scheduled;
            p.due_at = Some(at);
            p.error = None;
        }
        Err(e) => {
            p.status = PayoutStatus::CalendarMissing;
            p.due_at = None;
            p.error = Some(e.to_string());
        }
    }
}

/// Payout planning and payouts as scheduled work.
#[derive(Debug)]
pub struct SettlementWork {
    pub calendar: Arc<Calendar>,
}

impl TimedWork for SettlementWork {
    fn name(&self) -> &'static str {
        "settlement payouts"
    }

    fn next_due(&self, core: &Core) -> Option<Timestamp> {
        let plan = next_plan_day(core).map(cutoff);
        [plan, core.next_payout()].into_iter().flatten().min()
    }

    fn run(&self, core: &mut Core, now: Timestamp) -> usize {
        let mut changed = 0;
        for _ in 0..PLAN_DAYS_PER_RUN_MAX {
            let Some(day) = next_plan_day(core) else {
                break;
            };
            if cutoff(day) > now {
                break;
            }
            changed += core.plan_payouts(day, &self.calendar);
            core.st.billing.settled_through = Some(day);
            core.touch_billing();
        }
        changed + core.pay_due(now, &self.calendar)
    }
}

/// Which payouts `GET /sandbox/settlements` lists.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PayoutFilter {
    /// Payout (arrival) date, `yyyy-MM-dd`.
    #[serde(default)]
    pub date: Option<String>,
    /// Trading day settled, `yyyy-MM-dd`.
    #[serde(default)]
    pub business_date: Option<String>,
    #[serde(default)]
    pub app_id: Option<String>,
    #[serde(default)]
    pub pid: Option<String>,
}

/// The payouts matching a filter, by business date then app.
pub fn list(payouts: &BTreeMap<String, Payout>, f: &PayoutFilter) -> Result<Vec<Payout>, String> {
    let parse = |name: &str, v: &Option<String>| -> Result<Option<Date>, String> {
        v.as_deref()
            .map(|t| {
                crate::calendar::parse_date(t)
                    .ok_or_else(|| format!("{name} {t:?} is not yyyy-MM-dd"))
            })
            .transpose()
    };
    let date = parse("date", &f.date)?;
    let business = parse("business_date", &f.business_date)?;
    let mut out: Vec<Payout> = payouts
        .values()
        .filter(|p| date.is_none_or(|d| p.payout_date() == Some(d)))
        .filter(|p| business.is_none_or(|d| p.business_date == d))
        .filter(|p| f.app_id.as_deref().is_none_or(|a| p.app_id == a))
        .filter(|p| f.pid.as_deref().is_none_or(|a| p.pid == a))
        .cloned()
        .collect();
    out.sort_by(|a, b| (a.business_date, &a.app_id).cmp(&(b.business_date, &b.app_id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::parse_date;
    use jianlian_alipay::time::format_beijing;

    fn at(settlement: Settlement, date: &str) -> Result<String, CalendarError> {
        let cal = Calendar::builtin().unwrap();
        payout_time(&cal, settlement, parse_date(date).unwrap()).map(format_beijing)
    }

    #[test]
    fn same_bank_pays_the_next_natural_day_at_seven() {
        // Friday → Saturday, Saturday → Sunday, the eve of National Day → 10-01.
        assert_eq!(
            at(Settlement::SameBank, "2026-03-06").unwrap(),
            "2026-03-07 07:00:00"
        );
        assert_eq!(
            at(Settlement::SameBank, "2026-03-07").unwrap(),
            "2026-03-08 07:00:00"
        );
        assert_eq!(
            at(Settlement::SameBank, "2026-09-30").unwrap(),
            "2026-10-01 07:00:00"
        );
        // No calendar needed, even for 2027.
        assert_eq!(
            at(Settlement::SameBank, "2027-06-30").unwrap(),
            "2027-07-01 07:00:00"
        );
    }

    #[test]
    fn cross_bank_pays_the_next_working_day_at_half_past_nine() {
        // Friday and Saturday → Monday; Sunday → Monday.
        assert_eq!(
            at(Settlement::CrossBank, "2026-03-06").unwrap(),
            "2026-03-09 09:30:00"
        );
        assert_eq!(
            at(Settlement::CrossBank, "2026-03-07").unwrap(),
            "2026-03-09 09:30:00"
        );
        assert_eq!(
            at(Settlement::CrossBank, "2026-03-08").unwrap(),
            "2026-03-09 09:30:00"
        );
        // Before National Day (off 10-01..10-07, 10-10 a Saturday worked).
        assert_eq!(
            at(Settlement::CrossBank, "2026-09-30").unwrap(),
            "2026-10-08 09:30:00"
        );
        assert_eq!(
            at(Settlement::CrossBank, "2026-10-09").unwrap(),
            "2026-10-10 09:30:00"
        );
        // 2026-12-31 pays on a day of 2027, which no calendar has: an error.
        let e = at(Settlement::CrossBank, "2026-12-31").unwrap_err();
        assert!(e.to_string().contains("2027"), "{e}");
    }
}
