//! How a payment draws on the buyer's funding and how a refund goes back.
//!
//! Payment order (stated, as the issue asks): the buyer's unused vouchers in
//! wallet order, then points, then the buyer's chosen instrument for the rest.
//! Refund order (R10.5): PCREDIT → BANKCARD → ALIPAYACCOUNT → MCARD → PCARD →
//! POINT → COUPON → DISCOUNT → MCOUPON → MDISCOUNT, each source giving back at
//! most what it funded minus what earlier refunds took. Pure functions: no fen
//! is created or lost (property-tested below).

use jianlian_alipay::Fen;

use crate::model::{Buyer, FundChannel, FundPart, Instrument};

/// Why the buyer cannot pay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FundingError {
    #[error("the buyer's Alipay balance is not enough")]
    BalanceNotEnough,
    #[error("the buyer's bank card balance or limit is not enough")]
    BankcardNotEnough,
    #[error("the buyer's Huabei or stored-value balance is not enough")]
    CreditNotEnough,
    #[error("no usable payment instrument (disabled by disable_pay_channels or missing)")]
    NoInstrument,
}

/// Channels the merchant refused with `disable_pay_channels` (apis.md §6.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Disabled {
    codes: Vec<String>,
}

impl Disabled {
    pub fn parse(text: Option<&str>) -> Disabled {
        Disabled {
            codes: text
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }

    fn has(&self, code: &str) -> bool {
        self.codes.iter().any(|c| c == code)
    }

    /// Whether a voucher or points channel may be used.
    pub fn allows(&self, channel: FundChannel) -> bool {
        match channel {
            FundChannel::Coupon => !self.has("coupon") && !self.has("voucher"),
            FundChannel::Discount => !self.has("voucher") && !self.has("promotion"),
            FundChannel::Mcoupon | FundChannel::Mdiscount => {
                !self.has("mdiscount") && !self.has("promotion")
            }
            FundChannel::Point => !self.has("point"),
            FundChannel::Alipayaccount => !self.has("balance"),
            FundChannel::Pcredit => !self.has("pcredit") && !self.has("credit_group"),
            FundChannel::Mcard => !self.has("mcard"),
            FundChannel::Pcard => !self.has("pcard"),
            FundChannel::Bankcard => true,
        }
    }

    fn allows_card(&self, card_type: &str) -> bool {
        if card_type == "CREDIT_CARD" {
            ![
                "creditCard",
                "creditCardExpress",
                "creditCardCartoon",
                "credit_group",
            ]
            .iter()
            .any(|c| self.has(c))
        } else {
            !self.has("debitCardExpress")
        }
    }
}

fn part(channel: FundChannel, amount: Fen) -> FundPart {
    FundPart {
        channel,
        amount,
        fund_type: None,
        bank_code: None,
        card_index: None,
        voucher_id: None,
        voucher_name: None,
    }
}

/// Plans a payment of `total` from `buyer`'s funding. Every part is positive
/// and the parts add up to `total`.
pub fn allocate_payment(
    buyer: &Buyer,
    total: Fen,
    instrument: Instrument,
    disabled: &Disabled,
) -> Result<Vec<FundPart>, FundingError> {
    let mut left = total;
    let mut parts = Vec::new();
    for voucher in buyer.vouchers.iter().filter(|v| !v.used) {
        if left.is_zero() {
            break;
        }
        if !disabled.allows(voucher.channel) || voucher.amount.get() <= 0 {
            continue;
        }
        let take = voucher.amount.min(left);
        left = left.checked_sub(take).unwrap_or(Fen::ZERO);
        parts.push(FundPart {
            voucher_id: Some(voucher.id.clone()),
            voucher_name: Some(voucher.name.clone()),
            ..part(voucher.channel, take)
        });
    }
    if !left.is_zero() && buyer.points > 0 && disabled.allows(FundChannel::Point) {
        let take = Fen::new(buyer.points).min(left);
        left = left.checked_sub(take).unwrap_or(Fen::ZERO);
        parts.push(part(FundChannel::Point, take));
    }
    if left.is_zero() {
        return Ok(parts);
    }
    let rest = match instrument {
        Instrument::Balance => {
            if !disabled.allows(FundChannel::Alipayaccount) {
                return Err(FundingError::NoInstrument);
            }
            if buyer.balance < left {
                return Err(FundingError::BalanceNotEnough);
            }
            part(FundChannel::Alipayaccount, left)
        }
        Instrument::BankCard(index) => {
            let card = buyer
                .bank_cards
                .get(index)
                .ok_or(FundingError::NoInstrument)?;
            if !disabled.allows_card(&card.card_type) {
                return Err(FundingError::NoInstrument);
            }
            if card.available < left {
                return Err(FundingError::BankcardNotEnough);
            }
            FundPart {
                fund_type: Some(card.card_type.clone()),
                bank_code: Some(card.bank_code.clone()),
                card_index: Some(index),
                ..part(FundChannel::Bankcard, left)
            }
        }
        Instrument::Huabei | Instrument::Mcard | Instrument::Pcard => {
            let (channel, available) = match instrument {
                Instrument::Huabei => (FundChannel::Pcredit, buyer.huabei_available),
                Instrument::Mcard => (FundChannel::Mcard, buyer.mcard_balance),
                _ => (FundChannel::Pcard, buyer.pcard_balance),
            };
            if !disabled.allows(channel) {
                return Err(FundingError::NoInstrument);
            }
            if available < left {
                return Err(FundingError::CreditNotEnough);
            }
            part(channel, left)
        }
    };
    parts.push(rest);
    Ok(parts)
}

/// Moves a payment's parts out of the buyer's wallet (`sign` = -1) or back into
/// it (`sign` = +1, refunds). Vouchers are consumed by a payment and not given
/// back by refunds (their value returns to whoever funded them).
pub fn move_funds(buyer: &mut Buyer, parts: &[FundPart], refund: bool) {
    for p in parts {
        let delta = if refund {
            p.amount
        } else {
            p.amount.checked_neg().unwrap_or(Fen::ZERO)
        };
        let add = |v: &mut Fen| *v = v.checked_add(delta).unwrap_or(*v);
        match p.channel {
            FundChannel::Alipayaccount => add(&mut buyer.balance),
            FundChannel::Pcredit => add(&mut buyer.huabei_available),
            FundChannel::Mcard => add(&mut buyer.mcard_balance),
            FundChannel::Pcard => add(&mut buyer.pcard_balance),
            FundChannel::Bankcard => {
                if let Some(card) = p.card_index.and_then(|i| buyer.bank_cards.get_mut(i)) {
                    add(&mut card.available);
                }
            }
            FundChannel::Point => {
                buyer.points = buyer.points.saturating_add(delta.get());
            }
            FundChannel::Coupon
            | FundChannel::Discount
            | FundChannel::Mcoupon
            | FundChannel::Mdiscount => {
                if !refund
                    && let Some(v) = buyer
                        .vouchers
                        .iter_mut()
                        .find(|v| Some(&v.id) == p.voucher_id.as_ref())
                {
                    v.used = true;
                }
            }
        }
    }
}

fn same_source(a: &FundPart, b: &FundPart) -> bool {
    a.channel == b.channel && a.voucher_id == b.voucher_id && a.card_index == b.card_index
}

/// Why a refund cannot be allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the refund is larger than what is left to refund")]
pub struct RefundTooLarge;

/// Plans a refund of `amount` over the payment's `funding`, given the parts of
/// earlier refunds, in the R10.5 order.
pub fn allocate_refund(
    funding: &[FundPart],
    earlier: &[FundPart],
    amount: Fen,
) -> Result<Vec<FundPart>, RefundTooLarge> {
    let mut sources: Vec<&FundPart> = funding.iter().collect();
    sources.sort_by_key(|p| p.channel.refund_rank());
    let mut left = amount;
    let mut parts = Vec::new();
    for source in sources {
        if left.is_zero() {
            break;
        }
        let taken = Fen::sum(
            earlier
                .iter()
                .filter(|e| same_source(e, source))
                .map(|e| e.amount),
        )
        .map_err(|_| RefundTooLarge)?;
        let remaining = source.amount.checked_sub(taken).unwrap_or(Fen::ZERO);
        if remaining.get() <= 0 {
            continue;
        }
        let take = remaining.min(left);
        left = left.checked_sub(take).ok_or(RefundTooLarge)?;
        parts.push(FundPart {
            amount: take,
            ..source.clone()
        });
    }
    if !left.is_zero() {
        return Err(RefundTooLarge);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BankCard, Voucher};
    use proptest::prelude::*;

    fn buyer(balance: i64, points: i64, vouchers: &[(FundChannel, i64)]) -> Buyer {
        Buyer {
            buyer_id: "2088000000000001".into(),
            logon_id: "13800000000".into(),
            name: None,
            cert_no: None,
            balance: Fen::new(balance),
            bank_cards: vec![BankCard {
                card_type: "DEBIT_CARD".into(),
                bank_code: "ICBC".into(),
                available: Fen::new(balance),
            }],
            huabei_available: Fen::new(balance),
            mcard_balance: Fen::ZERO,
            pcard_balance: Fen::ZERO,
            points,
            vouchers: vouchers
                .iter()
                .enumerate()
                .map(|(i, (c, a))| Voucher {
                    id: format!("V{i}"),
                    channel: *c,
                    name: format!("voucher {i}"),
                    amount: Fen::new(*a),
                    used: false,
                })
                .collect(),
            requires_password: false,
            daily_limit: None,
            spent_date: String::new(),
            spent: Fen::ZERO,
            instrument: Instrument::Balance,
            risky: false,
            open_ids: Default::default(),
            created_at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn split(parts: &[FundPart]) -> Vec<(FundChannel, i64)> {
        parts.iter().map(|p| (p.channel, p.amount.get())).collect()
    }

    /// R10.5, the seed's two worked examples: order 100 = 70 paid by the buyer,
    /// 20 by a merchant voucher, 10 by points.
    #[test]
    fn seed_refund_examples() {
        let b = buyer(10000, 1000, &[(FundChannel::Mdiscount, 2000)]);
        let paid = allocate_payment(
            &b,
            Fen::new(10000),
            Instrument::Balance,
            &Disabled::default(),
        )
        .unwrap();
        assert_eq!(
            split(&paid),
            vec![
                (FundChannel::Mdiscount, 2000),
                (FundChannel::Point, 1000),
                (FundChannel::Alipayaccount, 7000)
            ]
        );
        let r75 = allocate_refund(&paid, &[], Fen::new(7500)).unwrap();
        assert_eq!(
            split(&r75),
            vec![
                (FundChannel::Alipayaccount, 7000),
                (FundChannel::Point, 500)
            ]
        );
        let r85 = allocate_refund(&paid, &[], Fen::new(8500)).unwrap();
        assert_eq!(
            split(&r85),
            vec![
                (FundChannel::Alipayaccount, 7000),
                (FundChannel::Point, 1000),
                (FundChannel::Mdiscount, 500)
            ]
        );
        // A second refund continues where the first stopped.
        let rest = allocate_refund(&paid, &r75, Fen::new(2500)).unwrap();
        assert_eq!(
            split(&rest),
            vec![(FundChannel::Point, 500), (FundChannel::Mdiscount, 2000)]
        );
        assert_eq!(
            allocate_refund(&paid, &r85, Fen::new(1501)),
            Err(RefundTooLarge)
        );
    }

    #[test]
    fn chosen_instrument_and_disabled_channels() {
        let b = buyer(50, 0, &[(FundChannel::Coupon, 10)]);
        let none = Disabled::parse(Some("coupon"));
        assert_eq!(
            allocate_payment(&b, Fen::new(60), Instrument::Balance, &none),
            Err(FundingError::BalanceNotEnough)
        );
        let card = allocate_payment(
            &b,
            Fen::new(60),
            Instrument::BankCard(0),
            &Disabled::default(),
        )
        .unwrap();
        assert_eq!(
            card.last().unwrap().fund_type.as_deref(),
            Some("DEBIT_CARD")
        );
        assert_eq!(
            allocate_payment(
                &b,
                Fen::new(20),
                Instrument::BankCard(0),
                &Disabled::parse(Some("debitCardExpress"))
            ),
            Err(FundingError::NoInstrument)
        );
    }

    fn channel() -> impl Strategy<Value = FundChannel> {
        prop::sample::select(vec![
            FundChannel::Coupon,
            FundChannel::Discount,
            FundChannel::Mcoupon,
            FundChannel::Mdiscount,
        ])
    }

    proptest! {
        /// A payment's parts add up to the total; the wallet loses exactly the
        /// money parts, and refunds in any split give back every fen once.
        #[test]
        fn no_fen_created_or_lost(
            balance in 0i64..50_000,
            points in 0i64..5_000,
            vouchers in prop::collection::vec((channel(), 1i64..3_000), 0..4),
            total in 1i64..60_000,
            cuts in prop::collection::vec(1i64..20_000, 0..6),
        ) {
            let b = buyer(balance, points, &vouchers);
            let plan = allocate_payment(&b, Fen::new(total), Instrument::Balance, &Disabled::default());
            let Ok(parts) = plan else { return Ok(()); };
            prop_assert!(parts.iter().all(|p| p.amount.get() > 0));
            prop_assert_eq!(Fen::sum(parts.iter().map(|p| p.amount)).unwrap(), Fen::new(total));
            let mut wallet = b.clone();
            move_funds(&mut wallet, &parts, false);
            prop_assert!(wallet.balance.get() >= 0 && wallet.points >= 0);
            let money_before = b.balance.get() + b.points;
            let money_after = wallet.balance.get() + wallet.points;
            let from_wallet: i64 = parts.iter().filter(|p| !p.channel.is_voucher()).map(|p| p.amount.get()).sum();
            prop_assert_eq!(money_before - money_after, from_wallet);
            // Refund in pieces, then the rest.
            let mut earlier: Vec<FundPart> = Vec::new();
            let mut refunded = 0i64;
            for cut in cuts {
                let amount = cut.min(total - refunded);
                if amount <= 0 { break; }
                let r = allocate_refund(&parts, &earlier, Fen::new(amount)).unwrap();
                prop_assert_eq!(Fen::sum(r.iter().map(|p| p.amount)).unwrap(), Fen::new(amount));
                refunded += amount;
                earlier.extend(r);
            }
            if refunded < total {
                let r = allocate_refund(&parts, &earlier, Fen::new(total - refunded)).unwrap();
                earlier.extend(r);
            }
            // Every source got back exactly what it funded.
            for p in &parts {
                let back: i64 = earlier.iter().filter(|e| same_source(e, p)).map(|e| e.amount.get()).sum();
                prop_assert_eq!(back, p.amount.get());
            }
            prop_assert!(allocate_refund(&parts, &earlier, Fen::new(1)).is_err());
            move_funds(&mut wallet, &earlier, true);
            prop_assert_eq!(wallet.balance.get() + wallet.points, money_before);
        }

        /// R10.5: a refund never touches a later source while an earlier one
        /// still has money to give back.
        #[test]
        fn refunds_follow_the_order(
            vouchers in prop::collection::vec((channel(), 1i64..3_000), 0..4),
            points in 0i64..3_000,
            total in 1i64..20_000,
            amount in 1i64..20_000,
        ) {
            let b = buyer(100_000, points, &vouchers);
            let parts = allocate_payment(&b, Fen::new(total), Instrument::Balance, &Disabled::default()).unwrap();
            let amount = amount.min(total);
            let r = allocate_refund(&parts, &[], Fen::new(amount)).unwrap();
            // All but the last refunded source are refunded in full.
            for (i, got) in r.iter().enumerate() {
                let source = parts.iter().find(|p| same_source(p, got)).unwrap();
                if i + 1 < r.len() {
                    prop_assert_eq!(got.amount, source.amount);
                }
                if i > 0 {
                    prop_assert!(r[i - 1].channel.refund_rank() <= got.channel.refund_rank());
                }
            }
        }
    }
}
