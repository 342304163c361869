//! The acquirer's books: a double-entry ledger in integer fen (R9, issue item 9).
//!
//! **Accounts.**
//! - [`Account::AlipayClearing`] (asset): the acquirer's money in its account
//!   at Alipay. Payments flow in (R9.1), refunds flow out.
//! - [`Account::MerchantPayable`] (liability, one per merchant): what the
//!   acquirer owes each merchant.
//! - [`Account::FeeIncome`] (income): the acquirer's fees.
//!
//! **Journals.** A payment of receipt `R` with fee `F`: debit clearing `R`,
//! credit the merchant `R − F`, credit fee income `F`. A refund whose merchant
//! share is `M` with fee return `r`: debit the merchant `M − r`, debit fee
//! income `r`, credit clearing `M`. A cancel that refunded a paid trade
//! (`action = refund`) reverses its payment journal entry by entry. Refunds
//! funded by the platform (the part of a refund above the receipt) never
//! passed through the acquirer's account and are not booked.
//!
//! **Invariants.** Every journal balances (its constructor refuses one that
//! does not) and the trial balance of all journals is zero; [`check`] verifies
//! both over journals read back from storage. Each journal has a [`JournalKey`]
//! so the same event is never booked twice.

use std::collections::BTreeMap;
use std::fmt;

use jianlian_alipay::Fen;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::fees::{PaymentFee, RefundShare};
use crate::ids::{MerchantId, RefundId, TradeId};

/// A ledger account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Account {
    /// The acquirer's account at Alipay.
    AlipayClearing,
    /// What the acquirer owes one merchant.
    MerchantPayable(MerchantId),
    /// The acquirer's fee income.
    FeeIncome,
}

impl Account {
    /// The account's code in storage: `alipay_clearing`, `merchant_payable:42`, `fee_income`.
    pub fn code(&self) -> String {
        match self {
            Account::AlipayClearing => "alipay_clearing".into(),
            Account::MerchantPayable(m) => format!("merchant_payable:{m}"),
            Account::FeeIncome => "fee_income".into(),
        }
    }

    /// Reads a code written by [`Account::code`].
    pub fn parse(code: &str) -> Option<Account> {
        match code {
            "alipay_clearing" => Some(Account::AlipayClearing),
            "fee_income" => Some(Account::FeeIncome),
            _ => code
                .strip_prefix("merchant_payable:")
                .and_then(|m| MerchantId::parse(m).ok())
                .map(Account::MerchantPayable),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

/// Debit or credit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Debit,
    Credit,
}

/// One line of a journal: a positive amount on one side of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub account: Account,
    pub side: Side,
    pub amount: Fen,
}

impl Entry {
    /// The entry as a signed amount: debits positive, credits negative.
    pub fn signed(&self) -> Fen {
        match self.side {
            Side::Debit => self.amount,
            Side::Credit => self.amount.checked_neg().unwrap_or(Fen::ZERO),
        }
    }
}

/// What a journal books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalKind {
    Payment,
    Refund,
    /// A paid trade reversed by `alipay.trade.cancel` (`action = refund`).
    Reversal,
}

