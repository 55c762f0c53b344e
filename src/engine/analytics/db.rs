//! The analytics store on sqlx (one code path for SQLite and PostgreSQL through sqlx's `Any` driver, run-time
//! queries): bounded connect and acquire timeouts, the embedded per-backend migrations applied on open with the
//! schema version recorded, batched inserts in one transaction, and the persisted counters (dropped events).

use std::collections::HashMap;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::{Any, Row, Transaction};

use super::record::Record;
use super::url::{Backend, DbUrl};
use crate::engine::error::{EmaError, Result};

/// The schema version this build writes (the highest migration).
pub const SCHEMA_VERSION: i64 = 1;

/// (version, name, SQL) per backend, applied in order.
const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "events",
    include_str!("migrations/sqlite/0001_events.sql"),
)];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "events",
    include_str!("migrations/postgres/0001_events.sql"),
)];

/// How long opening (and each later connection) may take before the database counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Rows per INSERT statement (12 parameters each, well under SQLite's and PostgreSQL's limits).
const ROWS_PER_STATEMENT: usize = 1000;

const COLUMNS: &str = "ts_ms, kind, model_id, face, substitute, score, bytes, duration_ms, retries, rate, result, \
                       detail, source_key";
const NCOLS: usize = 13;

/// Counter name prefix for dropped events (`dropped:<kind>`).
pub const DROPPED_PREFIX: &str = "dropped:";

/// An open analytics database with its schema up to date.
#[derive(Clone, Debug)]
pub struct AnalyticsDb {
    pool: AnyPool,
    url: DbUrl,
}

impl AnalyticsDb {
    /// Connect (bounded by [`CONNECT_TIMEOUT`]) and apply the migrations this database lacks. A SQLite file is
    /// created (and, for the default location, its directory).
    pub async fn open(url: &DbUrl) -> Result<Self> {
        sqlx::any::install_default_drivers();
        if let Some(path) = url.sqlite_path()
            && let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.is_dir()
        {
            return Err(EmaError::Config(format!(
                "the directory {} for the analytics database does not exist; create it or choose another \
                 --db-url / analytics.db_url",
                dir.display()
            )));
        }
        let sqlite = url.backend() == Backend::Sqlite;
        let opts = AnyPoolOptions::new()
            .max_connections(if sqlite { 2 } else { 4 })
            .min_connections(0)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(Some(Duration::from_secs(60)))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if sqlite {
                        for p in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA busy_timeout = 5000",
                        ] {
                            sqlx::query(p).execute(&mut *conn).await?;
                        }
                    } else {
                        sqlx::query("SET statement_timeout = 10000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            });
        let pool = tokio::time::timeout(CONNECT_TIMEOUT * 2, opts.connect(url.connect_url()))
            .await
            .map_err(|_| unreachable_error(url, "timed out"))?
            .map_err(|e| unreachable_error(url, &e.to_string()))?;
        let db = AnalyticsDb {
            pool,
            url: url.clone(),
        };
        db.migrate().await?;
        Ok(db)
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// An error from this database, with its password scrubbed.
    pub(super) fn err(&self, what: &str, e: sqlx::Error) -> EmaError {
        EmaError::Other(format!(
            "analytics database {}: {what}: {}",
            self.url.redacted(),
            self.url.scrub(&e.to_string())
        ))
    }

    async fn migrate(&self) -> Result<()> {
        let migrations = match self.url.backend() {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let mut tx = self.pool.begin().await.map_err(|e| self.err("begin", e))?;
        if self.url.backend() == Backend::Postgres {
            // Two processes opening a fresh database at once: one migrates, the other waits.
            sqlx::query("SELECT pg_advisory_xact_lock(7368101)")
                .execute(&mut *tx)
                .await
                .map_err(|e| self.err("lock", e))?;
        }
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS ema_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
             applied_at_ms BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err("create ema_schema", e))?;
        let current = version_in(&mut tx)
            .await
            .map_err(|e| self.err("read schema version", e))?;
        if current > SCHEMA_VERSION {
            return Err(EmaError::Config(format!(
                "the analytics database {} has schema version {current}, newer than this ema knows \
                 ({SCHEMA_VERSION}); upgrade ema or point --db-url elsewhere",
                self.url.redacted()
            )));
        }
        for (version, name, sql) in migrations.iter().filter(|m| m.0 > current) {
            for stmt in statements(sql) {
                sqlx::query(&stmt)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.err(&format!("migration {version} ({name})"), e))?;
            }
            sqlx::query(
                "INSERT INTO ema_schema (version, name, applied_at_ms) VALUES ($1, $2, $3)",
            )
            .bind(*version)
            .bind(*name)
            .bind(super::record::now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("record schema version", e))?;
        }
        tx.commit().await.map_err(|e| self.err("commit", e))
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err("begin", e))?;
        let v = version_in(&mut tx)
            .await
            .map_err(|e| self.err("read schema version", e))?;
        tx.rollback().await.map_err(|e| self.err("rollback", e))?;
        Ok(v)
    }

