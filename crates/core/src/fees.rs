//! The acquirer's fees on its merchants (R9.3, R9.4, R8): what a payment costs
//! the merchant and what each refund gives back.
//!
//! **Credit funding.** A merchant may have a separate rate for credit funding.
//! The credit part of a payment is the sum of its funding lines that are
//! credit: `fund_channel = PCREDIT` (Huabei), or `BANKCARD` with
//! `fund_type = CREDIT_CARD` or `MIXED_CARD` (a mixed card may draw on credit,
//! so it is charged as credit). The credit part is capped at the receipt
//! amount. **Mixed funding is split**: the fee is `credit_rate × credit part +
//! rate × the rest`, each product rounded half-up with [`Rate::fee_on`].
//!
//! **Refunds** draw on the money the merchant received (the receipt) before
//! platform-funded amounts, and on the credit part first (R10.5 refunds
//! Huabei and bank cards first). The fee returned for a refund is the rate of
//! each share times that share, rounded half-up, never more than what is left
//! of the trade's fee; the refund that returns the last fen of the receipt
//! returns all that is left ([`refund_fee_return`], R9.4).

use jianlian_alipay::money::refund_fee_return;
use jianlian_alipay::{Fen, Rate};
use serde::{Deserialize, Serialize};

/// A merchant's fee rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeePolicy {
    /// The rate on every payment.
    pub rate: Rate,
    /// The rate on the credit-funded part, when it differs.
    pub credit_rate: Option<Rate>,
}

impl FeePolicy {
    /// One rate for everything.
    pub fn flat(rate: Rate) -> FeePolicy {
        FeePolicy {
            rate,
            credit_rate: None,
        }
    }

    fn credit(&self) -> Rate {
        self.credit_rate.unwrap_or(self.rate)
    }
}

/// One funding line of a payment (`fund_bill_list`, either spelling).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundBill {
    pub fund_channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fund_type: Option<String>,
    pub amount: Fen,
}

impl FundBill {
    /// Whether this line is credit funding (see the module doc).
    pub fn is_credit(&self) -> bool {
        match self.fund_channel.as_str() {
            "PCREDIT" => true,
            "BANKCARD" => matches!(
                self.fund_type.as_deref(),
                Some("CREDIT_CARD" | "MIXED_CARD")
            ),
            _ => false,
        }
    }
}

impl From<&jianlian_alipay::api::trade::TradeFundBill> for FundBill {
    fn from(b: &jianlian_alipay::api::trade::TradeFundBill) -> Self {
        FundBill {
            fund_channel: b.fund_channel.clone(),
            fund_type: b.fund_type.clone(),
            amount: b.amount,
        }
    }
}

impl From<&jianlian_alipay::api::trade::NotifyFundBill> for FundBill {
    fn from(b: &jianlian_alipay::api::trade::NotifyFundBill) -> Self {
        FundBill {
            fund_channel: b.fund_channel.clone(),
            fund_type: b.fund_type.clone(),
            amount: b.amount,
        }
    }
}

/// The fee charged on one payment, with what refunds need to give it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentFee {
    /// The merchant's money in the acquirer's account: the receipt amount.
    pub receipt: Fen,
    /// The credit-funded part of `receipt`.
    pub credit_part: Fen,
    /// The rates in force when the payment was booked (later rate changes do
    /// not change what refunds return).
    pub rate: Rate,
    pub credit_rate: Rate,
    /// The fee: never more than `receipt`.
    pub fee: Fen,
}

/// R9.3 with the credit split: the fee on a payment of `receipt`.
pub fn payment_fee(policy: FeePolicy, receipt: Fen, fund_bills: &[FundBill]) -> PaymentFee {
    let receipt = receipt.max(Fen::ZERO);
    let credit_total = fund_bills
        .iter()
        .filter(|b| b.is_credit())
        .map(|b| b.amount.max(Fen::ZERO))
        .fold(Fen::ZERO, |sum, a| sum.checked_add(a).unwrap_or(receipt));
    let credit_part = credit_total.min(receipt);
    let rest = receipt.checked_sub(credit_part).unwrap_or(Fen::ZERO);
    let credit_rate = policy.credit();
    let fee = credit_rate
        .fee_on(credit_part)
        .checked_add(policy.rate.fee_on(rest))
        .unwrap_or(receipt)
        .min(receipt);
    PaymentFee {
        receipt,
        credit_part,
        rate: policy.rate,
        credit_rate,
        fee,
    }
}

/// What earlier successful refunds of a trade took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RefundedSoFar {
    /// Sum of refund amounts (what the buyer got back).
    pub amount: Fen,
    /// Sum of the merchant's shares (what left the acquirer's account).
    pub merchant_part: Fen,
    /// Sum of the fee returned.
    pub fee_returned: Fen,
}

