//! Where a meshgate control plane keeps its Kuma resources — the counterpart of Kuma's `ResourceStore`.
//!
//! One [`ResourceStore`] trait (get, list by type and mesh with Kuma's offset pagination, put with optimistic
//! concurrency on a per-resource version, delete, and a change feed) with three implementations chosen by URL
//! ([`open`]): `sqlite:PATH` (the embedded default), `postgres://…` (several control-plane replicas share one
//! database and see each other's writes through `LISTEN`/`NOTIFY`) and `memory:` (tests, `meshgate run`). Both SQL
//! dialects share one schema and one set of statements; migrations are applied at start-up by [`migrate`].
//!
//! The store keeps documents, not meaning: a resource is its type, mesh, name, version and its Universal-form JSON.
//! Decoding and validation happen before a write (in the `api` crate, called by the control plane); the store never
//! validates, never compiles and never talks to a gateway.

mod memory;
pub mod migrate;
mod sql;

use std::fmt;
use std::future::Future;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use memory::MemoryStore;
pub use sql::SqlStore;

/// Which resource: its type (Kuma's name, e.g. `MeshGateway`), its mesh (empty for mesh-less types such as `Mesh`)
/// and its name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    /// Kuma's type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// The mesh; empty for types that belong to none.
    pub mesh: String,
    /// The name.
    pub name: String,
}

impl Key {
    /// A key.
    pub fn new(kind: impl Into<String>, mesh: impl Into<String>, name: impl Into<String>) -> Key {
        Key { kind: kind.into(), mesh: mesh.into(), name: name.into() }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mesh.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.mesh, self.name)
        }
    }
}

/// A stored resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    /// Which one.
    #[serde(flatten)]
    pub key: Key,
    /// Starts at 1 and grows by one with every write.
    pub version: u64,
    /// The resource in its Universal form.
    pub spec: serde_json::Value,
    /// When it was created (RFC 3339, UTC).
    pub creation_time: String,
    /// When it was last written (RFC 3339, UTC).
    pub modification_time: String,
}

/// What a write expects to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: the write creates the resource.
    Absent,
    /// This version: the write fails with [`StoreError::Conflict`] when someone wrote in between.
    Version(u64),
    /// Anything: create or overwrite.
    Any,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The resources, ordered by mesh, then name.
    pub items: Vec<Stored>,
    /// How many match in all.
    pub total: usize,
    /// The offset of the next page, when there is one.
    pub next: Option<usize>,
}

/// Which part of a listing: `size` resources from `offset` (`size` 0: all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// Resources to skip.
    pub offset: usize,
    /// Resources to return at most; 0 for all.
    pub size: usize,
}

/// A change seen by the store: a resource written (with its new version) or deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Which resource.
    #[serde(flatten)]
    pub key: Key,
    /// Its version after the change; `None` when it was deleted.
    pub version: Option<u64>,
}

/// What a watcher receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One resource changed.
    Changed(Change),
    /// Changes may have been missed (the connection to a shared database was lost and is back): read everything
    /// again.
    Resync,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The resource is not there.
    #[error("{0} not found")]
    NotFound(Key),
    /// A create found the resource already there.
    #[error("{0} already exists")]
    AlreadyExists(Key),
    /// The resource changed since the version the write expected.
    #[error("{key}: version conflict (expected {expected}, found {found})")]
    Conflict {
        /// Which resource.
        key: Key,
        /// The version the write expected.
        expected: u64,
        /// The version found; 0 when it is gone.
        found: u64,
    },
    /// A store URL meshgate does not know.
    #[error("store URL {0:?}: expected sqlite:PATH, postgres://… or memory:")]
    Url(String),
    /// The database failed.
    #[error("store: {0}")]
    Backend(#[from] sqlx::Error),
    /// A migration failed.
    #[error("store migration {version}: {source}")]
    Migration {
        /// The migration.
        version: i64,
        /// Why.
        source: sqlx::Error,
    },
    /// A stored document is not JSON (the database was written by something else).
    #[error("{key}: stored document is not JSON: {source}")]
    Corrupt {
        /// Which resource.
        key: Key,
        /// Why.
        source: serde_json::Error,
    },
}

