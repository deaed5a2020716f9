//! The in-memory store: a sorted map behind a lock, for tests and for `meshgate run`'s embedded store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;

use crate::{Change, Event, Expect, Key, Page, Range, ResourceStore, StoreError, Stored};

/// Resources in memory; clones share them.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    resources: Mutex<BTreeMap<Key, Stored>>,
    feed: broadcast::Sender<Event>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        let (feed, _) = broadcast::channel(crate::FEED);
        MemoryStore { inner: Arc::new(Inner { resources: Mutex::new(BTreeMap::new()), feed }) }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<Key, Stored>> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.inner.resources.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn notify(&self, key: &Key, version: Option<u64>) {
        // No watcher is not an error.
        let _ = self.inner.feed.send(Event::Changed(Change { key: key.clone(), version }));
    }
}

impl ResourceStore for MemoryStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }

    async fn list(&self, kind: &str, mesh: Option<&str>, range: Range) -> Result<Page, StoreError> {
        let map = self.lock();
        // Keys sort by type, mesh, name: one type's resources are contiguous and already in order.
        let matching: Vec<&Stored> = map
            .range(Key::new(kind, "", "")..)
            .take_while(|(k, _)| k.kind == kind)
            .filter(|(k, _)| mesh.is_none_or(|m| k.mesh == m))
            .map(|(_, v)| v)
            .collect();
        let (offset, size, next) = crate::window(range, matching.len());
        Ok(Page {
            items: matching[offset..offset + size].iter().map(|s| (*s).clone()).collect(),
            total: matching.len(),
            next,
        })
    }

    async fn put(&self, key: &Key, spec: &serde_json::Value, expect: Expect) -> Result<Stored, StoreError> {
        let stored = {
            let mut map = self.lock();
            let now = crate::now();
            let current = map.get(key);
            let stored = match (current, expect) {
                (Some(_), Expect::Absent) => return Err(StoreError::AlreadyExists(key.clone())),
                (None, Expect::Version(expected)) => {
                    return Err(StoreError::Conflict { key: key.clone(), expected, found: 0 });
                }
                (Some(c), Expect::Version(expected)) if c.version != expected => {
                    return Err(StoreError::Conflict { key: key.clone(), expected, found: c.version });
                }
                (Some(c), _) => Stored {
                    key: key.clone(),
                    version: c.version + 1,
                    spec: spec.clone(),
                    creation_time: c.creation_time.clone(),
                    modification_time: now,
                },
                (None, _) => Stored {
                    key: key.clone(),
                    version: 1,
                    spec: spec.clone(),
                    creation_time: now.clone(),
                    modification_time: now,
                },
            };
            map.insert(key.clone(), stored.clone());
            stored
        };
        self.notify(key, Some(stored.version));
        Ok(stored)
    }

    async fn delete(&self, key: &Key, version: Option<u64>) -> Result<(), StoreError> {
        {
            let mut map = self.lock();
            let Some(current) = map.get(key) else { return Err(StoreError::NotFound(key.clone())) };
            if let Some(expected) = version
                && current.version != expected
            {
                return Err(StoreError::Conflict { key: key.clone(), expected, found: current.version });
            }
            map.remove(key);
        }
        self.notify(key, None);
        Ok(())
    }

    async fn all(&self) -> Result<Vec<Stored>, StoreError> {
        Ok(self.lock().values().cloned().collect())
    }

    fn watch(&self) -> broadcast::Receiver<Event> {
        self.inner.feed.subscribe()
    }
}
