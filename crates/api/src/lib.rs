//! # meshgate-api — Kuma's builtin-gateway resources
//!
//! What it is for: turning the YAML a Kuma user wrote (Universal or Kubernetes form, snake_case or camelCase field
//! names) into typed resources — `Mesh`, `Dataplane`, `MeshGateway`, `MeshGatewayRoute`, `MeshHTTPRoute`,
//! `MeshTCPRoute`, `Secret`, `ExternalService` (plus the Kubernetes-only `MeshGatewayInstance`/`MeshGatewayConfig`)
//! — and validating them with Kuma's exact field paths and messages, so that every problem can be reported as
//! `file:line:col: <Kind> <name>: <path>: <message>`.
//!
//! Kuma concepts implemented: the resource model of `kumahq/kuma` v2.14 (`api/mesh/v1alpha1`, the targetRef policy
//! APIs), its validators (`pkg/core/resources/apis/mesh/*_validator.go`) and the checks Kuma only made when it
//! generated Envoy configuration (unsupported redirect codes, duplicate certificate key types, PEM problems).
//!
//! What it must never do: open sockets, watch files, know about plans or proxies. Data flows one way: this crate
//! is the first stage (api → store → compile → plan → proxy); nothing here depends on a later stage.

pub mod decode;
pub mod load;
pub mod model;
pub mod path;
pub mod pem;
pub mod resource;
pub mod suggest;
pub mod validate;
pub mod yaml;

#[cfg(test)]
mod proptests;

pub use decode::{DecodeIssue, Positions, UnknownFields};
pub use path::Path;
pub use resource::{Decoded, Dialect, DocumentError, Kind, Meta, Resource, Spec, decode_document};

pub use yaml::Pos;
