//! Notifications to channels (R7, issue item 7): what the outbox holds, when
//! each delivery is due, and which notify URLs may be called at all.
//!
//! An [`OutboxMessage`] is written in the same transaction as the trade
//! change (or the refund, [`RefundNotice`]) it reports. Its fields are
//! Alipay's `trade_status_sync` fields, unsigned: the gateway adds `notify_time`, `charset`, `sign_type` and
//! `sign` when it sends (so a rotated gateway key signs retries too). The
//! first delivery is immediate; after failure number *n* the next waits the
//! *n*-th gap of the [`RetrySchedule`] (Alipay's 4m, 10m, 10m, 1h, 2h, 6h,
//! 15h by default), and a failure after the last gap makes a dead letter,
//! which an operator may replay.
//!
//! [`check_notify_url`] refuses URLs that would make the gateway call into
//! its own network (loopback, link-local, private, unspecified, multicast,
//! and IPv6 forms that carry such an IPv4 address: mapped, compatible,
//! NAT64, 6to4) unless the configuration allows it, and hosts outside the
//! channel's list.
//! Host names are checked again after resolution with [`check_ip`], since a
//! public name may resolve to a private address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use jianlian_alipay::Fen;
use jianlian_alipay::api::trade::{NotifyFundBill, TradeStatus};
use jianlian_alipay::time::{format_beijing, format_beijing_millis};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ids::{AppId, RefundId, RefundRequestNo, TradeId};
use crate::trade::Trade;

/// The gaps between delivery attempts; the first attempt is immediate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrySchedule {
    gaps: Vec<SignedDuration>,
}

/// Most gaps a schedule may have: every list needs a bound.
pub const RETRY_GAPS_MAX: usize = 32;

impl Default for RetrySchedule {
    /// R7.4: 4m, 10m, 10m, 1h, 2h, 6h, 15h (8 deliveries within 25 hours).
    fn default() -> Self {
        RetrySchedule {
            gaps: [4, 10, 10, 60, 120, 360, 900]
                .into_iter()
                .map(SignedDuration::from_mins)
                .collect(),
        }
    }
}

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("notification retry gap {0:?} is not a positive duration like 4m, 1h or 30s")]
    Gap(String),
    #[error("notification retry schedule has {0} gaps; at most 32")]
    TooLong(usize),
}

impl RetrySchedule {
    /// A schedule of positive gaps.
    pub fn new(gaps: Vec<SignedDuration>) -> Result<RetrySchedule, ScheduleError> {
        if gaps.len() > RETRY_GAPS_MAX {
            return Err(ScheduleError::TooLong(gaps.len()));
        }
        if let Some(bad) = gaps.iter().find(|g| !g.is_positive()) {
            return Err(ScheduleError::Gap(format!("{bad:?}")));
        }
        Ok(RetrySchedule { gaps })
    }

