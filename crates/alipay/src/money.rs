//! Money as integer fen, and Alipay's fee rounding.
//!
//! Alipay writes amounts as yuan strings with two decimals (`"88.88"`). Inside
//! jianlian every amount is a [`Fen`] (an `i64` count of 0.01 CNY); yuan text exists
//! only at the wire, parsed strictly by [`Fen::parse_yuan`] and printed by
//! [`Fen::to_yuan`]. Fee rates are [`Rate`]s in parts per million and the only
//! rounding rule is [`Rate::fee_on`] (half-up to the fen, R9.3).
#![deny(clippy::float_arithmetic)]

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Smallest trade amount Alipay accepts: 0.01 yuan.
pub const TRADE_AMOUNT_MIN: Fen = Fen(1);
/// Largest trade amount Alipay accepts: 100,000,000.00 yuan.
pub const TRADE_AMOUNT_MAX: Fen = Fen(10_000_000_000);

/// Longest integer part accepted when parsing yuan text; keeps every parse far
/// from `i64` overflow (10^15 yuan = 10^17 fen).
const YUAN_INTEGER_DIGITS_MAX: usize = 15;

/// An amount of money in fen (0.01 CNY). Signed, because bills print refunds
/// as negative amounts; trade amounts are checked with [`Fen::check_trade_amount`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Fen(i64);

/// Why a yuan string or amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(
        "amount {0:?} is not a yuan amount: expected digits without leading zeros and with at most two decimals, like 88.88"
    )]
    Malformed(String),
    #[error("amount {0} is out of range: a trade amount must be between 0.01 and 100000000.00")]
    OutOfRange(String),
    #[error("amount overflow")]
    Overflow,
}

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub const fn new(fen: i64) -> Fen {
        Fen(fen)
    }

    pub const fn get(self) -> i64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    pub fn checked_sub(self, other: Fen) -> Option<Fen> {
        self.0.checked_sub(other.0).map(Fen)
    }

    pub fn checked_neg(self) -> Option<Fen> {
        self.0.checked_neg().map(Fen)
    }

    /// Adds, reporting overflow as an error (for `?` in accounting code).
    pub fn try_add(self, other: Fen) -> Result<Fen, MoneyError> {
        self.checked_add(other).ok_or(MoneyError::Overflow)
    }

    /// Subtracts, reporting overflow as an error.
    pub fn try_sub(self, other: Fen) -> Result<Fen, MoneyError> {
        self.checked_sub(other).ok_or(MoneyError::Overflow)
    }

    /// Sums amounts with overflow checking.
    pub fn sum<I: IntoIterator<Item = Fen>>(items: I) -> Result<Fen, MoneyError> {
        items.into_iter().try_fold(Fen::ZERO, Fen::try_add)
    }

    /// Parses a non-negative yuan amount: `digits[.d[d]]`, nothing else (no sign,
    /// no exponent, no spaces, no thousands separators, no leading zeros:
    /// `0.01` and `0` but not `007.00`, which some parsers read as octal). Any
    /// amount from 0.00 parses, since responses and bills carry zeros and sums;
    /// [`Fen::parse_trade_amount`] adds the trade range.
    pub fn parse_yuan(text: &str) -> Result<Fen, MoneyError> {
        let malformed = || MoneyError::Malformed(text.to_owned());
        let (int_part, frac_part) = match text.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (text, None),
        };
        if int_part.is_empty()
            || int_part.len() > YUAN_INTEGER_DIGITS_MAX
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || (int_part.len() > 1 && int_part.starts_with('0'))
        {
            return Err(malformed());
        }
        let frac_fen = match frac_part {
            None => 0,
            Some(f) if f.is_empty() || f.len() > 2 || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(malformed());
            }
            Some(f) => {
                let digits: i64 = f.parse().map_err(|_| malformed())?;
                if f.len() == 1 { digits * 10 } else { digits }
            }
        };
        let yuan: i64 = int_part.parse().map_err(|_| malformed())?;
        yuan.checked_mul(100)
            .and_then(|f| f.checked_add(frac_fen))
            .map(Fen)
            .ok_or(MoneyError::Overflow)
    }

    /// Parses a trade amount: a yuan amount between 0.01 and 100000000.00.
    pub fn parse_trade_amount(text: &str) -> Result<Fen, MoneyError> {
        Fen::parse_yuan(text)?.check_trade_amount()
    }

    /// Checks the trade amount range [0.01, 100000000.00].
    pub fn check_trade_amount(self) -> Result<Fen, MoneyError> {
        if (TRADE_AMOUNT_MIN..=TRADE_AMOUNT_MAX).contains(&self) {
            Ok(self)
        } else {
            Err(MoneyError::OutOfRange(self.to_yuan()))
        }
    }

    /// Parses a signed yuan amount as printed in bills (`-12.30`).
    pub fn parse_signed_yuan(text: &str) -> Result<Fen, MoneyError> {
        match text.strip_prefix('-') {
            Some(rest) => Ok(Fen(-Fen::parse_yuan(rest)?.0)),
            None => Fen::parse_yuan(text),
        }
    }

    /// Prints the amount as yuan with exactly two decimals: `88.88`, `0.05`, `-1.50`.
    pub fn to_yuan(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl fmt::Debug for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fen({self})")
    }
}