/// How one refund is booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundShare {
    /// The part of the refund paid out of the merchant's receipt.
    pub merchant_part: Fen,
    /// The fee given back to the merchant.
    pub fee_return: Fen,
    /// Whether this refund returns the last fen of the receipt.
    pub is_last: bool,
}

/// R9.4 with the credit split: the merchant's share of a refund of `refund`
/// and the fee it returns, given the earlier refunds.
pub fn refund_share(payment: &PaymentFee, before: RefundedSoFar, refund: Fen) -> RefundShare {
    let receipt_left = payment
        .receipt
        .checked_sub(before.merchant_part)
        .unwrap_or(Fen::ZERO)
        .max(Fen::ZERO);
    let merchant_part = refund.max(Fen::ZERO).min(receipt_left);
    let is_last = merchant_part == receipt_left && !receipt_left.is_zero();
    let credit_left = payment
        .credit_part
        .checked_sub(before.merchant_part)
        .unwrap_or(Fen::ZERO)
        .max(Fen::ZERO);
    let credit_share = merchant_part.min(credit_left);
    let rest_share = merchant_part.checked_sub(credit_share).unwrap_or(Fen::ZERO);
    let from_credit = refund_fee_return(
        payment.credit_rate,
        payment.fee,
        before.fee_returned,
        credit_share,
        false,
    );
    let returned_with_credit = before
        .fee_returned
        .checked_add(from_credit)
        .unwrap_or(payment.fee);
    let from_rest = refund_fee_return(
        payment.rate,
        payment.fee,
        returned_with_credit,
        rest_share,
        is_last,
    );
    RefundShare {
        merchant_part,
        fee_return: from_credit.checked_add(from_rest).unwrap_or(Fen::ZERO),
        is_last,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(s: &str) -> Rate {
        Rate::parse(s).unwrap()
    }

    fn bill(channel: &str, fund_type: Option<&str>, fen: i64) -> FundBill {
        FundBill {
            fund_channel: channel.into(),
            fund_type: fund_type.map(Into::into),
            amount: Fen::new(fen),
        }
    }

    #[test]
    fn credit_funding_picks_the_credit_rate_and_splits_mixed_funding() {
        let policy = FeePolicy {
            rate: rate("0.0038"),
            credit_rate: Some(rate("0.006")),
        };
        let debit = payment_fee(
            policy,
            Fen::new(10_000),
            &[bill("ALIPAYACCOUNT", None, 10_000)],
        );
        assert_eq!(debit.fee, Fen::new(38));
        let huabei = payment_fee(policy, Fen::new(10_000), &[bill("PCREDIT", None, 10_000)]);
        assert_eq!(huabei.fee, Fen::new(60));
        let card = payment_fee(
            policy,
            Fen::new(10_000),
            &[bill("BANKCARD", Some("CREDIT_CARD"), 10_000)],
        );
        assert_eq!(card.fee, Fen::new(60));
        let debit_card = payment_fee(
            policy,
            Fen::new(10_000),
            &[bill("BANKCARD", Some("DEBIT_CARD"), 10_000)],
        );
        assert_eq!(debit_card.fee, Fen::new(38));
        // 40.00 on Huabei at 0.6 % (24 fen) + 60.00 of balance at 0.38 % (22.8 -> 23 fen).
        let mixed = payment_fee(
            policy,
            Fen::new(10_000),
            &[
                bill("PCREDIT", None, 4_000),
                bill("ALIPAYACCOUNT", None, 6_000),
            ],
        );
        assert_eq!(
            (mixed.credit_part, mixed.fee),
            (Fen::new(4_000), Fen::new(47))
        );
    }

    #[test]
    fn refunds_return_credit_first_and_the_last_returns_the_rest() {
        let policy = FeePolicy {
            rate: rate("0.0038"),
            credit_rate: Some(rate("0.006")),
        };
        let paid = payment_fee(
            policy,
            Fen::new(10_000),
            &[
                bill("PCREDIT", None, 4_000),
                bill("ALIPAYACCOUNT", None, 6_000),
            ],
        );
        let first = refund_share(&paid, RefundedSoFar::default(), Fen::new(5_000));
        // 40.00 credit at 0.6 % = 24, 10.00 at 0.38 % = 3.8 -> 4.
        assert_eq!(first.fee_return, Fen::new(28));
        assert!(!first.is_last);
        let before = RefundedSoFar {
            amount: Fen::new(5_000),
            merchant_part: first.merchant_part,
            fee_returned: first.fee_return,
        };
        let last = refund_share(&paid, before, Fen::new(5_000));
        assert!(last.is_last);
        assert_eq!(
            first.fee_return.get() + last.fee_return.get(),
            paid.fee.get()
        );
    }
}
