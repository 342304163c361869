//! Notifications (R7, protocol.md §6): for trades created by precreate or
//! create, and for refunds, Alipay POSTs a signed form to `notify_url` and
//! retries at 4m, 10m, 10m, 1h, 2h, 6h, 15h until the body is exactly
//! `success`. `notify_id` is stable across retries; `notify_time` is the time
//! of each attempt. Barcode trades get none (R4.4).
//!
//! Claiming an attempt already schedules the next one, so a crash during a
//! delivery leads to a retry, never to a lost notification.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use jianlian_alipay::api::trade::NotifyFundBill;
use jianlian_alipay::notify::{ACK_BODY, build_notification};
use jianlian_alipay::time::{format_beijing, format_beijing_millis};
use jianlian_alipay::{Charset, SignType};

use crate::faults::{FaultAction, Target};
use crate::model::{Attempt, IdMode, Notice, NoticeState, Refund, Trade};
use crate::state::Core;

/// Gaps between attempts (R7.4): 8 deliveries within about 25 hours.
pub const RETRY_GAPS: [SignedDuration; 7] = [
    SignedDuration::from_mins(4),
    SignedDuration::from_mins(10),
    SignedDuration::from_mins(10),
    SignedDuration::from_hours(1),
    SignedDuration::from_hours(2),
    SignedDuration::from_hours(6),
    SignedDuration::from_hours(15),
];
/// Attempts in all.
pub const ATTEMPTS_MAX: u32 = 8;
/// How long one delivery may take (real time).
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);
/// Most deliveries claimed in one run of due work.
pub const BATCH_MAX: usize = 1_000;

/// One attempt to make, with its signed body.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub notify_id: String,
    pub number: u32,
    pub url: String,
    pub body: String,
    pub charset: Charset,
    pub duplicate: bool,
    pub injected_failure: bool,
}

/// What happened to an attempt.
#[derive(Debug, Clone)]
pub struct DeliveryResult {
    pub notify_id: String,
    pub number: u32,
    pub outcome: String,
    pub acknowledged: bool,
    pub duplicate: bool,
}

fn notify_bills(trade: &Trade) -> Option<String> {
    if trade.funding.is_empty() {
        return None;
    }
    let bills: Vec<NotifyFundBill> = crate::trades::fund_bills(&trade.funding)
        .iter()
        .map(NotifyFundBill::from)
        .map(|mut b| {
            b.real_amount = None;
            b
        })
        .collect();
    serde_json::to_string(&bills).ok()
}

fn notify_vouchers(trade: &Trade) -> Option<String> {
    let list = crate::trades::vouchers(&trade.funding)?;
    let camel: Vec<serde_json::Value> = list
        .iter()
        .map(|v| {
            serde_json::json!({
                "amount": v.amount,
                "merchantContribute": v.merchant_contribute,
                "name": v.name,
                "otherContribute": v.other_contribute,
                "type": v.voucher_type,
                "voucherId": v.id,
            })
        })
        .collect();
    serde_json::to_string(&camel).ok()
}

