//! The configuration `meshgate run` serves: every resource under the config path, each in the last version that
//! was valid. A file that does not parse, or a resource that does not validate, is rejected with a reason, and the
//! version applied before stays in force.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use meshgate_api::UnknownFields;
use meshgate_api::load::{Loaded, Problem, ResourceId, collect_files, decode_text, read_text};
use meshgate_api::resource::Resource;
use meshgate_api::validate::extra::{NoLookup, extra};
use meshgate_api::validate::validate;
use meshgate_compile::Files;
use serde::Serialize;

/// The identity of a resource.
pub type Key = ResourceId;

/// A resource in force and where it came from.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The resource (file data sources made absolute).
    pub resource: Resource,
    /// Its file.
    pub file: PathBuf,
}

/// A rejected file or resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The file.
    pub file: String,
    /// `line:col`.
    pub position: String,
    /// `Kind name`, when known.
    pub resource: Option<String>,
    /// Why.
    pub reason: String,
    /// Whether an earlier version stays in force.
    pub kept_previous: bool,
}

/// The outcome of one (re)load.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every problem, as lines for the log / the terminal.
    pub problems: Vec<Problem>,
    /// Whether anything in force changed.
    pub changed: bool,
}

/// What a file looked like: path, size, modification time, inode.
type FileStamp = (PathBuf, u64, Option<std::time::SystemTime>, u64);

/// The configuration in force.
#[derive(Debug, Default)]
pub struct ConfigState {
    applied: BTreeMap<Key, Applied>,
    /// What the files read last looked like (path, size, modification time, inode): an event that changed none of
    /// them (e.g. an access log written next to the configuration) costs a directory walk, not a reload.
    fingerprint: Option<Vec<FileStamp>>,
    /// The current rejections.
    pub rejections: Vec<Rejection>,
    /// Contents of files named by `file` data sources.
    pub files: Files,
}

impl ConfigState {
    /// The resources in force.
    pub fn resources(&self) -> Vec<Resource> {
        self.applied.values().map(|a| a.resource.clone()).collect()
    }

    /// How many resources are in force.
    pub fn len(&self) -> usize {
        self.applied.len()
    }

