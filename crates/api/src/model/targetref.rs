//! Shared pieces of the targetRef policies (`MeshHTTPRoute`, `MeshTCPRoute`, ...): target references and backend
//! references, with Kuma's JSON names.

use serde::{Deserialize, Serialize};

use super::common::Tags;

/// A reference to what a policy targets or routes to. `kind` is kept as written so that validation can report an
/// unsupported kind with Kuma's message.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TargetRef {
    /// Mesh, MeshSubset, MeshGateway, MeshService, MeshServiceSubset, MeshExternalService, MeshMultiZoneService,
    /// MeshHTTPRoute or Dataplane.
    pub kind: String,
    /// The referenced object's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Tags (MeshSubset, MeshServiceSubset; listener tags for MeshGateway).
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// Reserved.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mesh: String,
    /// Sidecar and/or Gateway.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proxy_types: Vec<String>,
    /// Kubernetes namespace of the referenced object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Labels selecting the referenced objects.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub labels: Tags,
    /// A section (port name) of the referenced object.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub section_name: String,
}

/// A backend reference: a target reference plus a weight and a port (Kuma writes the target fields inline).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct BackendRef {
    /// The kind of backend.
    pub kind: String,
    /// The backend's name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Tags (MeshServiceSubset).
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
    /// Reserved.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mesh: String,
    /// Not allowed on backends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proxy_types: Vec<String>,
    /// Kubernetes namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Labels.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub labels: Tags,
    /// Section name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub section_name: String,
    /// The share of traffic (absent = 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The port of a real MeshService.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
}

impl BackendRef {
    /// The target part of the reference.
    pub fn target_ref(&self) -> TargetRef {
        TargetRef {
            kind: self.kind.clone(),
            name: self.name.clone(),
            tags: self.tags.clone(),
            mesh: self.mesh.clone(),
            proxy_types: self.proxy_types.clone(),
            namespace: self.namespace.clone(),
            labels: self.labels.clone(),
            section_name: self.section_name.clone(),
        }
    }

    /// The weight, 1 when not given.
    pub fn effective_weight(&self) -> u32 {
        self.weight.unwrap_or(1)
    }
}

/// A Kubernetes `IntOrString`: `50` or `"12.5"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A number.
    Int(i64),
    /// A string (a decimal, for percentages).
    Str(String),
}

impl IntOrString {
    /// The value as a number, if it is one (or a string holding one).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            IntOrString::Int(i) => Some(*i as f64),
            IntOrString::Str(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
        }
    }
}