impl JournalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JournalKind::Payment => "payment",
            JournalKind::Refund => "refund",
            JournalKind::Reversal => "reversal",
        }
    }

    pub fn parse(text: &str) -> Option<JournalKind> {
        [
            JournalKind::Payment,
            JournalKind::Refund,
            JournalKind::Reversal,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// The event a journal books, unique across the ledger: `payment:7`,
/// `reversal:7`, `refund:3`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JournalKey(String);

impl JournalKey {
    pub fn payment(trade: TradeId) -> JournalKey {
        JournalKey(format!("payment:{trade}"))
    }

    pub fn reversal(trade: TradeId) -> JournalKey {
        JournalKey(format!("reversal:{trade}"))
    }

    pub fn refund(refund: RefundId) -> JournalKey {
        JournalKey(format!("refund:{refund}"))
    }

    /// A key read back from storage.
    pub fn from_stored(text: String) -> JournalKey {
        JournalKey(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a journal or the ledger is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("journal {key}: debits {debits} and credits {credits} differ")]
    Unbalanced {
        key: String,
        debits: Fen,
        credits: Fen,
    },
    #[error("journal {key}: an entry of {amount} is not positive")]
    NonPositive { key: String, amount: Fen },
    #[error("journal {0} has no entries")]
    Empty(String),
    #[error("journal {0} is booked twice")]
    Duplicate(String),
    #[error("the trial balance is {0}, not zero")]
    TrialBalance(Fen),
    #[error("amount overflow in journal {0}")]
    Overflow(String),
}

/// A balanced set of entries booking one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    key: JournalKey,
    kind: JournalKind,
    trade: TradeId,
    refund: Option<RefundId>,
    at: Timestamp,
    entries: Vec<Entry>,
}

impl Journal {
    /// Builds a journal, refusing one that does not balance, has a
    /// non-positive entry, or has no entries.
    pub fn new(
        key: JournalKey,
        kind: JournalKind,
        trade: TradeId,
        refund: Option<RefundId>,
        at: Timestamp,
        entries: Vec<Entry>,
    ) -> Result<Journal, LedgerError> {
        let name = || key.as_str().to_owned();
        if entries.is_empty() {
            return Err(LedgerError::Empty(name()));
        }
        let mut debits = Fen::ZERO;
        let mut credits = Fen::ZERO;
        for e in &entries {
            if e.amount <= Fen::ZERO {
                return Err(LedgerError::NonPositive {
                    key: name(),
                    amount: e.amount,
                });
            }
            let total = match e.side {
                Side::Debit => &mut debits,
                Side::Credit => &mut credits,
            };
            *total = total
                .checked_add(e.amount)
                .ok_or_else(|| LedgerError::Overflow(name()))?;
        }
        if debits != credits {
            return Err(LedgerError::Unbalanced {
                key: name(),
                debits,
                credits,
            });
        }
        Ok(Journal {
            key,
            kind,
            trade,
            refund,
            at,
            entries,
        })
    }

    pub fn key(&self) -> &JournalKey {
        &self.key
    }
    pub fn kind(&self) -> JournalKind {
        self.kind
    }
    pub fn trade(&self) -> TradeId {
        self.trade
    }
    pub fn refund(&self) -> Option<RefundId> {
        self.refund
    }
    pub fn at(&self) -> Timestamp {
        self.at
    }
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// Drops zero lines: a fee of 0 books nothing on fee income.
fn lines(lines: [(Account, Side, Fen); 3]) -> Vec<Entry> {
    lines
        .into_iter()
        .filter(|(_, _, amount)| !amount.is_zero())
        .map(|(account, side, amount)| Entry {
            account,
            side,
            amount,
        })
        .collect()
}

/// The journal of a payment; `None` when the merchant received nothing (a
/// trade paid entirely by platform discounts moves no money of ours).
pub fn payment_journal(
    trade: TradeId,
    merchant: MerchantId,
    fee: &PaymentFee,
    at: Timestamp,
) -> Result<Option<Journal>, LedgerError> {
    if fee.receipt <= Fen::ZERO {
        return Ok(None);
    }
    let key = JournalKey::payment(trade);
    let net = fee
        .receipt
        .checked_sub(fee.fee)
        .ok_or_else(|| LedgerError::Overflow(key.as_str().to_owned()))?;
    let entries = lines([
        (Account::AlipayClearing, Side::Debit, fee.receipt),
        (Account::MerchantPayable(merchant), Side::Credit, net),
        (Account::FeeIncome, Side::Credit, fee.fee),
    ]);
    Journal::new(key, JournalKind::Payment, trade, None, at, entries).map(Some)
}

/// The journal of a cancel that refunded a paid trade: the payment, reversed.
pub fn reversal_journal(
    trade: TradeId,
    merchant: MerchantId,
    fee: &PaymentFee,
    at: Timestamp,
) -> Result<Option<Journal>, LedgerError> {
    let Some(payment) = payment_journal(trade, merchant, fee, at)? else {
        return Ok(None);
    };
    let entries = payment
        .entries
        .iter()
        .map(|e| Entry {
            side: match e.side {
                Side::Debit => Side::Credit,
                Side::Credit => Side::Debit,
            },
            ..*e
        })
        .collect();
    Journal::new(
        JournalKey::reversal(trade),
        JournalKind::Reversal,
        trade,
        None,
        at,
        entries,
    )
    .map(Some)
}

/// The journal of a successful refund; `None` when its merchant share is zero
/// (a refund of platform-funded money only).
pub fn refund_journal(
    trade: TradeId,
    refund: RefundId,
    merchant: MerchantId,
    share: &RefundShare,
    at: Timestamp,
) -> Result<Option<Journal>, LedgerError> {
    if share.merchant_part <= Fen::ZERO {
        return Ok(None);
    }
    let key = JournalKey::refund(refund);
    let from_merchant = share
        .merchant_part
        .checked_sub(share.fee_return)
        .ok_or_else(|| LedgerError::Overflow(key.as_str().to_owned()))?;
    let entries = lines([
        (
            Account::MerchantPayable(merchant),
            Side::Debit,
            from_merchant,
        ),
        (Account::FeeIncome, Side::Debit, share.fee_return),
        (Account::AlipayClearing, Side::Credit, share.merchant_part),
    ]);
    Journal::new(key, JournalKind::Refund, trade, Some(refund), at, entries).map(Some)
}

/// Balances per account (debits minus credits), from [`check`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrialBalance {
    pub journals: usize,
    pub balances: BTreeMap<Account, Fen>,
}

impl TrialBalance {
    /// An account's balance, debits minus credits (0 when never used).
    pub fn balance(&self, account: &Account) -> Fen {
        self.balances.get(account).copied().unwrap_or(Fen::ZERO)
    }

    /// What the acquirer owes a merchant (the credit balance of its payable).
    pub fn owed_to(&self, merchant: MerchantId) -> Fen {
        self.balance(&Account::MerchantPayable(merchant))
            .checked_neg()
            .unwrap_or(Fen::ZERO)
    }
}

/// Verifies journals read back from storage: each balances, none is booked
/// twice, and the trial balance is zero. Returns the balances.
pub fn check<'a, I>(journals: I) -> Result<TrialBalance, LedgerError>
where
    I: IntoIterator<Item = &'a Journal>,
{
    let mut report = TrialBalance::default();
    let mut keys = std::collections::HashSet::new();
    let mut total = Fen::ZERO;
    for journal in journals {
        let name = || journal.key.as_str().to_owned();
        // Re-run the constructor's checks: storage could hold anything.
        Journal::new(
            journal.key.clone(),
            journal.kind,
            journal.trade,
            journal.refund,
            journal.at,
            journal.entries.clone(),
        )?;
        if !keys.insert(journal.key.clone()) {
            return Err(LedgerError::Duplicate(name()));
        }
        for entry in &journal.entries {
            let balance = report.balances.entry(entry.account).or_insert(Fen::ZERO);
            *balance = balance
                .checked_add(entry.signed())
                .ok_or_else(|| LedgerError::Overflow(name()))?;
            total = total
                .checked_add(entry.signed())
                .ok_or_else(|| LedgerError::Overflow(name()))?;
        }
        report.journals += 1;
    }
    if !total.is_zero() {
        return Err(LedgerError::TrialBalance(total));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fees::{FeePolicy, payment_fee};

    fn t() -> Timestamp {
        Timestamp::UNIX_EPOCH
    }

    #[test]
    fn an_unbalanced_journal_is_refused() {
        let trade = TradeId::new(1).unwrap();
        let entries = vec![
            Entry {
                account: Account::AlipayClearing,
                side: Side::Debit,
                amount: Fen::new(100),
            },
            Entry {
                account: Account::FeeIncome,
                side: Side::Credit,
                amount: Fen::new(99),
            },
        ];
        let err = Journal::new(
            JournalKey::payment(trade),
            JournalKind::Payment,
            trade,
            None,
            t(),
            entries,
        )
        .unwrap_err();
        assert!(matches!(err, LedgerError::Unbalanced { .. }), "{err}");
        let empty = Journal::new(
            JournalKey::payment(trade),
            JournalKind::Payment,
            trade,
            None,
            t(),
            vec![],
        );
        assert!(matches!(empty, Err(LedgerError::Empty(_))));
    }

    #[test]
    fn payment_then_reversal_nets_to_zero() {
        let trade = TradeId::new(1).unwrap();
        let merchant = MerchantId::new(5).unwrap();
        let fee = payment_fee(
            FeePolicy::flat(jianlian_alipay::Rate::parse("0.0038").unwrap()),
            Fen::new(8_888),
            &[],
        );
        let pay = payment_journal(trade, merchant, &fee, t())
            .unwrap()
            .unwrap();
        let rev = reversal_journal(trade, merchant, &fee, t())
            .unwrap()
            .unwrap();
        let tb = check([&pay]).unwrap();
        assert_eq!(tb.balance(&Account::AlipayClearing), Fen::new(8_888));
        assert_eq!(tb.owed_to(merchant), Fen::new(8_888 - 34));
        assert_eq!(tb.balance(&Account::FeeIncome), Fen::new(-34));
        let tb = check([&pay, &rev]).unwrap();
        assert!(tb.balances.values().all(|b| b.is_zero()));
        assert!(matches!(
            check([&pay, &pay]),
            Err(LedgerError::Duplicate(_))
        ));
    }

    #[test]
    fn account_codes_round_trip() {
        for account in [
            Account::AlipayClearing,
            Account::FeeIncome,
            Account::MerchantPayable(MerchantId::new(42).unwrap()),
        ] {
            assert_eq!(Account::parse(&account.code()), Some(account));
        }
        assert_eq!(Account::parse("merchant_payable:0"), None);
    }
}
