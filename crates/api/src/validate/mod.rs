//! Validation with Kuma's field paths and messages.
//!
//! [`validate`] gives exactly the violations Kuma's own validators give (Kuma's wording is the reference; see the
//! tests against Kuma's validator corpus). [`extra`] adds what Kuma only found later, when it generated Envoy
//! configuration (or what Envoy would have rejected): unsupported redirect codes, a TLS listener without TLS
//! settings, certificates that cannot be used, regular expressions that do not compile, conflicting one-of fields.
//! [`extra`] also checks references between resources (a listener's Secret, a cross-mesh listener's Mesh).

mod dataplane;
mod external_service;
mod gateway;
mod gateway_route;
mod mesh;
mod meshhttproute;
mod meshtcproute;
mod meta;
pub mod policy;
pub(crate) mod tags;
mod targetref;
mod url;

pub mod extra;

use std::fmt;

use crate::path::Path;
use crate::resource::{Resource, Spec};

/// One violation: a field path and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Violation {
    /// Kuma's path of the field (empty for the whole resource).
    pub path: Path,
    /// Kuma's message.
    pub message: String,
}

impl Violation {
    /// A violation.
    pub fn new(path: Path, message: impl Into<String>) -> Self {
        Self { path, message: message.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Collects violations the way Kuma's `validators.ValidationError` does.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    pub(crate) list: Vec<Violation>,
}

impl Errors {
    pub(crate) fn add(&mut self, path: Path, message: impl Into<String>) {
        self.list.push(Violation::new(path, message));
    }

    /// Kuma's `AddErrorAt(prefix, err)`: the child's paths re-rooted under `prefix`.
    pub(crate) fn add_at(&mut self, prefix: &Path, child: Errors) {
        for v in child.list {
            self.list.push(Violation::new(prefix.join(&v.path), v.message));
        }
    }

    pub(crate) fn append(&mut self, child: Errors) {
        self.list.extend(child.list);
    }
}

/// Kuma's validation of a resource: its name and mesh, then its spec.
pub fn validate(resource: &Resource) -> Vec<Violation> {
    let mut errs = Errors::default();
    errs.append(meta::validate(resource));
    errs.list.extend(validate_spec(&resource.spec));
    errs.list
}

/// Kuma's validation of a spec alone (how Kuma's validator tests run).
pub fn validate_spec(spec: &Spec) -> Vec<Violation> {
    let errs = match spec {
        Spec::Mesh(m) => mesh::validate(m),
        Spec::Dataplane(d) => dataplane::validate(d),
        Spec::MeshGateway(g) => gateway::validate(g),
        Spec::MeshGatewayRoute(r) => gateway_route::validate(r),
        Spec::Secret(s) => {
            let mut e = Errors::default();
            if s.data.as_ref().is_none_or(|d| d.0.is_empty()) {
                e.add(Path::rooted_at("data"), "cannot be empty");
            }
            e
        }
        Spec::ExternalService(es) => external_service::validate(es),
        Spec::MeshHttpRoute(r) => meshhttproute::validate(r),
        Spec::MeshTcpRoute(r) => meshtcproute::validate(r),
        Spec::MeshGatewayInstance(i) => {
            let mut e = Errors::default();
            e.append(tags::validate_tags(
                &Path::rooted_at("tags"),
                &i.tags,
                &tags::TagsOpts { forbid_service: true, ..Default::default() },
            ));
            e
        }
        Spec::Policy(p) => policy::validate(p),
        Spec::MeshGatewayConfig(_) | Spec::Opaque(..) => Errors::default(),
    };
    errs.list
}

#[cfg(test)]
mod tests;
