//! Identifiers that look like Alipay's (app ids, PIDs, buyer ids, smids, trade
//! numbers, payment codes, notify ids), drawn from a seedable generator so a
//! test run is reproducible and a restarted sandbox continues the sequence.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use jianlian_alipay::time::beijing_date;

/// A SplitMix64 generator plus a sequence number; both are persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdSource {
    state: u64,
    seq: u64,
}

impl IdSource {
    pub fn new(seed: u64) -> IdSource {
        IdSource {
            state: seed,
            seq: 0,
        }
    }

    /// The next 64 random bits (SplitMix64).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `bound` (bound > 0). The modulo bias is irrelevant for ids.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// `count` random decimal digits.
    pub fn digits(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| char::from(b'0' + digit(self.below(10))))
            .collect()
    }

    /// `count` random lower-case letters and digits.
    pub fn alnum(&mut self, count: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..count)
            .map(|_| {
                let i = usize::try_from(self.below(36)).unwrap_or(0);
                char::from(ALPHABET.get(i).copied().unwrap_or(b'a'))
            })
            .collect()
    }

    /// `count` random lower-case hex digits.
    pub fn hex(&mut self, count: usize) -> String {
        (0..count)
            .map(|_| {
                let d = digit(self.below(16));
                char::from(if d < 10 { b'0' + d } else { b'a' + d - 10 })
            })
            .collect()
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// An app id: 16 digits starting `2021`.
    pub fn app_id(&mut self) -> String {
        format!("2021{}", self.digits(12))
    }

    /// A PID, buyer id or smid: 16 digits starting `2088`.
    pub fn user_id(&mut self) -> String {
        format!("2088{}", self.digits(12))
    }

    /// A buyer's login: a mobile number.
    pub fn logon_id(&mut self) -> String {
        format!("1{}{}", 3 + self.below(7), self.digits(9))
    }

    /// A per-app OpenID: 46 characters starting `0`.
    pub fn open_id(&mut self) -> String {
        format!("0{}", self.alnum(45))
    }

    /// A trade number: 28 digits, `yyyyMMdd22` then 18 digits whose tail is a
    /// sequence number, so numbers never repeat.
    pub fn trade_no(&mut self, now: Timestamp) -> String {
        let seq = self.next_seq() % 100_000_000;
        format!("{}22{}{seq:08}", ymd(now), self.digits(10))
    }

    /// A payment code: 18 digits, prefix 25–30 (R3.7).
    pub fn payment_code(&mut self) -> String {
        let prefix = 25 + self.below(6);
        let seq = self.next_seq() % 1_000_000;
        format!("{prefix}{}{seq:06}", self.digits(10))
    }

    /// A face-payment token (`security_code` scene): `fp` and 33 lower-case
    /// letters and digits, 35 characters (apis.md §2.1).
    pub fn security_code(&mut self) -> String {
        format!("fp{}", self.alnum(33))
    }

    /// A clearing id (`settlement_id`, `refund_settlement_id`): 32 digits,
    /// `yyyyMMdd` then 24 digits whose tail is a sequence number. The format is
    /// the sandbox's own: Alipay documents the field, not its shape.
    pub fn settlement_id(&mut self, now: Timestamp) -> String {
        let seq = self.next_seq() % 100_000_000;
        format!("{}{}{seq:08}", ymd(now), self.digits(16))
    }

    /// A notify id: 34 digits, `yyyyMMdd` + `00222` + `HHmmss` + 15 digits.
    pub fn notify_id(&mut self, now: Timestamp) -> String {
        let dt = jianlian_alipay::time::format_beijing(now);
        let hms: String = dt.get(11..).unwrap_or_default().replace(':', "");
        let seq = self.next_seq() % 100_000;
        format!("{}00222{hms}{}{seq:05}", ymd(now), self.digits(10))
    }

    /// The content of a precreate QR code.
    pub fn qr_code(&mut self) -> String {
        format!("https://qr.alipay.com/bax0{}", self.alnum(20))
    }

    /// An OAuth authorisation code or token.
    pub fn token(&mut self, prefix: &str) -> String {
        format!("{prefix}{}", self.hex(32))
    }
}

fn digit(n: u64) -> u8 {
    u8::try_from(n % 16).unwrap_or(0)
}

/// `yyyyMMdd` of the Beijing date.
pub fn ymd(now: Timestamp) -> String {
    beijing_date(now).strftime("%Y%m%d").to_string()
}

/// Masks a login as Alipay shows it to merchants: `159****5620`.
pub fn mask_logon_id(logon_id: &str) -> String {
    let chars: Vec<char> = logon_id.chars().collect();
    if chars.len() < 8 {
        return logon_id.to_owned();
    }
    let head: String = chars.iter().take(3).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}****{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_alipay_shapes_and_are_reproducible() {
        let now = jianlian_alipay::time::parse_beijing("2026-03-02 10:00:00").unwrap();
        let mut a = IdSource::new(7);
        let mut b = IdSource::new(7);
        assert_eq!(a.app_id(), b.app_id());
        let app = a.app_id();
        assert!(app.starts_with("2021") && app.len() == 16);
        let pid = a.user_id();
        assert!(pid.starts_with("2088") && pid.len() == 16);
        let trade = a.trade_no(now);
        assert_eq!(trade.len(), 28);
        assert!(trade.starts_with("2026030222"));
        let code = a.payment_code();
        assert_eq!(code.len(), 18);
        jianlian_alipay::PaymentCodeRule::default()
            .check(&code)
            .unwrap();
        let notify = a.notify_id(now);
        assert_eq!(notify.len(), 34);
        assert!(notify.starts_with("2026030200222100000"));
        let face = a.security_code();
        assert!(face.starts_with("fp") && face.len() == 35, "{face}");
        assert!(
            jianlian_alipay::PaymentCodeRule::default()
                .check(&face)
                .is_err()
        );
        let settlement = a.settlement_id(now);
        assert!(settlement.starts_with("20260302") && settlement.len() == 32);
        assert_eq!(mask_logon_id("15912345620"), "159****5620");
    }
}
