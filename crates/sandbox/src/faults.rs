//! Fault injection: rules selected by method, `out_trade_no` or amount that make
//! the sandbox misbehave the way Alipay and networks do (unknown results,
//! system errors, delays, dropped connections, bad signatures, buyers stuck in
//! `WAIT_BUYER_PAY`, late payments, missing trades, refunds not yet confirmed,
//! failed, duplicated and reordered notifications), so every failure path can
//! be tested.

use serde::{Deserialize, Serialize};

use jianlian_alipay::Fen;

use crate::model::CloseReason;

/// Longest delay a rule may inject, in milliseconds (bounded, like everything).
pub const DELAY_MAX_MS: u64 = 60_000;
/// Most rules held at once.
pub const RULES_MAX: usize = 256;
/// Longest virtual-time span a `trade_not_exist` rule may cover: 15 days, the
/// longest a trade may wait for its buyer.
pub const FOR_SECONDS_MAX: u64 = 15 * 24 * 3600;

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer 20000 `isp.unknow-error`; `apply` runs the call first.
    Unknown {
        #[serde(default)]
        apply: bool,
    },
    /// Answer 40004 `ACQ.SYSTEM_ERROR`; `apply` runs the call first.
    SystemError {
        #[serde(default)]
        apply: bool,
    },
    /// Wait before answering.
    Delay { ms: u64 },
    /// Run the call, then close the connection without an answer.
    DropAfter,
    /// Close the connection without running the call.
    DropBefore,
    /// Sign the answer with a key that is not Alipay's.
    WrongKey,
    /// `alipay.trade.pay` answers 10003 `WAIT_BUYER_PAY`; the trade pays itself
    /// after `pay_after_queries` queries, or never (`null`).
    ForceWait {
        #[serde(default)]
        pay_after_queries: Option<u32>,
    },
    /// The pay waits; when the trade closes in one of the ways `after` lists
    /// (cancel by default, close, timeout), the buyer's payment arrives anyway:
    /// the buyer is charged and refunded at once (R4.6).
    PayAfterCancel {
        #[serde(default = "cancel_only")]
        after: Vec<CloseReason>,
    },
    /// `alipay.trade.query` answers `ACQ.TRADE_NOT_EXIST`; with `for_seconds`,
    /// only while the trade is younger than that (virtual time): Alipay's
    /// query lagging behind its pay.
    TradeNotExist {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        for_seconds: Option<u64>,
    },
    /// `alipay.trade.refund` refunds but answers `fund_change: N` (the refund
    /// is still being processed): the caller must confirm it with
    /// `alipay.trade.fastpay.refund.query`.
    FundChangeN,
    /// Notification attempts fail without reaching the receiver.
    NotifyFail,
    /// Every notification attempt is delivered twice.
    NotifyDuplicate,
    /// Notifications are held for `hold_seconds`, then delivered newest first.
    NotifyShuffle {
        #[serde(default = "default_hold")]
        hold_seconds: u64,
    },
}

fn default_hold() -> u64 {
    60
}

fn cancel_only() -> Vec<CloseReason> {
    vec![CloseReason::Cancel]
}

/// The closes after which a `pay_after_cancel` payment may arrive.
const LATE_AFTER: [CloseReason; 3] = [
    CloseReason::Cancel,
    CloseReason::Close,
    CloseReason::Timeout,
];

/// Every action, by its JSON name.
pub const ACTIONS: [&str; 13] = [
    "unknown",
    "system_error",
    "delay",
    "drop_after",
    "drop_before",
    "wrong_key",
    "force_wait",
    "pay_after_cancel",
    "trade_not_exist",
    "fund_change_n",
    "notify_fail",
    "notify_duplicate",
    "notify_shuffle",
];

impl FaultAction {
    fn is_notification(&self) -> bool {
        matches!(
            self,
            FaultAction::NotifyFail
                | FaultAction::NotifyDuplicate
                | FaultAction::NotifyShuffle { .. }
        )
    }
}

/// A rule: a selector, an action, and how many more times it fires.
///
/// Deserialized through a wire struct (`RuleWire`) so that a misspelt or
/// misplaced field (`pay_after_querys`, `ms` on a `system_error`) is refused
/// by name instead of dropped: `#[serde(flatten)]` cannot be combined with
/// `deny_unknown_fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RuleWire")]
pub struct FaultRule {
    #[serde(default)]
    pub id: u64,
    /// API method, e.g. `alipay.trade.pay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_trade_no: Option<String>,
    /// Matches `total_amount` (or `refund_amount` of a refund).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Fen>,
    #[serde(flatten)]
    pub action: FaultAction,
    /// How many more times the rule fires; `null` = until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

/// A rule as JSON: the selectors, the action's name and every parameter any
/// action takes, unknown fields refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleWire {
    #[serde(default)]
    id: u64,
    action: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    out_trade_no: Option<String>,
    #[serde(default)]
    amount: Option<Fen>,
    #[serde(default)]
    times: Option<u32>,
    #[serde(default)]
    apply: Option<bool>,
    #[serde(default)]
    ms: Option<u64>,
    #[serde(default)]
    pay_after_queries: Option<u32>,
    #[serde(default)]
    after: Option<Vec<CloseReason>>,
    #[serde(default)]
    for_seconds: Option<u64>,
    #[serde(default)]
    hold_seconds: Option<u64>,
}

