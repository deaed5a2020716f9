//! Watching the configuration path: inotify (or the platform's equivalent) through `notify`, falling back to
//! polling when that is unavailable. Events are coalesced by the caller.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{Config, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::UnboundedSender;

/// A running watcher (dropping it stops watching).
pub struct ConfigWatcher {
    _inner: Box<dyn Watcher + Send>,
    /// Whether it polls.
    pub polling: bool,
}

impl std::fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatcher").field("polling", &self.polling).finish()
    }
}

/// What to watch for `path`: a directory itself, or a file's directory (editors replace files by renaming).
fn watch_root(path: &Path) -> PathBuf {
    if path.is_dir() { path.to_path_buf() } else { path.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf) }
}

/// Watches `path`, sending `()` on every change. `force_poll` skips kernel notifications.
pub fn watch(path: &Path, tx: UnboundedSender<()>, force_poll: bool) -> notify::Result<ConfigWatcher> {
    let root = watch_root(path);
    let handler = move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(());
        }
    };
    if !force_poll {
        match RecommendedWatcher::new(handler.clone(), Config::default()) {
            Ok(mut w) => match w.watch(&root, RecursiveMode::Recursive) {
                Ok(()) => return Ok(ConfigWatcher { _inner: Box::new(w), polling: false }),
                Err(e) => tracing::warn!(error = %e, "file notifications unavailable; polling instead"),
            },
            Err(e) => tracing::warn!(error = %e, "file notifications unavailable; polling instead"),
        }
    }
    let config = Config::default().with_poll_interval(Duration::from_millis(500)).with_compare_contents(true);
    let mut w = PollWatcher::new(handler, config)?;
    w.watch(&root, RecursiveMode::Recursive)?;
    Ok(ConfigWatcher { _inner: Box::new(w), polling: true })
}
