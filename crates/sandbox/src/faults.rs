//! Fault injection: rules selected by method, `out_trade_no` or amount that make
//! the sandbox misbehave the way Alipay and networks do (unknown results,
//! system errors, delays, dropped connections, bad signatures, buyers stuck in
//! `WAIT_BUYER_PAY`, late payments, missing trades, failed, duplicated and
//! reordered notifications), so every failure path can be tested.

use serde::{Deserialize, Serialize};

use jianlian_alipay::Fen;

/// Longest delay a rule may inject, in milliseconds (bounded, like everything).
pub const DELAY_MAX_MS: u64 = 60_000;
/// Most rules held at once.
pub const RULES_MAX: usize = 256;

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
    /// The pay waits; a cancel closes it, then the buyer's payment arrives and
    /// is refunded automatically.
    PayAfterCancel,
    /// `alipay.trade.query` answers `ACQ.TRADE_NOT_EXIST`.
    TradeNotExist,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        if let FaultAction::Delay { ms } = self.action
            && ms > DELAY_MAX_MS
        {
            return Err(format!("delay ms {ms} is above the limit {DELAY_MAX_MS}"));
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
}
