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
    #[error("the buyer has switched off paying from the Alipay balance")]
    BalancePaymentDisabled,
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
            // Only reached when vouchers and points left something to pay.
            if buyer.balance_payment_disabled {
                return Err(FundingError::BalancePaymentDisabled);
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

/// Gives the buyer back the vouchers a payment used, for a payment that
/// failed after it was charged (a refund of a paid trade does not: the
/// voucher's value returns to whoever funded it).
pub fn restore_vouchers(buyer: &mut Buyer, parts: &[FundPart]) {
    for p in parts.iter().filter(|p| p.channel.is_voucher()) {
        if let Some(v) = buyer
            .vouchers
            .iter_mut()
            .find(|v| Some(&v.id) == p.voucher_id.as_ref())
        {
            v.used = false;
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
            balance_payment_disabled: false,
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

    #[test]
    fn balance_payments_switched_off() {
        let mut b = buyer(5000, 100, &[(FundChannel::Coupon, 200)]);
        b.balance_payment_disabled = true;
        let none = Disabled::default();
        assert_eq!(
            allocate_payment(&b, Fen::new(1000), Instrument::Balance, &none),
            Err(FundingError::BalancePaymentDisabled)
        );
        // Vouchers and points alone still pay; another instrument still pays.
        assert!(allocate_payment(&b, Fen::new(300), Instrument::Balance, &none).is_ok());
        assert!(allocate_payment(&b, Fen::new(1000), Instrument::BankCard(0), &none).is_ok());
    }

    fn voucher_channel() -> impl Strategy<Value = FundChannel> {
        prop::sample::select(vec![
            FundChannel::Coupon,
            FundChannel::Discount,
            FundChannel::Mcoupon,
            FundChannel::Mdiscount,
        ])
    }

    /// A buyer with every kind of funding the sandbox models: balance, a
    /// debit and a credit card, Huabei, merchant and prepaid cards, points
    /// and vouchers, paying the rest with any one instrument.
    fn any_buyer() -> impl Strategy<Value = (Buyer, Instrument)> {
        let amounts = (
            0i64..50_000,
            0i64..50_000,
            0i64..50_000,
            0i64..50_000,
            0i64..50_000,
            0i64..50_000,
            0i64..5_000,
        );
        let instrument = prop::sample::select(vec![
            Instrument::Balance,
            Instrument::BankCard(0),
            Instrument::BankCard(1),
            Instrument::Huabei,
            Instrument::Mcard,
            Instrument::Pcard,
        ]);
        (
            amounts,
            prop::collection::vec((voucher_channel(), 1i64..3_000), 0..4),
            instrument,
        )
            .prop_map(
                |((balance, debit, credit, huabei, mcard, pcard, points), vouchers, instrument)| {
                    let mut b = buyer(balance, points, &vouchers);
                    b.bank_cards = vec![
                        BankCard {
                            card_type: "DEBIT_CARD".into(),
                            bank_code: "ICBC".into(),
                            available: Fen::new(debit),
                        },
                        BankCard {
                            card_type: "CREDIT_CARD".into(),
                            bank_code: "CMB".into(),
                            available: Fen::new(credit),
                        },
                    ];
                    b.huabei_available = Fen::new(huabei);
                    b.mcard_balance = Fen::new(mcard);
                    b.pcard_balance = Fen::new(pcard);
                    (b, instrument)
                },
            )
    }

    /// All the buyer's own money, in fen: balance, cards, Huabei, stored-value
    /// cards and points (vouchers are not the buyer's money).
    fn wallet_fen(b: &Buyer) -> i64 {
        b.balance.get()
            + b.bank_cards.iter().map(|c| c.available.get()).sum::<i64>()
            + b.huabei_available.get()
            + b.mcard_balance.get()
            + b.pcard_balance.get()
            + b.points
    }

    /// A payment's funding as any mix of the ten channels, several bank cards
    /// and vouchers included: more than one payment makes, so the refund
    /// order is checked on every combination.
    fn any_funding() -> impl Strategy<Value = Vec<FundPart>> {
        let source = (
            prop::sample::select(FundChannel::REFUND_ORDER.to_vec()),
            0usize..3,
            1i64..5_000,
        );
        prop::collection::vec(source, 1..8).prop_map(|sources| {
            let mut parts: Vec<FundPart> = Vec::new();
            for (i, (channel, card, amount)) in sources.into_iter().enumerate() {
                let p = FundPart {
                    fund_type: (channel == FundChannel::Bankcard)
                        .then(|| ["DEBIT_CARD", "CREDIT_CARD", "DEBIT_CARD"][card].to_owned()),
                    card_index: (channel == FundChannel::Bankcard).then_some(card),
                    voucher_id: channel.is_voucher().then(|| format!("V{i}")),
                    ..part(channel, Fen::new(amount))
                };
                // One part per source, as a payment has.
                if !parts.iter().any(|q| same_source(q, &p)) {
                    parts.push(p);
                }
            }
            parts
        })
    }

    /// Refunds `total` in the given pieces, then the rest; returns each refund.
    fn refund_in_pieces(parts: &[FundPart], cuts: &[i64]) -> Vec<Vec<FundPart>> {
        let total: i64 = parts.iter().map(|p| p.amount.get()).sum();
        let mut earlier: Vec<FundPart> = Vec::new();
        let mut refunds = Vec::new();
        let mut refunded = 0i64;
        for cut in cuts.iter().copied().chain([total]) {
            let amount = cut.min(total - refunded);
            if amount <= 0 {
                break;
            }
            let r = allocate_refund(parts, &earlier, Fen::new(amount)).unwrap();
            assert_eq!(
                Fen::sum(r.iter().map(|p| p.amount)).unwrap(),
                Fen::new(amount)
            );
            refunded += amount;
            earlier.extend(r.iter().cloned());
            refunds.push(r);
        }
        refunds
    }

    /// R10.5 across successive refunds: whenever a refund gives back from a
    /// source, every source earlier in the order has nothing left to give.
    fn check_refund_order(parts: &[FundPart], refunds: &[Vec<FundPart>]) -> Result<(), String> {
        let mut given: Vec<i64> = vec![0; parts.len()];
        for (k, r) in refunds.iter().enumerate() {
            for got in r {
                let i = parts
                    .iter()
                    .position(|p| same_source(p, got))
                    .ok_or("a refund gave back from a source the payment did not use")?;
                given[i] += got.amount.get();
            }
            for got in r {
                let rank = got.channel.refund_rank();
                for (j, p) in parts.iter().enumerate() {
                    if p.channel.refund_rank() < rank && given[j] < p.amount.get() {
                        return Err(format!(
                            "refund {k} gave back {} while {} still had {} fen to give back",
                            got.channel.as_str(),
                            p.channel.as_str(),
                            p.amount.get() - given[j]
                        ));
                    }
                }
            }
        }
        for (p, g) in parts.iter().zip(&given) {
            if *g != p.amount.get() {
                return Err(format!(
                    "{} got back {g} of {}",
                    p.channel.as_str(),
                    p.amount.get()
                ));
            }
        }
        Ok(())
    }

    proptest! {
        /// A payment from any instrument (balance, debit or credit card,
        /// Huabei, MCARD, PCARD) with points and vouchers: the parts add up to
        /// the total, the wallet loses exactly the money parts, and refunds in
        /// any split give every fen back to the source it came from, once.
        #[test]
        fn no_fen_created_or_lost(
            (b, instrument) in any_buyer(),
            total in 1i64..60_000,
            cuts in prop::collection::vec(1i64..20_000, 0..6),
        ) {
            let plan = allocate_payment(&b, Fen::new(total), instrument, &Disabled::default());
            let Ok(parts) = plan else { return Ok(()); };
            prop_assert!(parts.iter().all(|p| p.amount.get() > 0));
            prop_assert_eq!(Fen::sum(parts.iter().map(|p| p.amount)).unwrap(), Fen::new(total));
            // At most one instrument pays what vouchers and points leave.
            prop_assert!(parts.iter().filter(|p| !p.channel.is_discount()).count() <= 1);
            let mut wallet = b.clone();
            move_funds(&mut wallet, &parts, false);
            prop_assert!(wallet.balance.get() >= 0 && wallet.points >= 0);
            prop_assert!(wallet.bank_cards.iter().all(|c| c.available.get() >= 0));
            prop_assert!(wallet.huabei_available.get() >= 0);
            prop_assert!(wallet.mcard_balance.get() >= 0 && wallet.pcard_balance.get() >= 0);
            let from_wallet: i64 = parts.iter().filter(|p| !p.channel.is_voucher()).map(|p| p.amount.get()).sum();
            prop_assert_eq!(wallet_fen(&b) - wallet_fen(&wallet), from_wallet);
            let refunds = refund_in_pieces(&parts, &cuts);
            let earlier: Vec<FundPart> = refunds.concat();
            if let Err(e) = check_refund_order(&parts, &refunds) {
                prop_assert!(false, "{}", e);
            }
            prop_assert!(allocate_refund(&parts, &earlier, Fen::new(1)).is_err());
            move_funds(&mut wallet, &earlier, true);
            // Every account, not just the total, is back where it was.
            prop_assert_eq!(wallet.balance, b.balance);
            prop_assert_eq!(&wallet.bank_cards, &b.bank_cards);
            prop_assert_eq!(wallet.huabei_available, b.huabei_available);
            prop_assert_eq!(wallet.mcard_balance, b.mcard_balance);
            prop_assert_eq!(wallet.pcard_balance, b.pcard_balance);
            prop_assert_eq!(wallet.points, b.points);
        }

        /// R10.5 on any funding (all ten channels, several cards and
        /// vouchers) and any sequence of partial refunds: PCREDIT → BANKCARD →
        /// ALIPAYACCOUNT → MCARD → PCARD → POINT → COUPON → DISCOUNT → MCOUPON
        /// → MDISCOUNT, no source touched while an earlier one has money left,
        /// and no fen created or lost.
        #[test]
        fn refunds_follow_the_order(
            parts in any_funding(),
            cuts in prop::collection::vec(1i64..8_000, 0..6),
        ) {
            let refunds = refund_in_pieces(&parts, &cuts);
            if let Err(e) = check_refund_order(&parts, &refunds) {
                prop_assert!(false, "{}", e);
            }
            let earlier: Vec<FundPart> = refunds.concat();
            prop_assert!(allocate_refund(&parts, &earlier, Fen::new(1)).is_err());
        }
    }
}