impl Core {
    /// Queues a notification about `trade`'s state, if the trade (or
    /// `url_override`) names a `notify_url`.
    pub(crate) fn queue_trade_notice(
        &mut self,
        trade: &Trade,
        now: Timestamp,
        url_override: Option<&str>,
        refund: Option<&Refund>,
    ) {
        let Some(url) = url_override
            .map(str::to_owned)
            .or_else(|| trade.notify_url.clone())
        else {
            return;
        };
        let Some(app) = self.st.apps.get(&trade.app_id).cloned() else {
            return;
        };
        let notify_id = self.ids().notify_id(now);
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                fields.push((k.to_owned(), v));
            }
        };
        put("notify_type", Some("trade_status_sync".into()));
        put("notify_id", Some(notify_id.clone()));
        put("app_id", Some(trade.app_id.clone()));
        put("auth_app_id", Some(trade.app_id.clone()));
        put("charset", Some(trade.charset.clone()));
        put("version", Some("1.0".into()));
        put("trade_no", Some(trade.trade_no.clone()));
        put("out_trade_no", Some(trade.out_trade_no.clone()));
        match app.id_mode {
            IdMode::UserId => put("buyer_id", Some(trade.buyer_id.clone())),
            IdMode::OpenId => {
                let open = self.open_id_for(&trade.buyer_id, &app.app_id);
                put("buyer_open_id", open);
            }
        }
        put(
            "buyer_logon_id",
            self.st
                .buyers
                .get(&trade.buyer_id)
                .map(|b| crate::ids::mask_logon_id(&b.logon_id)),
        );
        put("seller_id", Some(trade.pid.clone()));
        put("trade_status", Some(trade.status.as_str().into()));
        put("total_amount", Some(trade.total.to_yuan()));
        if !trade.funding.is_empty() {
            put("receipt_amount", Some(trade.receipt_amount().to_yuan()));
            put("invoice_amount", Some(trade.buyer_pay_amount().to_yuan()));
            put("buyer_pay_amount", Some(trade.buyer_pay_amount().to_yuan()));
            put("point_amount", Some(trade.point_amount().to_yuan()));
        }
        put("subject", Some(trade.subject.clone()));
        put("body", trade.body.clone());
        put("gmt_create", Some(format_beijing(trade.created_at)));
        put("gmt_payment", trade.paid_at.map(format_beijing));
        put("gmt_close", trade.closed_at.map(format_beijing));
        put("fund_bill_list", notify_bills(trade));
        put("voucher_detail_list", notify_vouchers(trade));
        put("passback_params", trade.passback_params.clone());
        if let Some(r) = refund {
            put("refund_fee", Some(trade.refunded().to_yuan()));
            put("gmt_refund", Some(format_beijing_millis(r.at)));
            put("out_biz_no", Some(r.out_request_no.clone()));
        }
        let target = Target {
            method: None,
            out_trade_no: Some(&trade.out_trade_no),
            amount: Some(trade.total),
        };
        let duplicate = self
            .fire_fault(&target, |a| matches!(a, FaultAction::NotifyDuplicate))
            .is_some();
        let hold =
            match self.fire_fault(&target, |a| matches!(a, FaultAction::NotifyShuffle { .. })) {
                Some(FaultAction::NotifyShuffle { hold_seconds }) => Some(
                    SignedDuration::from_secs(i64::try_from(hold_seconds).unwrap_or(60)),
                ),
                _ => None,
            };
        let seq = u64::try_from(self.st.notices.len()).unwrap_or(u64::MAX);
        let due = hold.map_or(now, |h| now.checked_add(h).unwrap_or(now));
        self.put_notice(Notice {
            notify_id,
            app_id: trade.app_id.clone(),
            trade_no: trade.trade_no.clone(),
            out_trade_no: trade.out_trade_no.clone(),
            url,
            trade_status: trade.status.as_str().to_owned(),
            fields,
            sign_type: trade.sign_type.clone(),
            charset: trade.charset.clone(),
            created_at: now,
            next_due: Some(due),
            attempts: Vec::new(),
            state: NoticeState::Pending,
            seq,
            duplicate,
            shuffled: hold.is_some(),
        });
    }

    /// The earliest pending attempt.
    pub fn next_notice_due(&self) -> Option<Timestamp> {
        self.st
            .notices
            .values()
            .filter(|n| n.state == NoticeState::Pending)
            .filter_map(|n| n.next_due)
            .min()
    }

    /// Takes the attempts due at `now`, signs them, and schedules each one's
    /// next attempt in case this one fails.
    pub fn claim_deliveries(&mut self, now: Timestamp) -> Vec<Delivery> {
        let mut due: Vec<Notice> = self
            .st
            .notices
            .values()
            .filter(|n| n.state == NoticeState::Pending && n.next_due.is_some_and(|d| d <= now))
            .cloned()
            .collect();
        due.sort_by_key(|n| (n.next_due, n.seq));
        due.truncate(BATCH_MAX);
        // Shuffled notifications go out newest first among themselves.
        let shuffled_slots: Vec<usize> = (0..due.len())
            .filter(|i| due.get(*i).is_some_and(|n| n.shuffled))
            .collect();
        let mut shuffled: Vec<Notice> = shuffled_slots
            .iter()
            .filter_map(|i| due.get(*i).cloned())
            .collect();
        shuffled.reverse();
        for (slot, n) in shuffled_slots.iter().zip(shuffled) {
            if let Some(place) = due.get_mut(*slot) {
                *place = n;
            }
        }
        let mut out = Vec::new();
        for mut n in due {
            let number = u32::try_from(n.attempts.len()).unwrap_or(u32::MAX) + 1;
            let charset = Charset::parse(&n.charset).unwrap_or_default();
            let sign_type = SignType::parse(&n.sign_type).unwrap_or_default();
            let notify_time = format_beijing(now);
            let mut fields: Vec<(&str, &str)> = n
                .fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            fields.insert(0, ("notify_time", notify_time.as_str()));
            let body = build_notification(fields, &self.alipay_key, sign_type, charset);
            let target = Target {
                method: None,
                out_trade_no: Some(&n.out_trade_no),
                amount: None,
            };
            let injected = self
                .fire_fault(&target, |a| matches!(a, FaultAction::NotifyFail))
                .is_some();
            let gap = usize::try_from(number - 1)
                .ok()
                .and_then(|i| RETRY_GAPS.get(i));
            match gap {
                Some(gap) if number < ATTEMPTS_MAX => {
                    n.next_due = now.checked_add(*gap).ok();
                }
                _ => {
                    n.next_due = None;
                    n.state = NoticeState::GaveUp;
                }
            }
            let duplicate = n.duplicate;
            let delivery = Delivery {
                notify_id: n.notify_id.clone(),
                number,
                url: n.url.clone(),
                body: body.unwrap_or_default(),
                charset,
                duplicate: false,
                injected_failure: injected,
            };
            // The placeholder attempt is replaced when the result comes in.
            n.attempts.push(Attempt {
                number,
                at: now,
                outcome: "in flight".into(),
                acknowledged: false,
                duplicate: false,
            });
            self.put_notice(n);
            if duplicate && !injected {
                out.push(delivery.clone());
                out.push(Delivery {
                    duplicate: true,
                    ..delivery
                });
            } else {
                out.push(delivery);
            }
        }
        out
    }

    /// Records the answer to an attempt.
    pub fn record_delivery(&mut self, result: &DeliveryResult, now: Timestamp) {
        let Some(mut n) = self.st.notices.get(&result.notify_id).cloned() else {
            return;
        };
        let attempt = Attempt {
            number: result.number,
            at: now,
            outcome: result.outcome.clone(),
            acknowledged: result.acknowledged,
            duplicate: result.duplicate,
        };
        match n
            .attempts
            .iter_mut()
            .find(|a| a.number == result.number && a.outcome == "in flight" && !result.duplicate)
        {
            Some(slot) => *slot = attempt,
            None => n.attempts.push(attempt),
        }
        if result.acknowledged {
            n.state = NoticeState::Delivered;
            n.next_due = None;
        }
        self.put_notice(n);
    }
}

