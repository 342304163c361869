//! Which money events a day's bill lists, and what each one is worth: one
//! trade row per payment, dated by its payment time (`gmt_payment`, R11.1),
//! and one refund row per refund (cancels that refunded included), dated by
//! the refund's time. Bills and payouts both read this, so a payout is always
//! the bill's 实收净额 total.
//!
//! A payment that reached an already closed trade and was returned at once
//! (the `pay_after_cancel` fault, ledger `charge` + `auto_refund`, the trade's
//! `late_payment`) is not listed: the Alipay trade failed, the money went back
//! to the buyer (R4.6) and never reached the merchant. Such a trade has no
//! `paid_at` and no refunds, so nothing here needs to skip it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::Date;

use jianlian_alipay::Fen;
use jianlian_alipay::time::beijing_date;

use crate::model::{FundChannel, FundPart, Refund, Trade};

/// One line of a bill: a payment, or a refund of the trade.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub trade: &'a Trade,
    pub refund: Option<&'a Refund>,
    /// Payment time (trade row) or refund time (refund row).
    pub at: Timestamp,
}

/// The amount columns of a row, signed as the bill prints them: refund rows
/// are negative except the fee returned, which is positive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    /// 订单金额: the total (refund amount on refund rows).
    pub total: Fen,
    /// 商家实收: what the merchant receives (total minus merchant vouchers).
    pub receipt: Fen,
    /// 支付宝红包: COUPON.
    pub red_packet: Fen,
    /// 集分宝: POINT.
    pub points: Fen,
    /// 支付宝优惠: DISCOUNT.
    pub platform_discount: Fen,
    /// 商家优惠: MCOUPON + MDISCOUNT.
    pub merchant_discount: Fen,
    /// 券核销金额: every voucher (COUPON, DISCOUNT, MCOUPON, MDISCOUNT).
    pub vouchers: Fen,
    /// 商家红包消费金额: MCOUPON.
    pub merchant_red_packet: Fen,
    /// 卡消费金额: MCARD + PCARD.
    pub card: Fen,
    /// 服务费: the fee, negative on trade rows (a deduction), the fee
    /// returned, positive, on refund rows.
    pub fee: Fen,
    /// 分润: no profit sharing in the sandbox.
    pub share: Fen,
    /// 实收净额: receipt + fee.
    pub net: Fen,
}

impl Amounts {
    /// Adds another row's amounts. Saturating: a day cannot come near
    /// 9·10^18 fen, every trade being at most 10^10.
    pub fn add(&mut self, o: &Amounts) {
        let add = |a: &mut Fen, b: Fen| *a = Fen::new(a.get().saturating_add(b.get()));
        add(&mut self.total, o.total);
        add(&mut self.receipt, o.receipt);
        add(&mut self.red_packet, o.red_packet);
        add(&mut self.points, o.points);
        add(&mut self.platform_discount, o.platform_discount);
        add(&mut self.merchant_discount, o.merchant_discount);
        add(&mut self.vouchers, o.vouchers);
        add(&mut self.merchant_red_packet, o.merchant_red_packet);
        add(&mut self.card, o.card);
        add(&mut self.fee, o.fee);
        add(&mut self.share, o.share);
        add(&mut self.net, o.net);
    }
}

fn channels(parts: &[FundPart], pick: impl Fn(FundChannel) -> bool) -> Fen {
    Fen::sum(parts.iter().filter(|p| pick(p.channel)).map(|p| p.amount)).unwrap_or(Fen::ZERO)
}

fn neg(f: Fen) -> Fen {
    f.checked_neg().unwrap_or(Fen::ZERO)
}

impl Row<'_> {
    pub fn is_refund(&self) -> bool {
        self.refund.is_some()
    }

    pub fn amounts(&self) -> Amounts {
        let (parts, total, receipt, fee, sign): (&[FundPart], _, _, _, fn(Fen) -> Fen) =
            match self.refund {
                None => (
                    &self.trade.funding,
                    self.trade.total,
                    self.trade.receipt_amount(),
                    neg(self.trade.fee),
                    |f| f,
                ),
                Some(r) => (
                    &r.parts,
                    neg(r.amount),
                    neg(r.merchant_cost),
                    r.fee_return,
                    neg,
                ),
            };
        let of = |c: FundChannel| channels(parts, |x| x == c);
        let merchant_discount = channels(parts, FundChannel::is_merchant_funded);
        Amounts {
            total,
            receipt,
            red_packet: sign(of(FundChannel::Coupon)),
            points: sign(of(FundChannel::Point)),
            platform_discount: sign(of(FundChannel::Discount)),
            merchant_discount: sign(merchant_discount),
            vouchers: sign(channels(parts, FundChannel::is_voucher)),
            merchant_red_packet: sign(of(FundChannel::Mcoupon)),
            card: sign(channels(parts, |c| {
                matches!(c, FundChannel::Mcard | FundChannel::Pcard)
            })),
            fee,
            share: Fen::ZERO,
            net: receipt.checked_add(fee).unwrap_or(receipt),
        }
    }
}

/// Every row of Beijing day `date`, grouped by `key` (the PID for bills, the
/// app for payouts), each group in time order (then trade_no, then refund
/// order: a bill is reproducible).
pub fn rows_of_day<'a, K, I, F>(trades: I, date: Date, key: F) -> BTreeMap<K, Vec<Row<'a>>>
where
    K: Ord,
    I: IntoIterator<Item = &'a Trade>,
    F: Fn(&'a Trade) -> K,
{
    let mut groups: BTreeMap<K, Vec<Row<'a>>> = BTreeMap::new();
    for trade in trades {
        if let Some(paid) = trade.paid_at
            && beijing_date(paid) == date
        {
            groups.entry(key(trade)).or_default().push(Row {
                trade,
                refund: None,
                at: paid,
            });
        }
        for refund in trade.refunds.iter().filter(|r| beijing_date(r.at) == date) {
            groups.entry(key(trade)).or_default().push(Row {
                trade,
                refund: Some(refund),
                at: refund.at,
            });
        }
    }
    for rows in groups.values_mut() {
        // A stable sort keeps a trade's refunds in the order they were made.
        rows.sort_by(|a, b| {
            (a.at, &a.trade.trade_no, a.is_refund()).cmp(&(b.at, &b.trade.trade_no, b.is_refund()))
        });
    }
    groups
}

/// The sum of the rows' amounts.
pub fn total(rows: &[Row<'_>]) -> Amounts {
    let mut sum = Amounts::default();
    for r in rows {
        sum.add(&r.amounts());
    }
    sum
}