impl FromStr for Fen {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fen::parse_signed_yuan(s)
    }
}

/// At the wire, amounts are yuan strings.
impl Serialize for Fen {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Accepts a yuan string, the only wire form Alipay documents and sends
/// (`"88.88"`; a leading `-` for bill refunds), parsed by the strict rule.
/// JSON numbers are refused, integers too: serde_json hands a fraction over as
/// an `f64`, whose text is no longer the sender's, and accepting `88` while
/// refusing `88.5` would only move the surprise.
impl<'de> Deserialize<'de> for Fen {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Fen;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a yuan amount such as \"88.88\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Fen, E> {
                Fen::parse_signed_yuan(v).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Fen, E> {
                Err(E::custom(number_refused(&v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Fen, E> {
                Err(E::custom(number_refused(&v)))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Fen, E> {
                Err(E::custom(number_refused(&v)))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn number_refused(number: &dyn fmt::Display) -> String {
    format!("amount {number} is a JSON number; amounts are yuan strings such as \"88.88\"")
}

/// A fee rate in parts per million (`0.0038` = 3800 ppm), between 0 and 1.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate {
    ppm: u32,
}

/// Parts per million in 1.
const PPM_ONE: u32 = 1_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate {0:?} is not a decimal between 0 and 1 with at most 6 decimals, like 0.0038")]
pub struct RateError(pub String);

impl Rate {
    pub const ZERO: Rate = Rate { ppm: 0 };

    pub const fn from_ppm(ppm: u32) -> Result<Rate, u32> {
        if ppm <= PPM_ONE {
            Ok(Rate { ppm })
        } else {
            Err(ppm)
        }
    }

    pub const fn ppm(self) -> u32 {
        self.ppm
    }

    /// Parses `0.0038`, `0.006`, `0`, `1`: at most six decimals, at most 1.
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        let bad = || RateError(text.to_owned());
        let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
        if int_part.is_empty()
            || int_part.len() > 1
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || frac_part.len() > 6
            || (text.contains('.') && frac_part.is_empty())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let int: u32 = int_part.parse().map_err(|_| bad())?;
        let mut frac: u32 = if frac_part.is_empty() {
            0
        } else {
            frac_part.parse().map_err(|_| bad())?
        };
        for _ in frac_part.len()..6 {
            frac *= 10;
        }
        let ppm = int * PPM_ONE + frac;
        Rate::from_ppm(ppm).map_err(|_| bad())
    }

    /// R9.3: fee = amount × rate, rounded half-up to the fen; a result under one
    /// fen is no fee (which half-up rounding to zero already gives).
    pub fn fee_on(self, amount: Fen) -> Fen {
        let amount = i128::from(amount.get().max(0));
        let scaled = amount * i128::from(self.ppm) + i128::from(PPM_ONE / 2);
        let fee = scaled / i128::from(PPM_ONE);
        // fee <= amount because ppm <= 1_000_000, so it fits in i64.
        Fen(i64::try_from(fee).unwrap_or(i64::MAX))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let int = self.ppm / PPM_ONE;
        let frac = self.ppm % PPM_ONE;
        if frac == 0 {
            return write!(f, "{int}");
        }
        let digits = format!("{frac:06}");
        write!(f, "{int}.{}", digits.trim_end_matches('0'))
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

impl FromStr for Rate {
    type Err = RateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Rate::parse(s)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// R9.4: the fee returned for one refund.
///
/// `trade_fee` is the fee charged on the payment, `fee_returned` what earlier
/// refunds of the trade returned. A refund returns `refund × rate` rounded
/// half-up, never more than what is left; the refund that completes the trade
/// (`is_last`) returns everything that is left.
pub fn refund_fee_return(
    rate: Rate,
    trade_fee: Fen,
    fee_returned: Fen,
    refund: Fen,
    is_last: bool,
) -> Fen {
    let left = Fen(trade_fee.get().saturating_sub(fee_returned.get()).max(0));
    if is_last {
        left
    } else {
        rate.fee_on(refund).min(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strict_yuan() {
        assert_eq!(Fen::parse_yuan("88.88"), Ok(Fen(8888)));
        assert_eq!(Fen::parse_yuan("88.8"), Ok(Fen(8880)));
        assert_eq!(Fen::parse_yuan("88"), Ok(Fen(8800)));
        assert_eq!(Fen::parse_yuan("0.01"), Ok(Fen(1)));
        assert_eq!(Fen::parse_yuan("0.00"), Ok(Fen(0)));
        assert_eq!(Fen::parse_yuan("0"), Ok(Fen(0)));
        assert_eq!(Fen::parse_yuan("0.5"), Ok(Fen(50)));
        assert_eq!(Fen::parse_yuan("100000000.00"), Ok(Fen(10_000_000_000)));
        for bad in [
            "", ".5", "1.", "1.234", "-1", "+1", "1e2", " 1", "1 ", "1,000", "0x10", "１",
            "007.00", "00", "00.01", "01", "-01.00",
        ] {
            assert!(Fen::parse_yuan(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(Fen::parse_signed_yuan("-007.00").ok(), None);
    }

    #[test]
    fn json_amounts_are_strings_never_numbers() {
        assert_eq!(
            serde_json::from_str::<Fen>(r#""88.88""#).ok(),
            Some(Fen(8888))
        );
        assert_eq!(
            serde_json::from_str::<Fen>(r#""-1.50""#).ok(),
            Some(Fen(-150))
        );
        for number in ["88.88", "88", "-1", "0.1", "1e2", "18446744073709551615"] {
            let error = serde_json::from_str::<Fen>(number)
                .expect_err(number)
                .to_string();
            assert!(
                error.contains("is a JSON number; amounts are yuan strings"),
                "{number}: {error}"
            );
        }
        for bad in [r#""007.00""#, r#""1.234""#, "null", "true", "[]"] {
            assert!(serde_json::from_str::<Fen>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trade_amount_range() {
        assert!(Fen::parse_trade_amount("0.00").is_err());
        assert!(Fen::parse_trade_amount("0.01").is_ok());
        assert!(Fen::parse_trade_amount("100000000.00").is_ok());
        assert!(Fen::parse_trade_amount("100000000.01").is_err());
    }

    #[test]
    fn prints_two_decimals() {
        assert_eq!(Fen(8888).to_yuan(), "88.88");
        assert_eq!(Fen(5).to_yuan(), "0.05");
        assert_eq!(Fen(-150).to_yuan(), "-1.50");
        assert_eq!(Fen(0).to_yuan(), "0.00");
    }

    #[test]
    fn fee_rounds_half_up_and_drops_sub_fen() {
        let rate = Rate::parse("0.0038").unwrap();
        assert_eq!(rate.ppm(), 3800);
        assert_eq!(rate.fee_on(Fen(100)), Fen(0)); // 0.38 fen: free
        assert_eq!(rate.fee_on(Fen(132)), Fen(1)); // 0.5016 fen: rounds up to 1
        assert_eq!(rate.fee_on(Fen(131)), Fen(0)); // 0.4978 fen
        assert_eq!(rate.fee_on(Fen(8888)), Fen(34)); // 33.77 fen
        assert_eq!(rate.to_string(), "0.0038");
    }

    #[test]
    fn last_refund_returns_the_rest() {
        let rate = Rate::parse("0.006").unwrap();
        let fee = rate.fee_on(Fen(10_000)); // 60 fen
        let first = refund_fee_return(rate, fee, Fen(0), Fen(3_333), false); // 19.998 -> 20
        let second = refund_fee_return(rate, fee, first, Fen(6_667), true);
        assert_eq!((first, second), (Fen(20), Fen(40)));
    }

    #[test]
    fn rate_parsing() {
        assert_eq!(Rate::parse("1").unwrap().ppm(), 1_000_000);
        assert_eq!(Rate::parse("0").unwrap().ppm(), 0);
        for bad in ["1.1", "2", "0.0000001", ".1", "0.", "-0.1", "0,1"] {
            assert!(Rate::parse(bad).is_err(), "{bad:?}");
        }
    }
}