impl TryFrom<RuleWire> for FaultRule {
    type Error = String;

    fn try_from(w: RuleWire) -> Result<FaultRule, String> {
        let (action, takes): (FaultAction, &[&str]) = match w.action.as_str() {
            "unknown" => (
                FaultAction::Unknown {
                    apply: w.apply.unwrap_or(false),
                },
                &["apply"],
            ),
            "system_error" => (
                FaultAction::SystemError {
                    apply: w.apply.unwrap_or(false),
                },
                &["apply"],
            ),
            "delay" => (
                FaultAction::Delay {
                    ms: w.ms.ok_or("action delay needs ms")?,
                },
                &["ms"],
            ),
            "drop_after" => (FaultAction::DropAfter, &[]),
            "drop_before" => (FaultAction::DropBefore, &[]),
            "wrong_key" => (FaultAction::WrongKey, &[]),
            "force_wait" => (
                FaultAction::ForceWait {
                    pay_after_queries: w.pay_after_queries,
                },
                &["pay_after_queries"],
            ),
            "pay_after_cancel" => (
                FaultAction::PayAfterCancel {
                    after: w.after.clone().unwrap_or_else(cancel_only),
                },
                &["after"],
            ),
            "trade_not_exist" => (
                FaultAction::TradeNotExist {
                    for_seconds: w.for_seconds,
                },
                &["for_seconds"],
            ),
            "fund_change_n" => (FaultAction::FundChangeN, &[]),
            "notify_fail" => (FaultAction::NotifyFail, &[]),
            "notify_duplicate" => (FaultAction::NotifyDuplicate, &[]),
            "notify_shuffle" => (
                FaultAction::NotifyShuffle {
                    hold_seconds: w.hold_seconds.unwrap_or_else(default_hold),
                },
                &["hold_seconds"],
            ),
            other => {
                return Err(format!(
                    "action {other:?} is not one of {}",
                    ACTIONS.join(", ")
                ));
            }
        };
        let given = [
            ("apply", w.apply.is_some()),
            ("ms", w.ms.is_some()),
            ("pay_after_queries", w.pay_after_queries.is_some()),
            ("after", w.after.is_some()),
            ("for_seconds", w.for_seconds.is_some()),
            ("hold_seconds", w.hold_seconds.is_some()),
        ];
        if let Some((name, _)) = given
            .iter()
            .find(|(name, present)| *present && !takes.contains(name))
        {
            return Err(format!(
                "{name} is not a parameter of action {} (it takes {})",
                w.action,
                if takes.is_empty() {
                    "none".to_owned()
                } else {
                    takes.join(", ")
                }
            ));
        }
        Ok(FaultRule {
            id: w.id,
            method: w.method,
            out_trade_no: w.out_trade_no,
            amount: w.amount,
            action,
            times: w.times,
        })
    }
}

/// What a request looks like to the selectors.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub method: Option<&'a str>,
    pub out_trade_no: Option<&'a str>,
    pub amount: Option<Fen>,
}

impl FaultRule {
    /// Checks a rule sent by a user.
    pub fn validate(&self) -> Result<(), String> {
        match &self.action {
            FaultAction::Delay { ms } if *ms > DELAY_MAX_MS => {
                return Err(format!("delay ms {ms} is above the limit {DELAY_MAX_MS}"));
            }
            FaultAction::PayAfterCancel { after } => {
                if after.is_empty() {
                    return Err("after must list at least one of cancel, close, timeout".into());
                }
                if after.iter().any(|r| !LATE_AFTER.contains(r)) {
                    return Err("after may list only cancel, close and timeout".into());
                }
            }
            FaultAction::TradeNotExist {
                for_seconds: Some(s),
            } if !(1..=FOR_SECONDS_MAX).contains(s) => {
                return Err(format!(
                    "for_seconds must be between 1 and {FOR_SECONDS_MAX}"
                ));
            }
            _ => {}
        }
        if self.action.is_notification() && self.method.is_some() {
            return Err("notification faults select by out_trade_no or amount, not method".into());
        }
        if self.times == Some(0) {
            return Err("times must be at least 1 (or null for until cleared)".into());
        }
        Ok(())
    }