/// Makes the HTTP attempts, in order, and reports each answer.
pub async fn deliver(http: &reqwest::Client, deliveries: Vec<Delivery>) -> Vec<DeliveryResult> {
    let mut results = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        let (outcome, acknowledged) = if d.injected_failure {
            ("injected failure".to_owned(), false)
        } else {
            post(http, &d).await
        };
        results.push(DeliveryResult {
            notify_id: d.notify_id,
            number: d.number,
            outcome,
            acknowledged,
            duplicate: d.duplicate,
        });
    }
    results
}

async fn post(http: &reqwest::Client, d: &Delivery) -> (String, bool) {
    let sent = http
        .post(&d.url)
        .header(
            reqwest::header::CONTENT_TYPE,
            format!(
                "application/x-www-form-urlencoded; charset={}",
                d.charset.as_str()
            ),
        )
        .timeout(DELIVERY_TIMEOUT)
        .body(d.body.clone())
        .send()
        .await;
    let response = match sent {
        Ok(r) => r,
        Err(e) => return (format!("transport: {e}"), false),
    };
    let status = response.status().as_u16();
    match response.bytes().await {
        Ok(body) if body.as_ref() == ACK_BODY.as_bytes() => ("success".to_owned(), true),
        Ok(body) => {
            let text = String::from_utf8_lossy(&body);
            let shown: String = text.chars().take(100).collect();
            (format!("HTTP {status} body {shown:?}"), false)
        }
        Err(e) => (format!("transport: {e}"), false),
    }
}