    /// Parses `4m,10m,10m,1h,2h,6h,15h` (units s, m, h).
    pub fn parse(text: &str) -> Result<RetrySchedule, ScheduleError> {
        let gaps = text
            .split(',')
            .map(str::trim)
            .map(|g| {
                let bad = || ScheduleError::Gap(g.to_owned());
                let split = g.len().checked_sub(1).ok_or_else(bad)?;
                let (n, unit) = g.split_at(split);
                if n.is_empty() || n.len() > 6 || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                let n: i64 = n.parse().map_err(|_| bad())?;
                match unit {
                    "s" => Ok(SignedDuration::from_secs(n)),
                    "m" => Ok(SignedDuration::from_mins(n)),
                    "h" => Ok(SignedDuration::from_hours(n)),
                    _ => Err(bad()),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        RetrySchedule::new(gaps)
    }

    pub fn gaps(&self) -> &[SignedDuration] {
        &self.gaps
    }

    /// Deliveries before a message is dead: the first plus one per gap.
    pub fn attempts_max(&self) -> u32 {
        u32::try_from(self.gaps.len())
            .unwrap_or(u32::MAX)
            .saturating_add(1)
    }

    /// After `failed` failed deliveries (1 for the first), when to try again;
    /// `None` when the message is now a dead letter.
    pub fn next_attempt(&self, failed: u32, now: Timestamp) -> Option<Timestamp> {
        let index = usize::try_from(failed.checked_sub(1)?).ok()?;
        let gap = self.gaps.get(index)?;
        now.checked_add(*gap).ok()
    }
}

/// Where an outbox message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// To be delivered at `next_attempt_at`.
    Pending,
    /// The channel answered `success`.
    Delivered,
    /// Every delivery failed; kept for inspection and replay.
    Dead,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<OutboxStatus> {
        [
            OutboxStatus::Pending,
            OutboxStatus::Delivered,
            OutboxStatus::Dead,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// A notification for a channel, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: i64,
    pub trade: TradeId,
    pub channel: AppId,
    pub notify_url: String,
    /// The unsigned `trade_status_sync` fields, in order.
    pub fields: Vec<(String, String)>,
    pub status: OutboxStatus,
    /// Deliveries tried so far.
    pub attempts: u32,
    pub next_attempt_at: Option<Timestamp>,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
}

/// The `trade_status_sync` fields of a notification telling the channel that
/// `trade` is now `status`. The channel sees its own order number as
/// `out_trade_no` and its own `app_id`; `notify_id` identifies the message.
pub fn notification_fields(
    trade: &Trade,
    status: TradeStatus,
    notify_id: &str,
) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| {
        if !v.is_empty() {
            fields.push((k.to_owned(), v));
        }
    };
    put("notify_type", "trade_status_sync".into());
    put("notify_id", notify_id.to_owned());
    put("app_id", trade.channel.to_string());
    put("version", "1.0".into());
    put("trade_status", status.as_str().into());
    put("out_trade_no", trade.channel_order_no.to_string());
    put("trade_no", trade.facts.trade_no.clone().unwrap_or_default());
    put("total_amount", trade.total_amount.to_yuan());
    put("subject", trade.subject.clone());
    put("gmt_create", format_beijing(trade.created_at));
    if let Some(receipt) = trade.facts.receipt_amount {
        put("receipt_amount", receipt.to_yuan());
    }
    if let Some(paid) = trade.facts.buyer_pay_amount {
        put("buyer_pay_amount", paid.to_yuan());
    }
    if let Some(at) = trade.facts.paid_at {
        put("gmt_payment", format_beijing(at));
    }
    if status == TradeStatus::TradeClosed {
        put("gmt_close", format_beijing(trade.state_since));
    }
    put(
        "buyer_id",
        trade.facts.buyer_user_id.clone().unwrap_or_default(),
    );
    put(
        "buyer_logon_id",
        trade.facts.buyer_logon_id.clone().unwrap_or_default(),
    );
    if !trade.facts.fund_bills.is_empty() {
        let bills: Vec<NotifyFundBill> = trade
            .facts
            .fund_bills
            .iter()
            .map(|b| NotifyFundBill {
                amount: b.amount,
                fund_channel: b.fund_channel.clone(),
                fund_type: b.fund_type.clone(),
                real_amount: None,
                extra: Default::default(),
            })
            .collect();
        put(
            "fund_bill_list",
            serde_json::to_string(&bills).unwrap_or_default(),
        );
    }
    fields
}

/// A refund to tell the channel about, as Alipay tells the acquirer
/// (apis.md §2.7): the trade's `trade_status_sync` fields (still
/// `TRADE_SUCCESS` after a partial refund, `TRADE_CLOSED` after the last
/// one) plus `refund_fee` (everything refunded on the trade so far),
/// `gmt_refund` and `out_biz_no` (the refund's `out_request_no`). Every
/// refund is its own notification, so the channel learns of each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundNotice {
    pub refund: RefundId,
    pub out_request_no: RefundRequestNo,
    /// Refunded on the trade so far, this refund included.
    pub refund_fee: Fen,
    pub refunded_at: Timestamp,
}

impl RefundNotice {
    /// What identifies the notification among the trade's (the outbox
    /// keeps one per key): one per refund.
    pub fn key(&self) -> String {
        format!("refund:{}", self.refund)
    }

    /// Adds the refund's fields to a trade's notification fields.
    pub fn add_fields(&self, fields: &mut Vec<(String, String)>) {
        fields.push(("refund_fee".into(), self.refund_fee.to_yuan()));
        fields.push(("gmt_refund".into(), format_beijing_millis(self.refunded_at)));
        fields.push(("out_biz_no".into(), self.out_request_no.to_string()));
    }
}

/// Which addresses a notify URL may point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AddressPolicy {
    /// Allow 127.0.0.0/8, ::1 and `localhost` (the test configuration does).
    pub allow_loopback: bool,
    /// Allow private, link-local and shared address space.
    pub allow_private: bool,
}

/// Why a notify URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyUrlError {
    #[error("notify_url {0:?} is not an http or https URL")]
    Malformed(String),
    #[error("notify_url must not carry user information")]
    UserInfo,
    #[error("notify_url is longer than 256 characters")]
    TooLong,
    #[error("notify_url host {0} is a loopback address, which is not allowed")]
    Loopback(String),
    #[error(
        "notify_url host {0} is a private, link-local or reserved address, which is not allowed"
    )]
    Private(String),
    #[error("notify_url host {0} is not among the channel's allowed notify hosts")]
    HostNotAllowed(String),
}

