//! `MeshGatewayInstance` and `MeshGatewayConfig`: Kubernetes-only objects from which Kuma's control plane made a
//! Deployment and Service for a builtin gateway. meshgate reads and validates them (so Kubernetes manifests load);
//! it does not create Kubernetes objects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::common::Tags;
use super::meshhttproute::string_enum;

string_enum! {
    /// The Kubernetes Service type.
    pub enum ServiceType { LoadBalancer = "LoadBalancer", ClusterIp = "ClusterIP", NodePort = "NodePort" }
}

/// Fields shared by MeshGatewayInstance and MeshGatewayConfig.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshGatewayInstance {
    /// Number of gateway pods (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Service type (default LoadBalancer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Kubernetes resource requirements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Service template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_template: Option<ServiceTemplate>,
    /// Pod template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
    /// Extra dataplane tags (must not contain `kuma.io/service`).
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// `MeshGatewayConfig` spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MeshGatewayConfig {
    /// Number of gateway pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Service type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,
    /// Kubernetes resource requirements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Service template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_template: Option<ServiceTemplate>,
    /// Pod template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
    /// Cross-mesh gateway.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cross_mesh: bool,
    /// Extra tags.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub tags: Tags,
}

/// Kubernetes `ResourceRequirements` (quantities kept as written).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceRequirements {
    /// Limits.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
    /// Requests.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
    /// Claims.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ResourceClaim>,
}

/// A Kubernetes quantity, written as a string (`500m`, `1Gi`) or a number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    /// A number.
    Int(i64),
    /// A string.
    Str(String),
}

/// A resource claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ResourceClaim {
    /// The claim name.
    pub name: String,
    /// The request.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request: String,
}

/// Object metadata of a template.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TemplateMetadata {
    /// Annotations.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub annotations: Tags,
    /// Labels.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub labels: Tags,
}

/// `serviceTemplate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceTemplate {
    /// Metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceSpec>,
}

/// `serviceTemplate.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Load balancer IP.
    #[serde(rename = "loadBalancerIP", skip_serializing_if = "String::is_empty")]
    pub load_balancer_ip: String,
}

/// `podTemplate`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodTemplate {
    /// Metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<TemplateMetadata>,
    /// Spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<PodSpec>,
}

/// `podTemplate.spec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSpec {
    /// Service account.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    /// Pod security context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
    /// Container settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
}

/// `securityContext` of the pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PodSecurityContext {
    /// fsGroup.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
}

/// `container`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Container {
    /// Security context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<ContainerSecurityContext>,
}

/// The container's security context.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ContainerSecurityContext {
    /// Read-only root filesystem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
}
