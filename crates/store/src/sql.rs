//! The SQL store: SQLite (embedded) or PostgreSQL (shared by replicas), one schema and one set of statements
//! through sqlx's `Any` driver.
//!
//! Writes check the expected version inside the statement (`UPDATE … WHERE version = $n`), so two writers never both
//! win. On PostgreSQL every write also sends a `NOTIFY` in its transaction; each replica `LISTEN`s and feeds what it
//! hears (its own writes included) to its watchers, so a change made through any replica reaches all of them. On
//! SQLite the feed is in-process.

use std::sync::Arc;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use tokio::sync::broadcast;

use crate::{Change, Event, Expect, Key, Page, Range, ResourceStore, StoreError, Stored};

/// The channel replicas announce changes on.
const CHANNEL: &str = "meshgate_resources";

/// A store in SQLite or PostgreSQL; clones share the pool.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    postgres: bool,
    feed: broadcast::Sender<Event>,
    /// Ends the PostgreSQL listener when the last clone goes.
    _listener: Option<Arc<ListenerTask>>,
}

#[derive(Debug)]
struct ListenerTask(tokio::task::JoinHandle<()>);

impl Drop for ListenerTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The columns every query returns, in the order [`stored`] reads them (a macro so that statements stay literals).
macro_rules! columns {
    () => {
        "type, mesh, name, version, spec, creation_time, modification_time"
    };
}

impl SqlStore {
    /// Connects, applies the migrations, and (PostgreSQL) starts listening for other replicas' changes.
    pub async fn connect(url: &str) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
        let url = if postgres || url.contains('?') { url.to_owned() } else { format!("{url}?mode=rwc") };
        let pool = AnyPoolOptions::new().max_connections(if postgres { 8 } else { 4 }).connect(&url).await?;
        {
            let mut conn = pool.acquire().await?;
            if !postgres {
                // Readers do not block the writer; waiting writers retry instead of failing at once.
                sqlx::query("PRAGMA journal_mode=WAL").execute(&mut *conn).await?;
            }
            crate::migrate::migrate(&mut conn, postgres).await?;
        }
        let (feed, _) = broadcast::channel(crate::FEED);
        let listener = if postgres {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Some(Arc::new(ListenerTask(tokio::spawn(listen(listener, feed.clone())))))
        } else {
            None
        };
        Ok(SqlStore { pool, postgres, feed, _listener: listener })
    }

    /// Announces a committed change: to this process's watchers (SQLite), or to every replica's (PostgreSQL,
    /// inside the transaction, so that it is heard only if the change commits).
    async fn announce(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        key: &Key,
        version: Option<u64>,
    ) -> Result<(), StoreError> {
        if self.postgres {
            let payload = serde_json::to_string(&Change { key: key.clone(), version }).unwrap_or_default();
            sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&mut **tx).await?;
        }
        Ok(())
    }

    fn local_feed(&self, key: &Key, version: Option<u64>) {
        if !self.postgres {
            let _ = self.feed.send(Event::Changed(Change { key: key.clone(), version }));
        }
    }
}

/// Feeds PostgreSQL notifications to the watchers. After a lost connection (sqlx reconnects on the next receive)
/// the watchers are told to re-read everything, since notifications sent meanwhile are gone.
async fn listen(mut listener: sqlx::postgres::PgListener, feed: broadcast::Sender<Event>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(n)) => match serde_json::from_str::<Change>(n.payload()) {
                Ok(change) => {
                    let _ = feed.send(Event::Changed(change));
                }
                Err(e) => tracing::warn!(error = %e, "unreadable store notification"),
            },
            Ok(None) => {
                tracing::warn!("store notification connection lost; reconnecting");
                let _ = feed.send(Event::Resync);
            }
            Err(e) => {
                tracing::warn!(error = %e, "store notifications unavailable");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    }
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or_default()
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn stored(row: &AnyRow) -> Result<Stored, StoreError> {
    let key = Key { kind: row.try_get(0)?, mesh: row.try_get(1)?, name: row.try_get(2)? };
    let spec: String = row.try_get(4)?;
    let spec = serde_json::from_str(&spec).map_err(|source| StoreError::Corrupt { key: key.clone(), source })?;
    Ok(Stored {
        key,
        version: to_u64(row.try_get(3)?),
        spec,
        creation_time: row.try_get(5)?,
        modification_time: row.try_get(6)?,
    })
}