/// A checked notify URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    pub url: String,
    /// Lower-cased host name, or the IP literal without brackets.
    pub host: String,
    /// The host when it is an IP literal.
    pub ip: Option<IpAddr>,
}

/// Longest `notify_url` (the protocol's limit).
pub const NOTIFY_URL_LEN_MAX: usize = 256;

/// Checks a channel's `notify_url` against the address policy and the
/// channel's host list. An empty list allows any host the address policy
/// allows; an entry `example.com` allows that host, `*.example.com` its
/// subdomains.
pub fn check_notify_url(
    url: &str,
    allowed_hosts: &[String],
    policy: AddressPolicy,
) -> Result<NotifyTarget, NotifyUrlError> {
    if url.len() > NOTIFY_URL_LEN_MAX {
        return Err(NotifyUrlError::TooLong);
    }
    let malformed = || NotifyUrlError::Malformed(url.to_owned());
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(malformed)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(NotifyUrlError::UserInfo);
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(malformed());
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(malformed)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || port.parse::<u16>().is_err())
    {
        return Err(malformed());
    }
    if host.is_empty() {
        return Err(malformed());
    }
    let host = host.to_ascii_lowercase();
    let ip = host.parse::<IpAddr>().ok();
    match ip {
        Some(ip) => check_ip(ip, policy)?,
        None => {
            let valid = host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            if !valid {
                return Err(malformed());
            }
            if (host == "localhost" || host.ends_with(".localhost")) && !policy.allow_loopback {
                return Err(NotifyUrlError::Loopback(host));
            }
        }
    }
    if !allowed_hosts.is_empty() && !allowed_hosts.iter().any(|a| host_matches(a, &host)) {
        return Err(NotifyUrlError::HostNotAllowed(host));
    }
    Ok(NotifyTarget {
        url: url.to_owned(),
        host,
        ip,
    })
}

fn host_matches(allowed: &str, host: &str) -> bool {
    let allowed = allowed.trim().to_ascii_lowercase();
    match allowed.strip_prefix("*.") {
        Some(domain) => host
            .strip_suffix(domain)
            .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
        None => allowed == host,
    }
}

/// Checks one address (a literal in the URL, or what a host name resolved to).
/// An IPv6 address that carries an IPv4 one (see [`embedded_v4`]) is judged
/// by the IPv4 address, since that is where the packets end up.
pub fn check_ip(ip: IpAddr, policy: AddressPolicy) -> Result<(), NotifyUrlError> {
    let (ip, text) = match ip {
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => (IpAddr::V4(v4), format!("{v6} (carrying {v4})")),
            None => (ip, ip.to_string()),
        },
        v4 => (v4, v4.to_string()),
    };
    if ip.is_loopback() {
        return if policy.allow_loopback {
            Ok(())
        } else {
            Err(NotifyUrlError::Loopback(text))
        };
    }
    let internal = match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    };
    if internal && !policy.allow_private {
        return Err(NotifyUrlError::Private(text));
    }
    Ok(())
}

