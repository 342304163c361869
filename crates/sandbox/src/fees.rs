//! Fees (R9.3, R9.4): charged per payment on `receipt_amount`, half-up to the
//! fen (under one fen is free), returned pro rata on refunds with the refund
//! that completes the trade returning everything left. Wraps the protocol
//! crate's single rounding rule.

use jianlian_alipay::money::refund_fee_return;
use jianlian_alipay::{Fen, Rate};

/// The fee on a payment: `receipt_amount × rate`, half-up.
pub fn payment_fee(rate: Rate, receipt_amount: Fen) -> Fen {
    rate.fee_on(receipt_amount)
}

/// The fee returned by a refund whose merchant part is `refund_receipt`.
pub fn fee_return(
    rate: Rate,
    trade_fee: Fen,
    fee_returned: Fen,
    refund_receipt: Fen,
    completes_trade: bool,
) -> Fen {
    refund_fee_return(
        rate,
        trade_fee,
        fee_returned,
        refund_receipt,
        completes_trade,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples() {
        let rate = Rate::parse("0.0038").unwrap();
        assert_eq!(payment_fee(rate, Fen::new(100)), Fen::ZERO);
        assert_eq!(payment_fee(rate, Fen::new(10_000)), Fen::new(38));
        let first = fee_return(rate, Fen::new(38), Fen::ZERO, Fen::new(3_333), false);
        assert_eq!(first, Fen::new(13));
        let last = fee_return(rate, Fen::new(38), first, Fen::new(6_667), true);
        assert_eq!(last, Fen::new(25));
    }

    proptest! {
        /// However a trade is refunded, the fee returns add up to the fee
        /// charged: no fen created or lost, none negative.
        #[test]
        fn fee_returns_sum_to_the_fee(
            ppm in 0u32..=20_000,
            receipt in 1i64..10_000_000,
            cuts in prop::collection::vec(1i64..2_000_000, 0..8),
        ) {
            let rate = Rate::from_ppm(ppm).unwrap();
            let fee = payment_fee(rate, Fen::new(receipt));
            prop_assert!(fee.get() >= 0 && fee.get() <= receipt);
            let mut returned = Fen::ZERO;
            let mut refunded = 0i64;
            for cut in cuts {
                let amount = cut.min(receipt - refunded);
                if amount <= 0 { break; }
                refunded += amount;
                let back = fee_return(rate, fee, returned, Fen::new(amount), refunded == receipt);
                prop_assert!(back.get() >= 0);
                returned = returned.checked_add(back).unwrap();
                prop_assert!(returned <= fee);
            }
            if refunded < receipt {
                let back = fee_return(rate, fee, returned, Fen::new(receipt - refunded), true);
                returned = returned.checked_add(back).unwrap();
            }
            prop_assert_eq!(returned, fee);
        }
    }
}
