//! The buyer's payment code (`auth_code`, R3.7): digits only, a prefix in a
//! configured range (25–30), a length in a configured range (16–24). Codes may
//! grow longer, so both ranges are configuration, not constants.
//!
//! Full codes are secrets of the buyer's account for 60 seconds: logs show them
//! only through [`mask`].

use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};

/// What a valid payment code looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCodeRule {
    /// Allowed values of the first two digits.
    pub prefix_min: u8,
    pub prefix_max: u8,
    /// Allowed total lengths.
    pub length_min: usize,
    pub length_max: usize,
}

impl Default for PaymentCodeRule {
    fn default() -> Self {
        PaymentCodeRule {
            prefix_min: 25,
            prefix_max: 30,
            length_min: 16,
            length_max: 24,
        }
    }
}

/// Why a payment code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentCodeError {
    #[error("auth_code must contain digits only")]
    NotDigits,
    #[error("auth_code has {0} digits; expected {1} to {2}")]
    Length(usize, usize, usize),
    #[error("auth_code must start with {0} to {1}")]
    Prefix(u8, u8),
}

impl PaymentCodeRule {
    pub fn prefixes(&self) -> RangeInclusive<u8> {
        self.prefix_min..=self.prefix_max
    }

    /// Checks a barcode payment code. (Face payment tokens starting `fp` are a
    /// different scene, `security_code`, checked by the caller.)
    pub fn check(&self, code: &str) -> Result<(), PaymentCodeError> {
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PaymentCodeError::NotDigits);
        }
        if !(self.length_min..=self.length_max).contains(&code.len()) {
            return Err(PaymentCodeError::Length(
                code.len(),
                self.length_min,
                self.length_max,
            ));
        }
        let prefix: u8 = code.get(..2).and_then(|p| p.parse().ok()).unwrap_or(0);
        if !self.prefixes().contains(&prefix) {
            return Err(PaymentCodeError::Prefix(self.prefix_min, self.prefix_max));
        }
        Ok(())
    }
}

/// Masks a payment code to its last four characters: `************4394`.
pub fn mask(code: &str) -> String {
    let count = code.chars().count();
    code.chars()
        .enumerate()
        .map(|(i, c)| if i + 4 < count { '*' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_prefix_length_and_digits() {
        let rule = PaymentCodeRule::default();
        assert!(rule.check("28763443825664394").is_ok());
        assert!(rule.check("30".to_owned().as_str()).is_err());
        assert_eq!(
            rule.check("31763443825664394"),
            Err(PaymentCodeError::Prefix(25, 30))
        );
        assert_eq!(
            rule.check("2876344382566439x"),
            Err(PaymentCodeError::NotDigits)
        );
        assert_eq!(
            rule.check("287634438256643"),
            Err(PaymentCodeError::Length(15, 16, 24))
        );
        let longer = PaymentCodeRule {
            length_max: 30,
            ..PaymentCodeRule::default()
        };
        assert!(longer.check("2876344382566439412345678").is_ok());
    }

    #[test]
    fn masks_all_but_four() {
        assert_eq!(mask("28763443825664394"), "*************4394");
        assert_eq!(mask("123"), "123");
    }
}
