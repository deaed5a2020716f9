//! The schema and the small runner that brings a database up to it at start-up.
//!
//! Migrations are numbered and applied in order, each in its own transaction, and recorded in
//! `meshgate_migrations`; a database already at the latest version is left alone. On PostgreSQL the runner holds an
//! advisory lock, so that replicas starting together apply each migration once. The statements are written once for
//! both dialects (SQLite and PostgreSQL).

use sqlx::{AnyConnection, Connection, Executor, Row};

use crate::StoreError;

/// One schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Applied in increasing order.
    pub version: i64,
    /// What it does.
    pub name: &'static str,
    /// The statements, separated by `;`.
    pub sql: &'static str,
}

/// Every migration, oldest first. Never edit one that has shipped: add the next.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    name: "resources",
    sql: "CREATE TABLE IF NOT EXISTS resources (
            type TEXT NOT NULL,
            mesh TEXT NOT NULL,
            name TEXT NOT NULL,
            version BIGINT NOT NULL,
            spec TEXT NOT NULL,
            creation_time TEXT NOT NULL,
            modification_time TEXT NOT NULL,
            PRIMARY KEY (type, mesh, name)
        )",
}];

/// An arbitrary constant naming meshgate's migration lock among PostgreSQL advisory locks.
const LOCK: i64 = 0x6d65_7368_6761_7465;

/// Applies the migrations `conn` lacks; returns the versions it applied.
pub async fn migrate(conn: &mut AnyConnection, postgres: bool) -> Result<Vec<i64>, StoreError> {
    if postgres {
        sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK).execute(&mut *conn).await?;
    }
    let result = apply(conn).await;
    if postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK).execute(&mut *conn).await?;
    }
    result
}

async fn apply(conn: &mut AnyConnection) -> Result<Vec<i64>, StoreError> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS meshgate_migrations (
            version BIGINT PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )",
    )
    .await?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM meshgate_migrations")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let failed = |source| StoreError::Migration { version: m.version, source };
        let mut tx = conn.begin().await.map_err(failed)?;
        for statement in m.sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            tx.execute(statement).await.map_err(failed)?;
        }
        sqlx::query("INSERT INTO meshgate_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(crate::now())
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        tracing::info!(version = m.version, name = m.name, "store migration applied");
        done.push(m.version);
    }
    Ok(done)
}