    pub fn matches(&self, target: &Target<'_>) -> bool {
        let method_ok = match (&self.method, target.method) {
            (None, _) => true,
            (Some(m), Some(t)) => m == t,
            (Some(_), None) => false,
        };
        let otn_ok = match (&self.out_trade_no, target.out_trade_no) {
            (None, _) => true,
            (Some(m), Some(t)) => m == t,
            (Some(_), None) => false,
        };
        let amount_ok = match (self.amount, target.amount) {
            (None, _) => true,
            (Some(m), Some(t)) => m == t,
            (Some(_), None) => false,
        };
        method_ok && otn_ok && amount_ok
    }
}

/// Finds the first live rule matching `target` whose action `pick` accepts,
/// uses up one firing, and returns a copy of its action. Rules used up are
/// removed.
pub fn fire<F>(rules: &mut Vec<FaultRule>, target: &Target<'_>, pick: F) -> Option<FaultAction>
where
    F: Fn(&FaultAction) -> bool,
{
    let index = rules
        .iter()
        .position(|r| pick(&r.action) && r.matches(target))?;
    let rule = rules.get_mut(index)?;
    let action = rule.action.clone();
    if let Some(times) = rule.times.as_mut() {
        *times = times.saturating_sub(1);
        if *times == 0 {
            rules.remove(index);
        }
    }
    Some(action)
}

/// Whether any rule would match (without using it up).
pub fn peek<F>(rules: &[FaultRule], target: &Target<'_>, pick: &F) -> bool
where
    F: Fn(&FaultAction) -> bool,
{
    rules.iter().any(|r| pick(&r.action) && r.matches(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_select_and_wear_out() {
        let json = r#"{"action":"system_error","method":"alipay.trade.pay","times":1}"#;
        let rule: FaultRule = serde_json::from_str(json).unwrap();
        assert_eq!(rule.action, FaultAction::SystemError { apply: false });
        let mut rules = vec![rule];
        let query = Target {
            method: Some("alipay.trade.query"),
            ..Target::default()
        };
        assert!(fire(&mut rules, &query, |_| true).is_none());
        let pay = Target {
            method: Some("alipay.trade.pay"),
            ..Target::default()
        };
        assert!(fire(&mut rules, &pay, |_| true).is_some());
        assert!(rules.is_empty());
        let bad: FaultRule = serde_json::from_str(r#"{"action":"delay","ms":999999}"#).unwrap();
        assert!(bad.validate().is_err());
        assert!(serde_json::from_str::<FaultRule>(r#"{"action":"explode"}"#).is_err());
    }

    fn parse(json: &str) -> Result<FaultRule, String> {
        jianlian_alipay::api::parse_biz(json)
    }

    #[test]
    fn unknown_and_misplaced_fields_are_refused_by_name() {
        let typo = parse(r#"{"action":"force_wait","pay_after_querys":3}"#).unwrap_err();
        assert!(typo.contains("pay_after_querys"), "{typo}");
        let misplaced = parse(r#"{"action":"system_error","ms":10}"#).unwrap_err();
        assert!(
            misplaced.contains("ms is not a parameter of action system_error"),
            "{misplaced}"
        );
        let missing = parse(r#"{"action":"delay"}"#).unwrap_err();
        assert!(missing.contains("needs ms"), "{missing}");
        let unknown = parse(r#"{"action":"explode"}"#).unwrap_err();
        assert!(unknown.contains("trade_not_exist"), "{unknown}");
        // Every parameter still reaches its action, and a rule round-trips
        // through its JSON (the journal stores it that way).
        for json in [
            r#"{"id":3,"action":"unknown","apply":true,"amount":"1.00","times":2}"#,
            r#"{"action":"delay","ms":300,"method":"alipay.trade.pay"}"#,
            r#"{"action":"force_wait","pay_after_queries":3,"out_trade_no":"T1"}"#,
            r#"{"action":"pay_after_cancel","after":["close","timeout"]}"#,
            r#"{"action":"trade_not_exist","for_seconds":30}"#,
            r#"{"action":"fund_change_n","method":"alipay.trade.refund"}"#,
            r#"{"action":"notify_shuffle","hold_seconds":5}"#,
        ] {
            let rule = parse(json).unwrap();
            rule.validate().unwrap();
            let again: FaultRule =
                serde_json::from_str(&serde_json::to_string(&rule).unwrap()).unwrap();
            assert_eq!(again, rule, "{json}");
        }
        assert_eq!(
            parse(r#"{"action":"pay_after_cancel"}"#).unwrap().action,
            FaultAction::PayAfterCancel {
                after: vec![CloseReason::Cancel]
            }
        );
        let abandon = parse(r#"{"action":"pay_after_cancel","after":["abandon"]}"#).unwrap();
        assert!(abandon.validate().is_err());
        let forever = parse(r#"{"action":"trade_not_exist","for_seconds":0}"#).unwrap();
        assert!(forever.validate().is_err());
    }
}
