//! Files and directories of YAML → resources, and the checks that need the whole set.
//!
//! Every problem is a [`Problem`] that prints as `FILE:LINE:COL: <Kind> <name>: <field path>: <message>`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path as FsPath, PathBuf};

use crate::decode::UnknownFields;
use crate::model::mesh::Mesh;
use crate::path::Path;
use crate::resource::{DEFAULT_MESH, Decoded, Kind, Resource, Spec, decode_document};
use crate::validate::extra::{Lookup, extra};
use crate::validate::{Violation, validate};
use crate::yaml::{MAX_INPUT_BYTES, Pos, parse_documents};

/// A problem found in a file, ready to print.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// Where in it (1:1 when the problem is the whole file).
    pub pos: Pos,
    /// `Kind name` of the resource concerned, if any.
    pub subject: Option<String>,
    /// The identity of the resource concerned, when the document got far enough to say.
    pub id: Option<ResourceId>,
    /// The field path, if any.
    pub path: Option<Path>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pos = if self.pos == Pos::default() { Pos::new(1, 1) } else { self.pos };
        write!(f, "{}:{}:{}: ", self.file.display(), pos.line, pos.col)?;
        if let Some(subject) = &self.subject {
            write!(f, "{subject}: ")?;
        }
        if let Some(path) = self.path.as_ref().filter(|p| !p.is_root()) {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The identity of a resource: kind, mesh (empty for global kinds) and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResourceId {
    /// The kind.
    pub kind: Kind,
    /// The mesh.
    pub mesh: String,
    /// The name.
    pub name: String,
}

impl ResourceId {
    /// The identity of a resource.
    pub fn of(r: &Resource) -> Self {
        Self { kind: r.kind(), mesh: r.meta.mesh.clone(), name: r.meta.name.clone() }
    }
}

/// A resource and where it came from.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The file.
    pub file: PathBuf,
    /// The document's index in the file (0-based).
    pub document: usize,
    /// The resource with its field positions.
    pub decoded: Decoded,
}

impl Loaded {
    /// The resource.
    pub fn resource(&self) -> &Resource {
        &self.decoded.resource
    }

    /// A problem at `path` of this resource.
    pub fn problem(&self, path: Path, message: impl Into<String>) -> Problem {
        Problem {
            file: self.file.clone(),
            pos: self.decoded.positions.lookup(&path),
            subject: Some(self.resource().describe()),
            id: Some(ResourceId::of(self.resource())),
            path: Some(path),
            message: message.into(),
        }
    }

    fn violation(&self, v: Violation) -> Problem {
        self.problem(v.path, v.message)
    }
}

/// What reading files produced.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Resources that decoded.
    pub loaded: Vec<Loaded>,
    /// Files or documents that did not decode.
    pub problems: Vec<Problem>,
}

/// Whether a directory entry is a configuration file: `*.yaml` / `*.yml`, not hidden.
pub fn is_config_file(path: &FsPath) -> bool {
    let hidden = path.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
    let yaml = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e == "yaml" || e == "yml");
    !hidden && yaml
}