/// Where resources live. Every implementation passes the same conformance tests (`tests` module).
pub trait ResourceStore: Send + Sync {
    /// One resource, if it is there.
    fn get(&self, key: &Key) -> impl Future<Output = Result<Option<Stored>, StoreError>> + Send;

    /// The resources of one type, in one mesh or in all (`mesh` `None`), ordered by mesh then name.
    fn list(
        &self,
        kind: &str,
        mesh: Option<&str>,
        range: Range,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;

    /// Writes a resource if `expect` holds; returns it as stored (with its new version).
    fn put(
        &self,
        key: &Key,
        spec: &serde_json::Value,
        expect: Expect,
    ) -> impl Future<Output = Result<Stored, StoreError>> + Send;

    /// Deletes a resource (at `version`, when given).
    fn delete(&self, key: &Key, version: Option<u64>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every resource of every type: what a control plane compiles from.
    fn all(&self) -> impl Future<Output = Result<Vec<Stored>, StoreError>> + Send;

    /// The change feed: every write and delete from now on, including other replicas' on a shared database. A
    /// receiver that falls behind gets `Lagged`, or [`Event::Resync`], and must re-read with [`ResourceStore::all`].
    fn watch(&self) -> broadcast::Receiver<Event>;
}

/// A store of any kind, chosen at start-up by URL.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// `memory:`
    Memory(MemoryStore),
    /// `sqlite:PATH` or `postgres://…`
    Sql(SqlStore),
}

/// Opens the store a URL names and brings its schema up to date: `sqlite:PATH` (created when missing),
/// `postgres://USER@HOST:PORT/DB` (or `postgresql://`), or `memory:`.
pub async fn open(url: &str) -> Result<AnyStore, StoreError> {
    if url == "memory:" || url == "memory" {
        return Ok(AnyStore::Memory(MemoryStore::new()));
    }
    if url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(AnyStore::Sql(SqlStore::connect(url).await?));
    }
    Err(StoreError::Url(url.to_owned()))
}

impl ResourceStore for AnyStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, StoreError> {
        match self {
            AnyStore::Memory(s) => s.get(key).await,
            AnyStore::Sql(s) => s.get(key).await,
        }
    }

    async fn list(&self, kind: &str, mesh: Option<&str>, range: Range) -> Result<Page, StoreError> {
        match self {
            AnyStore::Memory(s) => s.list(kind, mesh, range).await,
            AnyStore::Sql(s) => s.list(kind, mesh, range).await,
        }
    }

    async fn put(&self, key: &Key, spec: &serde_json::Value, expect: Expect) -> Result<Stored, StoreError> {
        match self {
            AnyStore::Memory(s) => s.put(key, spec, expect).await,
            AnyStore::Sql(s) => s.put(key, spec, expect).await,
        }
    }

    async fn delete(&self, key: &Key, version: Option<u64>) -> Result<(), StoreError> {
        match self {
            AnyStore::Memory(s) => s.delete(key, version).await,
            AnyStore::Sql(s) => s.delete(key, version).await,
        }
    }

    async fn all(&self) -> Result<Vec<Stored>, StoreError> {
        match self {
            AnyStore::Memory(s) => s.all().await,
            AnyStore::Sql(s) => s.all().await,
        }
    }

    fn watch(&self) -> broadcast::Receiver<Event> {
        match self {
            AnyStore::Memory(s) => s.watch(),
            AnyStore::Sql(s) => s.watch(),
        }
    }
}

/// Changes a slow watcher may fall behind by before it is told to re-read everything.
const FEED: usize = 4096;

/// Now, as stored: RFC 3339 in UTC.
fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// The page `range` of `total` items, as (offset, size, next).
fn window(range: Range, total: usize) -> (usize, usize, Option<usize>) {
    let offset = range.offset.min(total);
    let size = if range.size == 0 { total - offset } else { range.size.min(total - offset) };
    let end = offset + size;
    (offset, size, (end < total).then_some(end))
}

#[cfg(test)]
mod tests;
