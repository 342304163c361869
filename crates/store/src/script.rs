//! Several statements of one transaction sent as one.
//!
//! Every SQLite statement is a round trip to the connection's own thread
//! (sqlx runs SQLite there): two context switches, which on the pay path
//! cost more CPU than SQLite's own work. A [`Script`] collects the
//! statements a write knows in advance and sends them in one round trip on
//! SQLite: one query string, its placeholders renumbered so that each
//! statement's `$N` points at its own values. sqlx's SQLite driver runs
//! every statement of such a query and reports each one's result; that
//! driver behaviour is what this relies on (sqlx marks it deprecated for
//! removal; the store's contract tests pin it). PostgreSQL prepares one
//! statement per query, so there each statement goes on its own, as before.

use std::borrow::Cow;

use futures_util::TryStreamExt as _;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Either, Executor as _};

/// A bound value. The schema stores money, time and numbers as BIGINT and
/// everything else as TEXT.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(Some(v))
    }
}

impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Value {
        Value::Int(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(Some(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(Some(v.to_owned()))
    }
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        Value::Text(v)
    }
}

/// Binds `values` to `query` in order.
pub(crate) fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments>,
    values: Vec<Value>,
) -> Query<'q, Any, AnyArguments> {
    for value in values {
        query = match value {
            Value::Int(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
        };
    }
    query
}

/// What the statements of a script returned: the rows of every statement
/// that returns rows, and the rows each statement wrote, in order.
#[derive(Default)]
pub(crate) struct Ran {
    pub rows: Vec<AnyRow>,
    pub affected: Vec<u64>,
}

impl Ran {
    /// The first statement wrote no row (a compare-and-set that failed).
    pub(crate) fn first_wrote_nothing(&self) -> bool {
        self.affected.first() == Some(&0)
    }
}

/// Runs `sql` (one query, maybe several statements) with `values` and
/// collects its results. `skip` leading statements (a `BEGIN` put in front)
/// are left out of [`Ran::affected`].
pub(crate) async fn run_sql(
    conn: &mut AnyConnection,
    sql: String,
    values: Vec<Value>,
    skip: usize,
) -> Result<Ran, sqlx::Error> {
    let query = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), values);
    let mut results = conn.fetch_many(query);
    let mut ran = Ran::default();
    let mut seen = 0;
    while let Some(result) = results.try_next().await? {
        match result {
            Either::Left(done) => {
                if seen >= skip {
                    ran.affected.push(done.rows_affected());
                }
                seen += 1;
            }
            Either::Right(row) => ran.rows.push(row),
        }
    }
    Ok(ran)
}

/// Statements to run together, each with its own values and `$1`-based
/// placeholders.
#[derive(Debug, Default)]
pub(crate) struct Script {
    parts: Vec<(Cow<'static, str>, Vec<Value>)>,
    /// The first statement is a compare-and-set: when it writes no row the
    /// rest must not stay (see [`Script::guarded`]).
    guarded: bool,
}

impl Script {
    /// A script whose first statement is a compare-and-set. When it writes
    /// no row ([`Ran::first_wrote_nothing`]), PostgreSQL does not run the
    /// rest and [`crate::Txn::commit_with`] rolls back there. On SQLite the
    /// rest runs in the same round trip, so the caller must hold the row
    /// (the writer's lock) for the set to be sure, or stop the script
    /// itself when the set wrote nothing (the trades module's
    /// `STOP_IF_STALE`, for a copy of the row it does not hold).
    pub(crate) fn guarded(sql: impl Into<Cow<'static, str>>, values: Vec<Value>) -> Script {
        Script {
            parts: vec![(sql.into(), values)],
            guarded: true,
        }
    }

    pub(crate) fn is_guarded(&self) -> bool {
        self.guarded
    }

    pub(crate) fn push(&mut self, sql: impl Into<Cow<'static, str>>, values: Vec<Value>) {
        self.parts.push((sql.into(), values));
    }

    /// The statements as one SQLite query, placeholders renumbered.
    pub(crate) fn joined(self) -> (String, Vec<Value>) {
        let mut sql = String::new();
        let mut values = Vec::new();
        for (part, part_values) in self.parts {
            if !sql.is_empty() {
                sql.push_str("; ");
            }
            renumber_into(&mut sql, &part, values.len());
            values.extend(part_values);
        }
        (sql, values)
    }

    /// Runs the statements in the caller's transaction: in one round trip on
    /// SQLite, one by one on PostgreSQL. Stops at the first error.
    pub(crate) async fn run(self, conn: &mut AnyConnection) -> Result<Ran, sqlx::Error> {
        if conn.backend_name() == "SQLite" {
            let (sql, values) = self.joined();
            return run_sql(conn, sql, values, 0).await;
        }
        let mut ran = Ran::default();
        let guarded = self.guarded;
        for (sql, values) in self.parts {
            let one = run_sql(conn, sql.into_owned(), values, 0).await?;
            ran.rows.extend(one.rows);
            ran.affected.extend(one.affected);
            if guarded && ran.first_wrote_nothing() {
                break;
            }
        }
        Ok(ran)
    }
}

/// Appends `sql` to `out` with every placeholder `$N` outside string
/// literals written as `$(N + offset)`.
fn renumber_into(out: &mut String, sql: &str, offset: usize) {
    let mut in_literal = false;
    let mut chars = sql.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '\'' {
            in_literal = !in_literal;
        }
        if c != '$' || in_literal {
            out.push(c);
            continue;
        }
        let mut n = 0_usize;
        let mut digits = 0;
        while let Some(&(_, d)) = chars.peek() {
            let Some(v) = d.to_digit(10) else { break };
            n = n * 10 + v as usize;
            digits += 1;
            chars.next();
        }
        out.push('$');
        if digits > 0 {
            out.push_str(&(n + offset).to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_literals() {
        let mut s = Script::default();
        s.push("INSERT INTO a VALUES ($1, $2)", vec![1.into(), 2.into()]);
        s.push(
            "UPDATE b SET x = $2, p = '$1' WHERE y = $1",
            vec![3.into(), 4.into()],
        );
        s.push("DELETE FROM c WHERE z = $10", vec![]);
        let (sql, values) = s.joined();
        assert_eq!(
            sql,
            "INSERT INTO a VALUES ($1, $2); UPDATE b SET x = $4, p = '$1' WHERE y = $3; \
             DELETE FROM c WHERE z = $14"
        );
        assert_eq!(values.len(), 4);
    }

    #[tokio::test]
    async fn sqlite_runs_every_statement_of_one_query_with_its_own_values() {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = AnyConnection::connect("sqlite::memory:").await.unwrap();
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
            .await
            .unwrap();
        let mut s = Script::default();
        s.push(
            "INSERT INTO t (id, v) VALUES ($1, $2) RETURNING id",
            vec![7.into(), "a".into()],
        );
        s.push(
            "UPDATE t SET v = $1 WHERE id = $2",
            vec!["b".into(), 8.into()],
        );
        s.push(
            "UPDATE t SET v = $2 WHERE id = $1",
            vec![7.into(), "c".into()],
        );
        let ran = s.run(&mut conn).await.unwrap();
        assert_eq!(ran.affected, vec![1, 0, 1]);
        assert_eq!(ran.rows.len(), 1);
        let v: String = sqlx::query_scalar("SELECT v FROM t WHERE id = 7")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, "c");
    }
}
