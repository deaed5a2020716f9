//! `meshgate validate`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use meshgate_api::UnknownFields;
use meshgate_api::load::{LoadOutcome, Problem, ResourceSet, decode_text, load_paths};
use meshgate_api::resource::Kind;

/// Reads and decodes every file under `paths` (`-`: standard input).
pub(crate) fn read_inputs(paths: &[PathBuf]) -> anyhow::Result<LoadOutcome> {
    let mut outcome = LoadOutcome::default();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
            let o = decode_text(Path::new("<stdin>"), &text, UnknownFields::Deny);
            outcome.loaded.extend(o.loaded);
            outcome.problems.extend(o.problems);
        } else {
            let o = load_paths(std::slice::from_ref(path), UnknownFields::Deny);
            outcome.loaded.extend(o.loaded);
            outcome.problems.extend(o.problems);
        }
    }
    Ok(outcome)
}

/// Reads, decodes and checks everything under `paths`; prints problems; exit code 1 if there are any.
pub fn run(paths: &[PathBuf], check_references: bool) -> anyhow::Result<ExitCode> {
    let outcome = read_inputs(paths)?;
    let set = ResourceSet::new(&outcome.loaded);
    let mut problems: Vec<Problem> = outcome.problems;
    problems.extend(set.check_with(check_references));
    // File order, then position; problems at one position keep the order the validators found them in.
    problems.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    problems.dedup();

    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for p in &problems {
        writeln!(out, "{p}")?;
    }
    let mut err = std::io::stderr().lock();
    for item in &outcome.loaded {
        if let Kind::Opaque(kind) = item.resource().kind() {
            let pos = item.decoded.positions.root();
            if kind == "FaultInjection" {
                writeln!(
                    err,
                    "{}:{}:{}: note: {}: accepted; as in Kuma, legacy FaultInjection is not applied to builtin \
                     gateways (use MeshFaultInjection)",
                    item.file.display(),
                    pos.line,
                    pos.col,
                    item.resource().describe()
                )?;
                continue;
            }
            if meshgate_compile::index::LEGACY_KINDS.contains(&kind) {
                continue;
            }
            writeln!(
                err,
                "{}:{}:{}: note: {}: accepted, but meshgate does not apply {kind} resources yet",
                item.file.display(),
                pos.line,
                pos.col,
                item.resource().describe()
            )?;
        }
    }
    let resources = outcome.loaded.len();
    if problems.is_empty() {
        writeln!(err, "ok: {resources} resource{} valid", plural(resources))?;
        Ok(ExitCode::SUCCESS)
    } else {
        writeln!(
            err,
            "{} problem{} found ({resources} resource{} read)",
            problems.len(),
            plural(problems.len()),
            plural(resources)
        )?;
        Ok(ExitCode::FAILURE)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
