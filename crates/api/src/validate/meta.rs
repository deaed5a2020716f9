//! Names and meshes (Kuma `ValidateMeta`).

use std::sync::LazyLock;

use regex::Regex;

use super::Errors;
use crate::path::Path;
use crate::resource::{Resource, Scope};

#[allow(clippy::expect_used)]
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$").expect("static regex")
});
#[allow(clippy::expect_used)]
static BACKWARD_COMPAT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9a-z\-_.]*$").expect("static regex"));

const IDENTIFIER_MSG: &str = "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const BACKWARD_COMPAT_MSG: &str =
    "invalid characters. Valid characters are numbers, lowercase latin letters and '-', '_', '.' symbols.";

fn identifier(errs: &mut Errors, field: &str, value: &str, re: &Regex, msg: &str) {
    let path = Path::rooted_at(field);
    if value.is_empty() {
        errs.add(path, "cannot be empty");
    } else if value.len() > 253 {
        errs.add(path, "value length must less or equal 253");
    } else if !re.is_match(value) {
        errs.add(path, msg);
    }
}

pub(super) fn validate(resource: &Resource) -> Errors {
    let mut errs = Errors::default();
    // Kuma's rule for creating a resource (names with `_` were only kept for updates of old resources).
    identifier(&mut errs, "name", &resource.meta.name, &IDENTIFIER, IDENTIFIER_MSG);
    if resource.kind().scope() == Scope::Mesh {
        // A mesh may still carry a pre-2.5 name, so Kuma checks the resource's mesh with the older rule.
        identifier(&mut errs, "mesh", &resource.meta.mesh, &BACKWARD_COMPAT, BACKWARD_COMPAT_MSG);
    }
    errs
}
