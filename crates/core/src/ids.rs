//! Identifiers as newtypes that parse instead of validate: once a value has one
//! of these types it is known to be well formed, so no later layer re-checks it.
//!
//! Text identifiers keep Alipay's wire limits (apis.md §1–§4); numeric ones are
//! the gateway's own row numbers, positive by construction.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Why an identifier was refused. The message names the identifier and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is invalid: {rule}")]
pub struct IdError {
    /// Which identifier (`out_trade_no`, `pid`, …).
    pub kind: &'static str,
    /// The refused text, as given.
    pub value: String,
    /// The rule it breaks.
    pub rule: &'static str,
}

fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn is_code_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Declares a text identifier: `$check(bytes) -> bool` decides validity and
/// `$max` bounds the length.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr, $check:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest accepted value, in characters.
            pub const LEN_MAX: usize = $max;

            /// Parses the identifier, refusing anything that breaks its rule.
            pub fn parse(text: &str) -> Result<$name, IdError> {
                let check: fn(&[u8]) -> bool = $check;
                if text.is_empty() || text.len() > $max || !check(text.as_bytes()) {
                    return Err(IdError { kind: $kind, value: text.to_owned(), rule: $rule });
                }
                Ok($name(text.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(text: String) -> Result<$name, IdError> {
                $name::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(text: &str) -> Result<$name, IdError> {
                $name::parse(text)
            }
        }
    };
}

text_id!(
    /// A channel's `app_id`, issued by the gateway: the `app_id` the channel's
    /// SDK sends (Alipay's limit is 32 characters).
    AppId,
    "app_id",
    32,
    |b| b.iter().all(|c| c.is_ascii_alphanumeric()),
    "expected 1 to 32 letters or digits"
);

text_id!(
    /// An Alipay partner id: `2088` followed by 12 digits (R1.1).
    Pid,
    "pid",
    16,
    |b| b.len() == 16 && b.starts_with(b"2088") && b.iter().all(u8::is_ascii_digit),
    "expected 2088 followed by 12 digits"
);

text_id!(
    /// Alipay's id of an indirect merchant (`sub_merchant_id`, R1.3), returned
    /// by onboarding. Alipay does not document its shape, so any 1–64 letters,
    /// digits or underscores are accepted.
    Smid,
    "sub_merchant_id",
    64,
    |b| b.iter().all(|c| is_word_char(*c)),
    "expected 1 to 64 letters, digits or underscores"
);

text_id!(
    /// A store code of a merchant (`store_id`, R3.2), such as `SHKFC001`.
    StoreCode,
    "store_id",
    32,
    |b| b.iter().all(|c| is_code_char(*c)),
    "expected 1 to 32 letters, digits, '_' or '-'"
);

text_id!(
    /// A terminal of a store (`terminal_id`, R3.2).
    TerminalId,
    "terminal_id",
    32,
    |b| b.iter().all(|c| is_code_char(*c)),
    "expected 1 to 32 letters, digits, '_' or '-'"
);

text_id!(
    /// The channel's own order number (its `out_trade_no`), unique per channel.
    ChannelOrderNo,
    "out_trade_no",
    64,
    |b| b.iter().all(|c| is_word_char(*c)),
    "expected 1 to 64 letters, digits or underscores"
);

text_id!(
    /// The gateway's own `out_trade_no` sent to Alipay (R3.3): two channels
    /// may use the same order number, so upstream every trade gets one of ours.
    UpstreamOrderNo,
    "upstream out_trade_no",
    64,
    |b| b.iter().all(|c| is_word_char(*c)),
    "expected 1 to 64 letters, digits or underscores"
);

text_id!(
    /// A refund request number (`out_request_no`), unique within its trade.
    RefundRequestNo,
    "out_request_no",
    64,
    |b| b.iter().all(|c| is_code_char(*c)),
    "expected 1 to 64 letters, digits, '_' or '-'"
);

text_id!(
    /// A merchant's number at the channel (`external_id`), unique per channel.
    ExternalId,
    "external_id",
    64,
    |b| b.iter().all(|c| is_code_char(*c)),
    "expected 1 to 64 letters, digits, '_' or '-'"
);

impl UpstreamOrderNo {
    /// Derives the upstream order number of a trade from its creation time and
    /// its row number: `JL` + Beijing `yyyyMMdd` + the row number on at least
    /// 12 digits. Row numbers are unique, so the result is unique; the date
    /// makes the number readable in Alipay's bills.
    pub fn derive(created_at: Timestamp, trade: TradeId) -> UpstreamOrderNo {
        UpstreamOrderNo(format!("{}{:012}", Self::prefix(created_at), trade.get()))
    }

    /// The part before the row number: `JL` + Beijing `yyyyMMdd`. The store
    /// appends the row number in the statement that assigns it (one round
    /// trip), and checks the result against [`UpstreamOrderNo::derive`].
    pub fn prefix(created_at: Timestamp) -> String {
        let date = jianlian_alipay::time::beijing_date(created_at);
        format!("JL{:04}{:02}{:02}", date.year(), date.month(), date.day())
    }
}

/// Declares a row number: a positive `i64` assigned by the store.
macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "i64", into = "i64")]
        pub struct $name(i64);

        impl $name {
            /// Accepts a positive number.
            pub fn new(value: i64) -> Result<$name, IdError> {
                if value > 0 {
                    Ok($name(value))
                } else {
                    Err(IdError { kind: $kind, value: value.to_string(), rule: "expected a positive number" })
                }
            }

            /// Parses decimal text such as `42`.
            pub fn parse(text: &str) -> Result<$name, IdError> {
                let bad = || IdError { kind: $kind, value: text.to_owned(), rule: "expected a positive number" };
                if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                text.parse::<i64>().map_err(|_| bad()).and_then($name::new)
            }

            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl TryFrom<i64> for $name {
            type Error = IdError;
            fn try_from(value: i64) -> Result<$name, IdError> {
                $name::new(value)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }
    };
}

