//! `MeshTCPRoute` (Kuma `meshtcproute.v1alpha1`), in the shape that targets a `MeshGateway`.

use serde::{Deserialize, Serialize};

use super::targetref::{BackendRef, TargetRef};

/// The spec of a `MeshTCPRoute`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshTcpRoute {
    /// What the route applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<TargetRef>,
    /// Route sets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<TcpTo>,
}

/// One `to` item.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpTo {
    /// The destination.
    pub target_ref: TargetRef,
    /// At most one rule.
    pub rules: Vec<TcpRouteRule>,
}

/// A rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpRouteRule {
    /// What connections get.
    pub default: TcpRuleConf,
}

/// What a rule does.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpRuleConf {
    /// Backends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<BackendRef>,
}
