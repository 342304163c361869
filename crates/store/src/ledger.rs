//! The ledger's tables: journals are written only inside the transaction of
//! the change they book, and read back whole for [`jianlian_core::ledger::check`].

use std::collections::BTreeMap;

use jianlian_alipay::Fen;
use jianlian_core::ledger::{
    Account, Entry, Journal, JournalKey, JournalKind, Side, TrialBalance, check,
};
use sqlx::AnyConnection;

use crate::rows::{ms, trade_id, ts};
use crate::script::{Script, Value};
use crate::{Store, StoreError};

fn side_str(side: Side) -> &'static str {
    match side {
        Side::Debit => "debit",
        Side::Credit => "credit",
    }
}

/// Books a journal in the caller's transaction. A second booking of the same
/// key is refused by the UNIQUE constraint, which aborts the transaction: the
/// event and its books are written together or not at all.
pub(crate) async fn insert_journal_in(
    conn: &mut AnyConnection,
    journal: &Journal,
) -> Result<(), StoreError> {
    let mut script = Script::default();
    push_journal(&mut script, journal);
    script
        .run(conn)
        .await
        .map_err(|e| booked_twice(e, "journal", journal.key().as_str()))?;
    Ok(())
}

/// A unique violation of a script that books journals (`what`, `key`) as
/// [`StoreError::Duplicate`]; other errors as they are.
pub(crate) fn booked_twice(e: sqlx::Error, what: &str, key: &str) -> StoreError {
    if StoreError::unique_violation(&e).is_some() {
        StoreError::Duplicate(format!("{what} {key} is already booked"))
    } else {
        e.into()
    }
}

/// The head of a journal's insert, its columns in [`journal_values`]' order.
macro_rules! insert_journal {
    () => {
        "INSERT INTO journals (journal_key, kind, trade_id, refund_id, at) "
    };
}
/// The head of its entries' insert: the journal's row number, then
/// [`entry_values`].
macro_rules! insert_entries {
    () => {
        "INSERT INTO journal_entries (journal_id, account, side, amount) "
    };
}
pub(crate) use {insert_entries, insert_journal};

/// The two statements that book `journal`: its row, then all its entries in
/// one insert that finds the row by its key.
pub(crate) fn push_journal(script: &mut Script, journal: &Journal) {
    script.push(
        concat!(insert_journal!(), "VALUES ($1, $2, $3, $4, $5)"),
        journal_values(journal),
    );
    let mut sql = String::from(concat!(insert_entries!(), "VALUES "));
    let mut values: Vec<Value> = vec![journal.key().as_str().into()];
    for (i, entry) in journal.entries().iter().enumerate() {
        let p = 1 + 3 * i;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "((SELECT id FROM journals WHERE journal_key = $1), ${}, ${}, ${})",
            p + 1,
            p + 2,
            p + 3
        ));
        values.extend(entry_values(entry));
    }
    script.push(sql, values);
}

/// A journal's row: key, kind, trade, refund, time.
pub(crate) fn journal_values(journal: &Journal) -> Vec<Value> {
    vec![
        journal.key().as_str().into(),
        journal.kind().as_str().into(),
        journal.trade().get().into(),
        journal.refund().map(|r| r.get()).into(),
        ms(journal.at()).into(),
    ]
}

/// An entry's account, side and amount.
pub(crate) fn entry_values(entry: &Entry) -> Vec<Value> {
    vec![
        entry.account.code().into(),
        side_str(entry.side).into(),
        entry.amount.get().into(),
    ]
}

#[derive(Debug, sqlx::FromRow)]
struct EntryRow {
    journal_id: i64,
    journal_key: String,
    kind: String,
    trade_id: i64,
    refund_id: Option<i64>,
    at: i64,
    account: String,
    side: String,
    amount: i64,
}

impl Store {
    /// Every journal, in booking order.
    pub async fn journals(&self) -> Result<Vec<Journal>, StoreError> {
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT j.id AS journal_id, j.journal_key, j.kind, j.trade_id, j.refund_id, j.at, \
             e.account, e.side, e.amount \
             FROM journals j JOIN journal_entries e ON e.journal_id = j.id \
             ORDER BY j.id, e.id",
        )
        .fetch_all(&self.pool)
        .await?;
        // Rows come ordered by journal; each journal is its head plus entries.
        type Head = (String, String, i64, Option<i64>, i64);
        let mut grouped: BTreeMap<i64, (Head, Vec<Entry>)> = BTreeMap::new();
        for row in rows {
            let entry = Entry {
                account: Account::parse(&row.account)
                    .ok_or_else(|| StoreError::corrupt(format!("account {:?}", row.account)))?,
                side: match row.side.as_str() {
                    "debit" => Side::Debit,
                    "credit" => Side::Credit,
                    other => return Err(StoreError::corrupt(format!("side {other:?}"))),
                },
                amount: Fen::new(row.amount),
            };
            grouped
                .entry(row.journal_id)
                .or_insert_with(|| {
                    let head = (
                        row.journal_key,
                        row.kind,
                        row.trade_id,
                        row.refund_id,
                        row.at,
                    );
                    (head, Vec::new())
                })
                .1
                .push(entry);
        }
        grouped
            .into_values()
            .map(|((key, kind, trade, refund, at), entries)| {
                let refund = refund
                    .map(jianlian_core::ids::RefundId::new)
                    .transpose()
                    .map_err(StoreError::corrupt)?;
                let kind = JournalKind::parse(&kind)
                    .ok_or_else(|| StoreError::corrupt(format!("journal kind {kind:?}")))?;
                // The constructor re-checks the balance of what was read.
                Journal::new(
                    JournalKey::from_stored(key),
                    kind,
                    trade_id(trade)?,
                    refund,
                    ts(at)?,
                    entries,
                )
                .map_err(StoreError::from)
            })
            .collect()
    }

    /// `jianlian ledger check`: every journal balances and the trial balance
    /// is zero. Returns the balances per account.
    pub async fn ledger_check(&self) -> Result<TrialBalance, StoreError> {
        let journals = self.journals().await?;
        Ok(check(&journals)?)
    }
}