impl ResourceStore for SqlStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, StoreError> {
        let row =
            sqlx::query(concat!("SELECT ", columns!(), " FROM resources WHERE type = $1 AND mesh = $2 AND name = $3"))
                .bind(&key.kind)
                .bind(&key.mesh)
                .bind(&key.name)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(stored).transpose()
    }

    async fn list(&self, kind: &str, mesh: Option<&str>, range: Range) -> Result<Page, StoreError> {
        // One snapshot for the count and the page.
        let mut tx = self.pool.begin().await?;
        let (count, page) = match mesh {
            Some(_) => (
                sqlx::query("SELECT COUNT(*) FROM resources WHERE type = $1 AND mesh = $2"),
                sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM resources WHERE type = $1 AND mesh = $2 ORDER BY mesh, name LIMIT $3 OFFSET $4"
                )),
            ),
            None => (
                sqlx::query("SELECT COUNT(*) FROM resources WHERE type = $1"),
                sqlx::query(concat!(
                    "SELECT ",
                    columns!(),
                    " FROM resources WHERE type = $1 ORDER BY mesh, name LIMIT $2 OFFSET $3"
                )),
            ),
        };
        let (count, page) = match mesh {
            Some(m) => (count.bind(kind).bind(m), page.bind(kind).bind(m)),
            None => (count.bind(kind), page.bind(kind)),
        };
        let total: i64 = count.fetch_one(&mut *tx).await?.try_get(0)?;
        let total = usize::try_from(total).unwrap_or_default();
        let (offset, size, next) = crate::window(range, total);
        let rows = page
            .bind(i64::try_from(size).unwrap_or(i64::MAX))
            .bind(i64::try_from(offset).unwrap_or(i64::MAX))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Page { items: rows.iter().map(stored).collect::<Result<_, _>>()?, total, next })
    }

    async fn put(&self, key: &Key, spec: &serde_json::Value, expect: Expect) -> Result<Stored, StoreError> {
        let text = spec.to_string();
        let now = crate::now();
        let mut tx = self.pool.begin().await?;
        let row = match expect {
            Expect::Absent => sqlx::query(concat!(
                "INSERT INTO resources (",
                columns!(),
                ") VALUES ($1, $2, $3, 1, $4, $5, $5) ON CONFLICT (type, mesh, name) DO NOTHING RETURNING ",
                columns!()
            )),
            Expect::Any => sqlx::query(concat!(
                "INSERT INTO resources (",
                columns!(),
                ") VALUES ($1, $2, $3, 1, $4, $5, $5) ON CONFLICT (type, mesh, name) DO UPDATE SET ",
                "version = resources.version + 1, spec = excluded.spec, ",
                "modification_time = excluded.modification_time RETURNING ",
                columns!()
            )),
            Expect::Version(_) => sqlx::query(concat!(
                "UPDATE resources SET version = version + 1, spec = $4, modification_time = $5 ",
                "WHERE type = $1 AND mesh = $2 AND name = $3 AND version = $6 RETURNING ",
                columns!()
            )),
        }
        .bind(&key.kind)
        .bind(&key.mesh)
        .bind(&key.name)
        .bind(text)
        .bind(now);
        let row = match expect {
            Expect::Version(v) => row.bind(to_i64(v)),
            _ => row,
        }
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            // Nothing written: say why, from what is there now.
            drop(tx);
            return Err(match expect {
                Expect::Absent => StoreError::AlreadyExists(key.clone()),
                Expect::Version(expected) => {
                    let found = self.get(key).await?.map_or(0, |s| s.version);
                    StoreError::Conflict { key: key.clone(), expected, found }
                }
                Expect::Any => StoreError::Backend(sqlx::Error::RowNotFound),
            });
        };
        let result = stored(&row)?;
        self.announce(&mut tx, key, Some(result.version)).await?;
        tx.commit().await?;
        self.local_feed(key, Some(result.version));
        Ok(result)
    }

    async fn delete(&self, key: &Key, version: Option<u64>) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let sql = match version {
            Some(_) => "DELETE FROM resources WHERE type = $1 AND mesh = $2 AND name = $3 AND version = $4",
            None => "DELETE FROM resources WHERE type = $1 AND mesh = $2 AND name = $3",
        };
        let query = sqlx::query(sql).bind(&key.kind).bind(&key.mesh).bind(&key.name);
        let query = match version {
            Some(v) => query.bind(to_i64(v)),
            None => query,
        };
        if query.execute(&mut *tx).await?.rows_affected() == 0 {
            drop(tx);
            return Err(match (version, self.get(key).await?) {
                (Some(expected), Some(current)) => {
                    StoreError::Conflict { key: key.clone(), expected, found: current.version }
                }
                _ => StoreError::NotFound(key.clone()),
            });
        }
        self.announce(&mut tx, key, None).await?;
        tx.commit().await?;
        self.local_feed(key, None);
        Ok(())
    }

    async fn all(&self) -> Result<Vec<Stored>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", columns!(), " FROM resources ORDER BY type, mesh, name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored).collect()
    }

    fn watch(&self) -> broadcast::Receiver<Event> {
        self.feed.subscribe()
    }
}