/// The configuration files under `path`: the file itself, or every `*.yaml`/`*.yml` file below a directory
/// (hidden files and directories skipped), in sorted order.
#[allow(clippy::result_large_err)] // the error path is cold, and a Problem is what the caller prints
pub fn collect_files(path: &FsPath) -> Result<Vec<PathBuf>, Problem> {
    let meta = std::fs::metadata(path).map_err(|e| file_problem(path, format!("cannot read: {e}")))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| file_problem(&dir, format!("cannot read directory: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| file_problem(&dir, format!("cannot read directory: {e}")))?;
            let p = entry.path();
            let hidden = p.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if is_config_file(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn file_problem(file: &FsPath, message: String) -> Problem {
    Problem { file: file.to_path_buf(), pos: Pos::default(), subject: None, id: None, path: None, message }
}

/// Reads a configuration file as text, refusing files that are too large or not UTF-8.
#[allow(clippy::result_large_err)] // the error path is cold, and a Problem is what the caller prints
pub fn read_text(file: &FsPath) -> Result<String, Problem> {
    let meta = std::fs::metadata(file).map_err(|e| file_problem(file, format!("cannot read: {e}")))?;
    if meta.len() > MAX_INPUT_BYTES as u64 {
        return Err(file_problem(
            file,
            format!(
                "file is {} bytes, larger than the {} MiB limit for one configuration file",
                meta.len(),
                MAX_INPUT_BYTES / (1024 * 1024)
            ),
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| file_problem(file, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let text = String::from_utf8_lossy(valid);
        let line = text.matches('\n').count() + 1;
        let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Problem {
            file: file.to_path_buf(),
            pos: Pos::new(u32::try_from(line).unwrap_or(u32::MAX), u32::try_from(col).unwrap_or(u32::MAX)),
            subject: None,
            id: None,
            path: None,
            message: "not UTF-8 text (is this a binary file?)".to_owned(),
        }
    })
}

/// Decodes every document of a YAML text.
pub fn decode_text(file: &FsPath, text: &str, unknown_fields: UnknownFields) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    let docs = match parse_documents(text) {
        Ok(docs) => docs,
        Err(e) => {
            outcome.problems.push(Problem {
                file: file.to_path_buf(),
                pos: e.pos,
                subject: None,
                id: None,
                path: None,
                message: format!("invalid YAML: {}", e.message),
            });
            return outcome;
        }
    };
    for (index, node) in docs.iter().enumerate() {
        match decode_document(node, unknown_fields) {
            Ok(decoded) => outcome.loaded.push(Loaded { file: file.to_path_buf(), document: index, decoded }),
            Err(err) => {
                let subject = err.describe();
                let id = document_id(&err);
                for issue in err.issues {
                    outcome.problems.push(Problem {
                        file: file.to_path_buf(),
                        pos: issue.pos,
                        subject: Some(subject.clone()),
                        id: id.clone(),
                        path: Some(issue.path),
                        message: issue.message,
                    });
                }
            }
        }
    }
    outcome
}

fn document_id(err: &crate::resource::DocumentError) -> Option<ResourceId> {
    let kind = Kind::from_name(err.kind.as_deref()?)?;
    let name = err.name.clone().filter(|n| !n.is_empty())?;
    let mesh = match kind.scope() {
        crate::resource::Scope::Global => String::new(),
        crate::resource::Scope::Mesh => err.mesh.clone().unwrap_or_else(|| DEFAULT_MESH.to_owned()),
    };
    Some(ResourceId { kind, mesh, name })
}

/// Reads and decodes every configuration file under each of `paths`.
pub fn load_paths(paths: &[PathBuf], unknown_fields: UnknownFields) -> LoadOutcome {
    let mut outcome = LoadOutcome::default();
    for path in paths {
        let files = match collect_files(path) {
            Ok(files) => files,
            Err(p) => {
                outcome.problems.push(p);
                continue;
            }
        };
        for file in files {
            match read_text(&file) {
                Ok(text) => {
                    let o = decode_text(&file, &text, unknown_fields);
                    outcome.loaded.extend(o.loaded);
                    outcome.problems.extend(o.problems);
                }
                Err(p) => outcome.problems.push(p),
            }
        }
    }
    outcome
}

/// A set of resources checked together.
#[derive(Debug)]
pub struct ResourceSet<'a> {
    items: &'a [Loaded],
    secrets: BTreeMap<(&'a str, &'a str), &'a [u8]>,
    meshes: BTreeMap<&'a str, &'a Mesh>,
    files: BTreeMap<*const Resource, &'a FsPath>,
}

impl<'a> ResourceSet<'a> {
    /// Indexes `items` for lookups.
    pub fn new(items: &'a [Loaded]) -> Self {
        let mut secrets = BTreeMap::new();
        let mut meshes = BTreeMap::new();
        let mut files = BTreeMap::new();
        for item in items {
            let r = item.resource();
            match &r.spec {
                Spec::Secret(s) => {
                    secrets.insert(
                        (r.meta.mesh.as_str(), r.meta.name.as_str()),
                        s.data.as_ref().map_or(&[][..], |d| d.0.as_slice()),
                    );
                }
                Spec::Mesh(m) => {
                    meshes.insert(r.meta.name.as_str(), m);
                }
                _ => {}
            }
            files.insert(std::ptr::from_ref(r), item.file.as_path());
        }
        Self { items, secrets, meshes, files }
    }

    /// Every problem: Kuma's validation, the extra checks, references, and resources defined twice.
    pub fn check(&self) -> Vec<Problem> {
        self.check_with(true)
    }

    /// Like [`ResourceSet::check`]; with `references` false, nothing is looked up in other resources or files.
    pub fn check_with(&self, references: bool) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut first: BTreeMap<(Kind, &str, &str), &Loaded> = BTreeMap::new();
        for item in self.items {
            let r = item.resource();
            for v in validate(r) {
                problems.push(item.violation(v));
            }
            for v in extra(r, self, references) {
                problems.push(item.violation(v));
            }
            let scoped = r.kind().scope() == crate::resource::Scope::Mesh;
            if references && scoped && r.meta.mesh != DEFAULT_MESH && !self.meshes.contains_key(r.meta.mesh.as_str()) {
                problems.push(item.problem(
                    Path::rooted_at("mesh"),
                    format!(
                        "mesh \"{}\" does not exist (only mesh \"{DEFAULT_MESH}\" exists without a Mesh resource)",
                        r.meta.mesh
                    ),
                ));
            }
            let key = (r.kind(), r.meta.mesh.as_str(), r.meta.name.as_str());
            if let Some(earlier) = first.get(&key) {
                let pos = earlier.decoded.positions.lookup(&Path::rooted_at("name"));
                problems.push(item.problem(
                    Path::rooted_at("name"),
                    format!(
                        "{} \"{}\" is defined twice in mesh \"{}\" (first at {}:{}:{})",
                        r.kind(),
                        r.meta.name,
                        r.meta.mesh,
                        earlier.file.display(),
                        pos.line,
                        pos.col
                    ),
                ));
            } else {
                first.insert(key, item);
            }
        }
        problems
    }
}

impl Lookup for ResourceSet<'_> {
    fn secret(&self, mesh: &str, name: &str) -> Option<Vec<u8>> {
        self.secrets.get(&(mesh, name)).map(|d| d.to_vec())
    }

    fn mesh(&self, name: &str) -> Option<&Mesh> {
        self.meshes.get(name).copied()
    }

    fn read_file(&self, resource: &Resource, path: &str) -> Result<Vec<u8>, String> {
        let base = self.files.get(&std::ptr::from_ref(resource)).and_then(|f| f.parent());
        let full = match base {
            Some(dir) if FsPath::new(path).is_relative() => dir.join(path),
            _ => PathBuf::from(path),
        };
        let meta = std::fs::metadata(&full).map_err(|e| format!("cannot read \"{}\": {e}", full.display()))?;
        if meta.len() > MAX_INPUT_BYTES as u64 {
            return Err(format!("cannot read \"{}\": larger than {} bytes", full.display(), MAX_INPUT_BYTES));
        }
        std::fs::read(&full).map_err(|e| format!("cannot read \"{}\": {e}", full.display()))
    }
}
