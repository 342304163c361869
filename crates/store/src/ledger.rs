//! The ledger's tables: journals are written only inside the transaction of
//! the change they book, and read back whole for [`jianlian_core::ledger::check`].

use std::collections::BTreeMap;

use jianlian_alipay::Fen;
use jianlian_core::ledger::{
    Account, Entry, Journal, JournalKey, JournalKind, Side, TrialBalance, check,
};
use sqlx::AnyConnection;

use crate::rows::{ms, trade_id, ts};
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
    let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
        "INSERT INTO journals (journal_key, kind, trade_id, refund_id, at) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(journal.key().as_str().to_owned())
    .bind(journal.kind().as_str())
    .bind(journal.trade().get())
    .bind(journal.refund().map(|r| r.get()))
    .bind(ms(journal.at()))
    .fetch_one(&mut *conn)
    .await;
    let id = match inserted {
        Ok(id) => id,
        Err(e) if StoreError::unique_violation(&e).is_some() => {
            return Err(StoreError::Duplicate(format!(
                "journal {} is already booked",
                journal.key().as_str()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    // All entries in one statement: one round trip per journal, not per line.
    let entries = journal.entries();
    let mut sql =
        String::from("INSERT INTO journal_entries (journal_id, account, side, amount) VALUES ");
    for i in 0..entries.len() {
        let p = 4 * i;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4));
    }
    let mut insert = sqlx::query(sqlx::AssertSqlSafe(sql));
    for entry in entries {
        insert = insert
            .bind(id)
            .bind(entry.account.code())
            .bind(side_str(entry.side))
            .bind(entry.amount.get());
    }
    insert.execute(&mut *conn).await?;
    Ok(())
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