    /// Insert `records` and add `dropped` (kind → count) to the dropped counters, in one transaction. Records with
    /// a `source_key` already present are skipped. Returns how many rows were added.
    pub async fn write(&self, records: &[Record], dropped: &HashMap<String, u64>) -> Result<u64> {
        let mut tx = self.pool.begin().await.map_err(|e| self.err("begin", e))?;
        let mut added = 0;
        for chunk in records.chunks(ROWS_PER_STATEMENT) {
            added += insert_chunk(&mut tx, chunk, self.url.backend())
                .await
                .map_err(|e| self.err("insert events", e))?;
        }
        for (kind, n) in dropped.iter().filter(|(_, n)| **n > 0) {
            sqlx::query(
                "INSERT INTO counters (name, value) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value",
            )
            .bind(format!("{DROPPED_PREFIX}{kind}"))
            .bind(*n as i64)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err("count dropped events", e))?;
        }
        tx.commit().await.map_err(|e| self.err("commit", e))?;
        Ok(added)
    }

    /// Every counter whose name starts with `prefix`, prefix removed.
    pub async fn counters(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query("SELECT name, value FROM counters WHERE name LIKE $1 ORDER BY name")
            .bind(format!("{prefix}%"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.err("read counters", e))?;
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let v: i64 = r.get(1);
                (name[prefix.len()..].to_string(), v.max(0) as u64)
            })
            .collect())
    }

    /// Close the pool (waits for connections in use to be returned).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn unreachable_error(url: &DbUrl, e: &str) -> EmaError {
    EmaError::Other(format!(
        "cannot open the analytics database {}: {}; check that it runs and the URL is right (--db-url or \
         analytics.db_url)",
        url.redacted(),
        url.scrub(e)
    ))
}

async fn version_in(tx: &mut Transaction<'static, Any>) -> std::result::Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM ema_schema")
        .fetch_one(&mut **tx)
        .await?;
    row.try_get(0)
}

/// The SQL statements of a migration file (split on `;`, comment lines dropped).
fn statements(sql: &str) -> Vec<String> {
    sql.split(';')
        .map(|s| {
            s.lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .filter(|s| !s.trim().is_empty())
        .collect()
}

/// One multi-row INSERT. SQLite gets anonymous `?` placeholders (its parser looks each named `$N` up in a list,
/// quadratic in a 13,000-parameter statement); PostgreSQL needs `$N`.
async fn insert_chunk(
    tx: &mut Transaction<'static, Any>,
    chunk: &[Record],
    backend: Backend,
) -> std::result::Result<u64, sqlx::Error> {
    let mut sql = String::with_capacity(64 + chunk.len() * NCOLS * 5);
    sql.push_str("INSERT INTO events (");
    sql.push_str(COLUMNS);
    sql.push_str(") VALUES ");
    let mut n = 0;
    for (i, _) in chunk.iter().enumerate() {
        if i > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..NCOLS {
            n += 1;
            if c > 0 {
                sql.push(',');
            }
            if backend == Backend::Sqlite {
                sql.push('?');
            } else {
                sql.push('$');
                sql.push_str(&n.to_string());
            }
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (source_key) DO NOTHING");
    let mut q = sqlx::query(&sql);
    for r in chunk {
        q = q
            .bind(r.ts_ms)
            .bind(r.kind.clone())
            .bind(r.model_id.clone())
            .bind(r.face.clone())
            .bind(r.substitute.clone())
            .bind(r.score)
            .bind(r.bytes)
            .bind(r.duration_ms)
            .bind(r.retries)
            .bind(r.rate)
            .bind(r.result.clone())
            .bind(r.detail.as_ref().map(|d| d.to_string()))
            .bind(r.source_key.clone());
    }
    Ok(q.execute(&mut **tx).await?.rows_affected())
}