    /// The fingerprint of the configuration files and of the data files read last time.
    fn fingerprint(&self, files: &[PathBuf]) -> Vec<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        files
            .iter()
            .cloned()
            .chain(self.files.keys().map(PathBuf::from))
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let len = meta.as_ref().map_or(u64::MAX, std::fs::Metadata::len);
                let modified = meta.as_ref().and_then(|m| m.modified().ok());
                let ino = meta.as_ref().map_or(0, MetadataExt::ino);
                (p, len, modified, ino)
            })
            .collect()
    }

    /// Reads everything under `root` and updates what is in force. Returns every problem found. When no file it
    /// reads changed since the last call, nothing is read again and nothing changes.
    pub fn reload(&mut self, root: &Path) -> Outcome {
        if let (Ok(files), Some(previous)) = (collect_files(root), &self.fingerprint)
            && self.fingerprint(&files) == *previous
        {
            return Outcome::default();
        }
        // Taken before reading, so that a change made while reading triggers the next reload.
        let data_files: Vec<String> = self.files.keys().cloned().collect();
        let fingerprint = collect_files(root).ok().map(|files| self.fingerprint(&files));
        let outcome = self.read_all(root);
        let same_data_files = self.files.keys().eq(data_files.iter());
        self.fingerprint = fingerprint.filter(|_| same_data_files);
        outcome
    }

    fn read_all(&mut self, root: &Path) -> Outcome {
        let mut outcome = Outcome::default();
        let mut rejections = Vec::new();
        let files = match collect_files(root) {
            Ok(f) => f,
            Err(p) => {
                // The whole path is unreadable: keep everything as it is.
                rejections.push(rejection(&p, None, true));
                outcome.problems.push(p);
                self.rejections = rejections;
                return outcome;
            }
        };
        let mut candidates: BTreeMap<Key, Applied> = BTreeMap::new();
        let mut broken_files: BTreeSet<PathBuf> = BTreeSet::new();
        let mut keep: BTreeSet<Key> = BTreeSet::new();
        for file in &files {
            let text = match read_text(file) {
                Ok(t) => t,
                Err(p) => {
                    broken_files.insert(file.clone());
                    rejections.push(rejection(&p, None, self.applied.values().any(|a| &a.file == file)));
                    outcome.problems.push(p);
                    continue;
                }
            };
            let decoded = decode_text(file, &text, UnknownFields::Deny);
            let whole_file_failed = decoded.loaded.is_empty() && decoded.problems.iter().any(|p| p.subject.is_none());
            if whole_file_failed {
                broken_files.insert(file.clone());
            }
            for p in decoded.problems {
                let key = p.id.clone();
                if let Some(k) = &key {
                    keep.insert(k.clone());
                }
                let kept = key.as_ref().is_some_and(|k| self.applied.contains_key(k))
                    || (whole_file_failed && self.applied.values().any(|a| &a.file == file));
                rejections.push(rejection(&p, p.subject.clone(), kept));
                outcome.problems.push(p);
            }
            for item in decoded.loaded {
                self.consider(item, &mut candidates, &mut keep, &mut rejections, &mut outcome);
            }
        }
        // Resources of files that could not be read keep their previous version.
        for (k, a) in &self.applied {
            if broken_files.contains(&a.file) && !candidates.contains_key(k) {
                candidates.insert(k.clone(), a.clone());
            }
        }
        for k in &keep {
            if !candidates.contains_key(k)
                && let Some(previous) = self.applied.get(k)
            {
                candidates.insert(k.clone(), previous.clone());
            }
        }
        let file_data = read_data_files(&candidates);
        outcome.changed = !same(&self.applied, &candidates) || file_data != self.files;
        self.applied = candidates;
        self.files = file_data;
        self.rejections = rejections;
        outcome
    }

    fn consider(
        &self,
        item: Loaded,
        candidates: &mut BTreeMap<Key, Applied>,
        keep: &mut BTreeSet<Key>,
        rejections: &mut Vec<Rejection>,
        outcome: &mut Outcome,
    ) {
        let key = ResourceId::of(item.resource());
        let mut problems: Vec<Problem> =
            validate(item.resource()).into_iter().map(|v| item.problem(v.path, v.message)).collect();
        problems.extend(extra(item.resource(), &NoLookup, false).into_iter().map(|v| item.problem(v.path, v.message)));
        if let Some(earlier) = candidates.get(&key) {
            problems.push(item.problem(
                meshgate_api::Path::rooted_at("name"),
                format!(
                    "{} \"{}\" is defined twice in mesh \"{}\" (also in {}); this one is ignored",
                    key.kind,
                    key.name,
                    key.mesh,
                    earlier.file.display()
                ),
            ));
            let kept = true;
            for p in problems {
                rejections.push(rejection(&p, p.subject.clone(), kept));
                outcome.problems.push(p);
            }
            return;
        }
        if !problems.is_empty() {
            keep.insert(key.clone());
            let kept = self.applied.contains_key(&key);
            for p in problems {
                rejections.push(rejection(&p, p.subject.clone(), kept));
                outcome.problems.push(p);
            }
            return;
        }
        let file = item.file.clone();
        let mut resource = item.decoded.resource;
        if let Some(dir) = file.parent() {
            resource.resolve_file_paths(dir);
        }
        candidates.insert(key, Applied { resource, file });
    }
}

fn rejection(p: &Problem, resource: Option<String>, kept_previous: bool) -> Rejection {
    let pos = if p.pos == meshgate_api::Pos::default() { meshgate_api::Pos::new(1, 1) } else { p.pos };
    let reason = match &p.path {
        Some(path) if !path.is_root() => format!("{path}: {}", p.message),
        _ => p.message.clone(),
    };
    Rejection { file: p.file.display().to_string(), position: pos.to_string(), resource, reason, kept_previous }
}

fn same(a: &BTreeMap<Key, Applied>, b: &BTreeMap<Key, Applied>) -> bool {
    a.len() == b.len() && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| ka == kb && va.resource == vb.resource)
}

/// Reads the files `file` data sources name (missing ones are left out; the compiler reports them).
fn read_data_files(resources: &BTreeMap<Key, Applied>) -> Files {
    let mut files = Files::new();
    for a in resources.values() {
        let mut r = a.resource.clone();
        for ds in r.data_sources_mut() {
            if let Some(path) = &ds.file
                && !files.contains_key(path)
                && let Ok(meta) = std::fs::metadata(path)
                && meta.len() <= meshgate_api::yaml::MAX_INPUT_BYTES as u64
                && let Ok(bytes) = std::fs::read(path)
            {
                files.insert(path.clone(), bytes);
            }
        }
    }
    files
}
