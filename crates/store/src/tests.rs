//! Conformance: the same tests against every store. PostgreSQL runs when `MESHGATE_TEST_POSTGRES` names a database
//! (`.ci/run` starts a throwaway cluster and sets it); under CI its absence is a failure, not a skip.

use std::time::Duration;

use serde_json::json;

use super::*;

/// A type name no other test (or earlier run against the same database) uses.
fn unique(kind: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{kind}-{}-{nanos}-{n}", std::process::id())
}

async fn next_change(rx: &mut broadcast::Receiver<Event>, kind: &str) -> Change {
    let wait = async {
        loop {
            match rx.recv().await {
                Ok(Event::Changed(c)) if c.key.kind == kind => return c,
                Ok(_) => {}
                Err(e) => panic!("feed: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), wait).await.expect("a change within 1 s")
}

/// Everything a store must do, in one pass.
async fn conformance(store: &impl ResourceStore) {
    let kind = unique("MeshGateway");
    let mut feed = store.watch();
    let key = Key::new(&kind, "default", "edge");
    let spec = json!({"type": "MeshGateway", "mesh": "default", "name": "edge", "conf": {"listeners": []}});

    // Create, then read back.
    assert!(store.get(&key).await.unwrap().is_none());
    let created = store.put(&key, &spec, Expect::Absent).await.unwrap();
    assert_eq!(created.version, 1);
    assert_eq!(created.spec, spec);
    assert_eq!(created.creation_time, created.modification_time);
    assert_eq!(store.get(&key).await.unwrap(), Some(created.clone()));
    assert_eq!(next_change(&mut feed, &kind).await, Change { key: key.clone(), version: Some(1) });

    // Creating again is refused.
    assert!(matches!(store.put(&key, &spec, Expect::Absent).await, Err(StoreError::AlreadyExists(k)) if k == key));

    // Update at the right version; a stale version conflicts and changes nothing.
    let spec2 =
        json!({"type": "MeshGateway", "mesh": "default", "name": "edge", "conf": {"listeners": [{"port": 80}]}});
    let updated = store.put(&key, &spec2, Expect::Version(1)).await.unwrap();
    assert_eq!(updated.version, 2);
    assert_eq!(updated.creation_time, created.creation_time);
    match store.put(&key, &spec, Expect::Version(1)).await {
        Err(StoreError::Conflict { expected: 1, found: 2, .. }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.get(&key).await.unwrap().unwrap().spec, spec2);
    assert_eq!(next_change(&mut feed, &kind).await.version, Some(2));

    // Unconditional writes create or bump.
    assert_eq!(store.put(&key, &spec, Expect::Any).await.unwrap().version, 3);
    let other = Key::new(&kind, "default", "another");
    assert_eq!(store.put(&other, &spec, Expect::Any).await.unwrap().version, 1);
    // An update of something missing conflicts with version 0.
    let missing = Key::new(&kind, "default", "missing");
    assert!(matches!(store.put(&missing, &spec, Expect::Version(4)).await, Err(StoreError::Conflict { found: 0, .. })));

    // Listing: by mesh or across meshes, ordered by mesh then name, paginated with a next offset.
    for (mesh, name) in [("default", "c"), ("default", "b"), ("other", "a"), ("default", "a")] {
        store.put(&Key::new(&kind, mesh, name), &spec, Expect::Absent).await.unwrap();
    }
    let names = |p: &Page| p.items.iter().map(|s| format!("{}/{}", s.key.mesh, s.key.name)).collect::<Vec<_>>();
    let all = store.list(&kind, None, Range::default()).await.unwrap();
    assert_eq!(names(&all), ["default/a", "default/another", "default/b", "default/c", "default/edge", "other/a"]);
    assert_eq!((all.total, all.next), (6, None));
    let first = store.list(&kind, Some("default"), Range { offset: 0, size: 2 }).await.unwrap();
    assert_eq!(names(&first), ["default/a", "default/another"]);
    assert_eq!((first.total, first.next), (5, Some(2)));
    let last = store.list(&kind, Some("default"), Range { offset: 4, size: 2 }).await.unwrap();
    assert_eq!(names(&last), ["default/edge"]);
    assert_eq!(last.next, None);
    let beyond = store.list(&kind, Some("default"), Range { offset: 9, size: 2 }).await.unwrap();
    assert!(beyond.items.is_empty());
    assert_eq!(store.list(&kind, Some("nowhere"), Range::default()).await.unwrap().total, 0);
    // Another type is not listed.
    assert_eq!(store.list(&unique("Other"), None, Range::default()).await.unwrap().total, 0);
    assert_eq!(store.all().await.unwrap().iter().filter(|s| s.key.kind == kind).count(), 6);

    // Delete: a stale version conflicts; the right one (or none) deletes; a second delete is not found.
    assert!(matches!(store.delete(&key, Some(1)).await, Err(StoreError::Conflict { expected: 1, found: 3, .. })));
    store.delete(&key, Some(3)).await.unwrap();
    assert!(store.get(&key).await.unwrap().is_none());
    assert!(matches!(store.delete(&key, None).await, Err(StoreError::NotFound(_))));
    store.delete(&other, None).await.unwrap();
    // The feed saw every write, in order, then the deletes.
    let mut versions = Vec::new();
    loop {
        let c = next_change(&mut feed, &kind).await;
        if c.key == other && c.version.is_none() {
            break;
        }
        versions.push((c.key.name.clone(), c.version));
    }
    assert_eq!(versions.first(), Some(&("edge".to_owned(), Some(3))));
    assert!(versions.contains(&("edge".to_owned(), None)));

    // Mesh-less resources (a Mesh) have an empty mesh.
    let mesh_kind = unique("Mesh");
    let mesh = Key::new(&mesh_kind, "", "default");
    store.put(&mesh, &json!({"type": "Mesh", "name": "default"}), Expect::Absent).await.unwrap();
    assert_eq!(store.list(&mesh_kind, None, Range::default()).await.unwrap().total, 1);
}

/// Two writers racing on one version: exactly one wins.
async fn racing_writers(store: &(impl ResourceStore + Clone + 'static)) {
    let key = Key::new(unique("Secret"), "default", "s");
    store.put(&key, &json!({"data": "0"}), Expect::Absent).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let key = key.clone();
        tasks.push(tokio::spawn(async move { store.put(&key, &json!({"data": i}), Expect::Version(1)).await }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(s) => {
                assert_eq!(s.version, 2);
                won += 1;
            }
            Err(StoreError::Conflict { .. }) => {}
            // SQLite may refuse a writer that waited too long for the lock; never a second winner.
            Err(StoreError::Backend(e)) => eprintln!("writer refused: {e}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_conforms() {
    let store = MemoryStore::new();
    conformance(&store).await;
    racing_writers(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_conforms_and_keeps_data_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("meshgate.db").display());
    let store = SqlStore::connect(&url).await.unwrap();
    conformance(&store).await;
    racing_writers(&store).await;
    let key = Key::new("Dataplane", "default", "gw-1");
    store.put(&key, &json!({"type": "Dataplane"}), Expect::Absent).await.unwrap();
    drop(store);
    // Reopened: the data is there and no migration runs again.
    let store = SqlStore::connect(&url).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap().unwrap().version, 1);
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&format!("{url}?mode=rw")).await.unwrap();
    assert_eq!(migrate::migrate(&mut conn, false).await.unwrap(), Vec::<i64>::new());
}

#[tokio::test]
async fn urls_choose_the_backend() {
    assert!(matches!(open("memory:").await, Ok(AnyStore::Memory(_))));
    assert!(matches!(open("mysql://x").await, Err(StoreError::Url(u)) if u == "mysql://x"));
    let dir = tempfile::tempdir().unwrap();
    let store = open(&format!("sqlite:{}", dir.path().join("a.db").display())).await.unwrap();
    assert!(matches!(store, AnyStore::Sql(_)));
    conformance(&store).await;
}

/// The PostgreSQL URL, or `None` (only outside CI) to skip.
fn postgres_url() -> Option<String> {
    match std::env::var("MESHGATE_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("CI runs the PostgreSQL store tests: set MESHGATE_TEST_POSTGRES")
        }
        _ => {
            eprintln!("MESHGATE_TEST_POSTGRES unset: PostgreSQL store tests skipped");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_conforms() {
    let Some(url) = postgres_url() else { return };
    let store = SqlStore::connect(&url).await.unwrap();
    conformance(&store).await;
    racing_writers(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_replicas_see_each_others_writes() {
    let Some(url) = postgres_url() else { return };
    let (a, b) = tokio::join!(SqlStore::connect(&url), SqlStore::connect(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut feed = b.watch();
    let kind = unique("MeshHTTPRoute");
    let key = Key::new(&kind, "default", "r");
    a.put(&key, &json!({"spec": {}}), Expect::Absent).await.unwrap();
    assert_eq!(next_change(&mut feed, &kind).await, Change { key: key.clone(), version: Some(1) });
    assert_eq!(b.get(&key).await.unwrap().unwrap().version, 1);
    a.delete(&key, Some(1)).await.unwrap();
    assert_eq!(next_change(&mut feed, &kind).await.version, None);
}