/// The IPv4 address an IPv6 address routes to, for the forms that embed
/// one: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`
/// (deprecated, RFC 4291), the NAT64 well-known prefix `64:ff9b::/96`
/// (RFC 6052) and 6to4 `2002:aabb:ccdd::/48` (RFC 3056). Without this,
/// `[64:ff9b::a9fe:a9fe]` would reach 169.254.169.254 past the policy.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        // `::` and `::1` are IPv6's own unspecified and loopback addresses.
        [0, 0, 0, 0, 0, 0, hi, lo] if !ip.is_unspecified() && !ip.is_loopback() => Some(v4(hi, lo)),
        _ => None,
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let [first, second, third, ..] = ip.segments();
    ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (first, second, third) == (0x64, 0xff9b, 1) // local-use NAT64 64:ff9b:1::/48 (RFC 8215)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_fields_speak_alipays_format_with_the_channels_numbers() {
        use crate::fees::{FeePolicy, FundBill};
        use crate::trade::{Applied, Observation, SyncAnswer, TradeKind, TradeSnapshot};
        let trade = crate::trade::tests::sample_trade(TradeKind::Precreate);
        let paid = TradeSnapshot {
            status: TradeStatus::TradeSuccess,
            trade_no: Some("2026030222001400000000000001".into()),
            total_amount: Some(trade.total_amount),
            receipt_amount: Some(trade.total_amount),
            buyer_pay_amount: None,
            buyer_user_id: Some("2088102177846880".into()),
            buyer_logon_id: None,
            paid_at: Some(Timestamp::UNIX_EPOCH),
            fund_bills: vec![FundBill {
                fund_channel: "ALIPAYACCOUNT".into(),
                fund_type: None,
                amount: trade.total_amount,
            }],
            refund_fee: None,
        };
        let Applied::Changed(change) = crate::trade::apply_observation(
            &trade,
            &Observation::Answered(SyncAnswer::Paid(paid)),
            Timestamp::UNIX_EPOCH,
            FeePolicy::flat(jianlian_alipay::Rate::ZERO),
        )
        .unwrap() else {
            panic!("paid");
        };
        let fields = notification_fields(&change.trade, TradeStatus::TradeSuccess, "N1");
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("notify_type"), Some("trade_status_sync"));
        assert_eq!(get("app_id"), Some("2021000000000001"));
        assert_eq!(
            get("out_trade_no"),
            Some("ORDER1"),
            "the channel's own number"
        );
        assert_eq!(get("total_amount"), Some("100.00"));
        assert_eq!(get("gmt_payment"), Some("1970-01-01 08:00:00"));
        assert_eq!(
            get("fund_bill_list"),
            Some(r#"[{"amount":"100.00","fundChannel":"ALIPAYACCOUNT"}]"#),
            "camelCase, as in Alipay's notifications (R7.6)"
        );
        assert!(fields.iter().all(|(_, v)| !v.is_empty()), "no blank fields");
        // What the gateway sends, read back the way it reads Alipay's.
        let back = TradeSnapshot::from_notification(get).unwrap();
        assert_eq!(back.status, TradeStatus::TradeSuccess);
        assert_eq!(back.total_amount, Some(trade.total_amount));
        assert_eq!(back.fund_bills, change.trade.facts.fund_bills);
    }

    #[test]
    fn schedule_is_alipays_and_ends_in_a_dead_letter() {
        let s = RetrySchedule::default();
        assert_eq!(s.attempts_max(), 8);
        let t0 = Timestamp::UNIX_EPOCH;
        assert_eq!(
            s.next_attempt(1, t0),
            t0.checked_add(SignedDuration::from_mins(4)).ok()
        );
        assert_eq!(
            s.next_attempt(7, t0),
            t0.checked_add(SignedDuration::from_hours(15)).ok()
        );
        assert_eq!(s.next_attempt(8, t0), None);
        assert_eq!(RetrySchedule::parse("4m,10m,10m,1h,2h,6h,15h"), Ok(s));
        assert!(RetrySchedule::parse("4m,,1h").is_err());
        assert!(RetrySchedule::parse("0m").is_err());
        assert!(RetrySchedule::parse("5x").is_err());
    }

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let strict = AddressPolicy::default();
        for url in [
            "http://127.0.0.1/notify",
            "http://localhost:8080/n",
            "http://[::1]/n",
            "http://[::ffff:127.0.0.1]/n",
        ] {
            assert!(
                matches!(
                    check_notify_url(url, &[], strict),
                    Err(NotifyUrlError::Loopback(_))
                ),
                "{url}"
            );
        }
        for url in [
            "http://10.0.0.5/n",
            "http://192.168.1.1/n",
            "http://172.16.0.1/n",
            "http://169.254.169.254/latest",
            "http://[fe80::1]/n",
            "http://[fd00::1]/n",
            "http://0.0.0.0/n",
            "http://100.64.0.1/n",
        ] {
            assert!(
                matches!(
                    check_notify_url(url, &[], strict),
                    Err(NotifyUrlError::Private(_))
                ),
                "{url}"
            );
        }
        let loopback_ok = AddressPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert!(check_notify_url("http://127.0.0.1:3000/n", &[], loopback_ok).is_ok());
        assert!(check_notify_url("http://10.0.0.5/n", &[], loopback_ok).is_err());
        assert!(check_notify_url("https://pay.example.com/n", &[], strict).is_ok());
    }

    #[test]
    fn ipv6_forms_carrying_an_internal_ipv4_address_are_refused() {
        let strict = AddressPolicy::default();
        let check = |text: &str| check_ip(text.parse().unwrap(), strict);
        for (ip, carries) in [
            ("64:ff9b::a00:1", "10.0.0.1"),            // NAT64 (RFC 6052)
            ("64:ff9b::a9fe:a9fe", "169.254.169.254"), // NAT64 to the metadata service
            ("2002:c0a8:101::1", "192.168.1.1"),       // 6to4 (RFC 3056)
            ("2002:a00:1:1::5", "10.0.0.1"),
            ("::a00:1", "10.0.0.1"), // IPv4-compatible (RFC 4291, deprecated)
            ("::ffff:a00:1", "10.0.0.1"),
        ] {
            match check(ip) {
                Err(NotifyUrlError::Private(text)) => {
                    assert!(text.contains(carries), "{ip}: {text}")
                }
                other => panic!("{ip}: {other:?}"),
            }
        }
        for ip in ["64:ff9b::7f00:1", "2002:7f00:1::1", "::7f00:1", "::1"] {
            assert!(
                matches!(check(ip), Err(NotifyUrlError::Loopback(_))),
                "{ip}: {:?}",
                check(ip)
            );
        }
        assert!(
            matches!(check("64:ff9b:1::a00:1"), Err(NotifyUrlError::Private(_))),
            "local-use NAT64"
        );
        assert!(matches!(check("::"), Err(NotifyUrlError::Private(_))));
        // Public IPv4 behind the same forms, and ordinary IPv6, pass.
        for ip in [
            "64:ff9b::808:808",
            "2002:808:808::1",
            "::808:808",
            "2001:4860:4860::8888",
        ] {
            assert_eq!(check(ip), Ok(()), "{ip}");
        }
        assert!(matches!(
            check_notify_url("http://[64:ff9b::a00:1]:8080/n", &[], strict),
            Err(NotifyUrlError::Private(_))
        ));
        let loopback_ok = AddressPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        assert_eq!(
            check_ip("2002:7f00:1::1".parse().unwrap(), loopback_ok),
            Ok(())
        );
        assert!(check_ip("2002:a00:1::1".parse().unwrap(), loopback_ok).is_err());
    }

    #[test]
    fn malformed_urls_and_foreign_hosts_are_refused() {
        let strict = AddressPolicy::default();
        for url in [
            "ftp://example.com/n",
            "https://",
            "https://exa mple.com/",
            "https://example.com:99999/",
            "https://ex_ample.com/",
            "example.com/n",
        ] {
            assert!(
                matches!(
                    check_notify_url(url, &[], strict),
                    Err(NotifyUrlError::Malformed(_))
                ),
                "{url}"
            );
        }
        assert_eq!(
            check_notify_url("https://user:pw@example.com/", &[], strict),
            Err(NotifyUrlError::UserInfo)
        );
        let hosts = vec!["pay.example.com".to_owned(), "*.shop.example".to_owned()];
        assert!(check_notify_url("https://PAY.example.com/n", &hosts, strict).is_ok());
        assert!(check_notify_url("https://a.shop.example/n", &hosts, strict).is_ok());
        assert!(matches!(
            check_notify_url("https://shop.example/n", &hosts, strict),
            Err(NotifyUrlError::HostNotAllowed(_))
        ));
        assert!(matches!(
            check_notify_url("https://evilshop.example/n", &hosts, strict),
            Err(NotifyUrlError::HostNotAllowed(_))
        ));
    }
}