row_id!(
    /// The gateway's number for a merchant.
    MerchantId,
    "merchant id"
);
row_id!(
    /// The gateway's number for a trade.
    TradeId,
    "trade id"
);
row_id!(
    /// The gateway's number for a refund.
    RefundId,
    "refund id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_2088_and_12_digits() {
        assert!(Pid::parse("2088102177846880").is_ok());
        for bad in [
            "2088",
            "20881021778468801",
            "3088102177846880",
            "2088x02177846880",
            "",
        ] {
            let err = Pid::parse(bad).unwrap_err();
            assert_eq!(err.kind, "pid", "{bad}");
        }
    }

    #[test]
    fn order_numbers_are_words_up_to_64() {
        assert!(ChannelOrderNo::parse("T2024_0513").is_ok());
        assert!(ChannelOrderNo::parse(&"a".repeat(64)).is_ok());
        assert!(ChannelOrderNo::parse(&"a".repeat(65)).is_err());
        assert!(ChannelOrderNo::parse("T-1").is_err());
        assert!(ChannelOrderNo::parse("订单1").is_err());
        let err = ChannelOrderNo::parse("a b").unwrap_err();
        assert!(err.to_string().contains("out_trade_no"), "{err}");
    }

    #[test]
    fn upstream_order_no_is_dated_and_unique_per_row() {
        let at = jianlian_alipay::time::parse_beijing("2026-03-02 00:30:00").unwrap();
        let no = UpstreamOrderNo::derive(at, TradeId::new(42).unwrap());
        assert_eq!(no.as_str(), "JL20260302000000000042");
        assert!(UpstreamOrderNo::parse(no.as_str()).is_ok());
        assert_ne!(no, UpstreamOrderNo::derive(at, TradeId::new(43).unwrap()));
    }

    #[test]
    fn row_ids_are_positive() {
        assert!(TradeId::new(0).is_err());
        assert!(TradeId::new(-1).is_err());
        assert_eq!(TradeId::parse("17").unwrap().get(), 17);
        assert!(TradeId::parse("+17").is_err());
        assert!(TradeId::parse("99999999999999999999").is_err());
    }

    #[test]
    fn serde_parses_too() {
        let ok: Result<Pid, _> = serde_json::from_str("\"2088102177846880\"");
        assert!(ok.is_ok());
        let bad: Result<Pid, _> = serde_json::from_str("\"2088\"");
        assert!(bad.is_err());
    }
}
