//! Resources and their two written forms.
//!
//! Universal form (what `kumactl apply` and the REST API take): `type`, `name`, `mesh` at the top, and the spec
//! either inline next to them (Kuma's proto-based kinds) or under `spec` (the newer targetRef policies).
//! Kubernetes form: `apiVersion: kuma.io/v1alpha1`, `kind`, `metadata.name`, a top-level `mesh` (or the
//! `kuma.io/mesh` label), and the spec under `spec`; Secrets are `v1/Secret` of type `system.kuma.io/secret`.
//! Both forms decode to the same [`Resource`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::decode::{DecodeIssue, Decoder, Positions, UnknownFields};
use crate::model::common::Tags;
use crate::model::policy::{PolicyKind, PolicySpec};
use crate::model::{
    Dataplane, ExternalService, Mesh, MeshGateway, MeshGatewayConfig, MeshGatewayInstance, MeshGatewayRoute,
    MeshHttpRoute, MeshTcpRoute, Secret,
};
use crate::path::Path;
use crate::suggest::did_you_mean;
use crate::yaml::{Node, Pos, Value, scalar_text};

/// The mesh a resource belongs to when none is given.
pub const DEFAULT_MESH: &str = "default";
/// The Kubernetes API version of Kuma resources.
pub const KUMA_API_VERSION: &str = "kuma.io/v1alpha1";
/// The Kubernetes Secret type Kuma reads.
pub const KUMA_SECRET_TYPE: &str = "system.kuma.io/secret";
/// The label carrying the mesh of a Kubernetes object.
pub const MESH_LABEL: &str = "kuma.io/mesh";

/// The written form a resource came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Dialect {
    /// `type` / `name` / `mesh`.
    Universal,
    /// `apiVersion` / `kind` / `metadata`.
    Kubernetes,
}

/// Whether a kind lives in a mesh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Belongs to one mesh.
    Mesh,
    /// Global (the Mesh itself).
    Global,
}

/// How the Universal form carries the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UniversalSpec {
    /// Spec fields next to `type`/`name`/`mesh` (proto-based kinds).
    Inline,
    /// Under `spec` (targetRef policies).
    Nested,
    /// The kind exists only on Kubernetes.
    None,
}

/// A resource kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `Mesh`.
    Mesh,
    /// `Dataplane`.
    Dataplane,
    /// `MeshGateway`.
    MeshGateway,
    /// `MeshGatewayRoute`.
    MeshGatewayRoute,
    /// `Secret`.
    Secret,
    /// `ExternalService`.
    ExternalService,
    /// `MeshHTTPRoute`.
    MeshHttpRoute,
    /// `MeshTCPRoute`.
    MeshTcpRoute,
    /// `MeshGatewayInstance` (Kubernetes only).
    MeshGatewayInstance,
    /// `MeshGatewayConfig` (Kubernetes only).
    MeshGatewayConfig,
    /// A targetRef policy meshgate interprets.
    Policy(PolicyKind),
    /// A Kuma kind meshgate recognises but does not interpret (yet); kept as written.
    Opaque(&'static str),
}

/// The kinds meshgate models.
pub const MODELLED_KINDS: &[Kind] = &[
    Kind::Mesh,
    Kind::Dataplane,
    Kind::MeshGateway,
    Kind::MeshGatewayRoute,
    Kind::Secret,
    Kind::ExternalService,
    Kind::MeshHttpRoute,
    Kind::MeshTcpRoute,
    Kind::MeshGatewayInstance,
    Kind::MeshGatewayConfig,
    Kind::Policy(PolicyKind::MeshTimeout),
    Kind::Policy(PolicyKind::MeshRetry),
    Kind::Policy(PolicyKind::MeshRateLimit),
    Kind::Policy(PolicyKind::MeshFaultInjection),
    Kind::Policy(PolicyKind::MeshAccessLog),
    Kind::Policy(PolicyKind::MeshCircuitBreaker),
    Kind::Policy(PolicyKind::MeshHealthCheck),
    Kind::Policy(PolicyKind::MeshLoadBalancingStrategy),
    Kind::Policy(PolicyKind::MeshTrace),
];

/// Kuma kinds written with an inline spec in Universal form that meshgate accepts without interpreting them.
const OPAQUE_INLINE_KINDS: &[&str] = &[
    "CircuitBreaker",
    "FaultInjection",
    "HealthCheck",
    "ProxyTemplate",
    "RateLimit",
    "Retry",
    "ServiceInsight",
    "Timeout",
    "TrafficLog",
    "TrafficPermission",
    "TrafficRoute",
    "TrafficTrace",
    "VirtualOutbound",
    "ZoneEgress",
    "ZoneIngress",
];

/// Kuma targetRef kinds (spec under `spec`) that meshgate accepts without interpreting them.
const OPAQUE_NESTED_KINDS: &[&str] = &[
    "MeshExternalService",
    "MeshIdentity",
    "MeshMetric",
    "MeshMultiZoneService",
    "MeshPassthrough",
    "MeshProxyPatch",
    "MeshService",
    "MeshTLS",
    "MeshTrafficPermission",
    "MeshTrust",
];

impl Kind {
    /// The kind's name as written in `type:` / `kind:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mesh => "Mesh",
            Kind::Dataplane => "Dataplane",
            Kind::MeshGateway => "MeshGateway",
            Kind::MeshGatewayRoute => "MeshGatewayRoute",
            Kind::Secret => "Secret",
            Kind::ExternalService => "ExternalService",
            Kind::MeshHttpRoute => "MeshHTTPRoute",
            Kind::MeshTcpRoute => "MeshTCPRoute",
            Kind::MeshGatewayInstance => "MeshGatewayInstance",
            Kind::MeshGatewayConfig => "MeshGatewayConfig",
            Kind::Policy(kind) => kind.name(),
            Kind::Opaque(name) => name,
        }
    }

    /// The kind's collection in Kuma's REST API (`/meshes/{mesh}/{collection}/{name}`): `meshgateways`,
    /// `external-services`, `meshhttproutes`, `rate-limits` …; `None` for kinds that only exist on Kubernetes.
    pub fn collection(self) -> Option<&'static str> {
        Some(match self.name() {
            "Mesh" => "meshes",
            "MeshGatewayInstance" | "MeshGatewayConfig" => return None,
            // Legacy kinds are kebab-case plurals; a few are written as one word.
            "ExternalService" => "external-services",
            "CircuitBreaker" => "circuit-breakers",
            "FaultInjection" => "fault-injections",
            "HealthCheck" => "health-checks",
            "RateLimit" => "rate-limits",
            "Retry" => "retries",
            "ServiceInsight" => "service-insights",
            "TrafficLog" => "traffic-logs",
            "TrafficPermission" => "traffic-permissions",
            "TrafficRoute" => "traffic-routes",
            "TrafficTrace" => "traffic-traces",
            "VirtualOutbound" => "virtual-outbounds",
            "ZoneIngress" => "zone-ingresses",
            "ZoneEgress" => "zoneegresses",
            "Dataplane" => "dataplanes",
            "Secret" => "secrets",
            "Timeout" => "timeouts",
            "ProxyTemplate" => "proxytemplates",
            "MeshGateway" => "meshgateways",
            "MeshGatewayRoute" => "meshgatewayroutes",
            // targetRef kinds: the lowercase plural.
            "MeshHTTPRoute" => "meshhttproutes",
            "MeshTCPRoute" => "meshtcproutes",
            "MeshTimeout" => "meshtimeouts",
            "MeshRetry" => "meshretries",
            "MeshRateLimit" => "meshratelimits",
            "MeshFaultInjection" => "meshfaultinjections",
            "MeshAccessLog" => "meshaccesslogs",
            "MeshCircuitBreaker" => "meshcircuitbreakers",
            "MeshHealthCheck" => "meshhealthchecks",
            "MeshLoadBalancingStrategy" => "meshloadbalancingstrategies",
            "MeshExternalService" => "meshexternalservices",
            "MeshIdentity" => "meshidentities",
            "MeshMetric" => "meshmetrics",
            "MeshMultiZoneService" => "meshmultizoneservices",
            "MeshPassthrough" => "meshpassthroughs",
            "MeshProxyPatch" => "meshproxypatches",
            "MeshService" => "meshservices",
            "MeshTLS" => "meshtlses",
            "MeshTrace" => "meshtraces",
            "MeshTrafficPermission" => "meshtrafficpermissions",
            "MeshTrust" => "meshtrusts",
            _ => return None,
        })
    }

    /// The kind whose REST collection this is.
    pub fn from_collection(collection: &str) -> Option<Kind> {
        Kind::all_names().filter_map(Kind::from_name).find(|k| k.collection() == Some(collection))
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<Kind> {
        MODELLED_KINDS.iter().copied().find(|k| k.name() == name).or_else(|| {
            OPAQUE_INLINE_KINDS.iter().chain(OPAQUE_NESTED_KINDS).find(|k| **k == name).map(|k| Kind::Opaque(k))
        })
    }

    /// Every kind name, for suggestions.
    pub fn all_names() -> impl Iterator<Item = &'static str> {
        MODELLED_KINDS
            .iter()
            .map(|k| k.name())
            .chain(OPAQUE_INLINE_KINDS.iter().copied())
            .chain(OPAQUE_NESTED_KINDS.iter().copied())
    }

    /// Whether the kind lives in a mesh.
    pub fn scope(self) -> Scope {
        match self {
            Kind::Mesh | Kind::MeshGatewayConfig => Scope::Global,
            Kind::Opaque("ZoneIngress") => Scope::Global,
            _ => Scope::Mesh,
        }
    }

    fn universal_spec(self) -> UniversalSpec {
        match self {
            Kind::MeshHttpRoute | Kind::MeshTcpRoute | Kind::Policy(_) => UniversalSpec::Nested,
            Kind::MeshGatewayInstance | Kind::MeshGatewayConfig => UniversalSpec::None,
            Kind::Opaque(name) if OPAQUE_NESTED_KINDS.contains(&name) => UniversalSpec::Nested,
            _ => UniversalSpec::Inline,
        }
    }

    /// Whether meshgate interprets this kind (opaque kinds are accepted and kept, but have no effect).
    pub fn is_modelled(self) -> bool {
        !matches!(self, Kind::Opaque(_))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A resource's identity and labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// The name.
    pub name: String,
    /// The mesh (empty for global kinds).
    pub mesh: String,
    /// The Kubernetes namespace, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels.
    #[serde(skip_serializing_if = "Tags::is_empty")]
    pub labels: Tags,
    /// The form the resource was written in.
    pub dialect: Dialect,
}

/// A resource's spec.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Spec {
    /// A mesh.
    Mesh(Mesh),
    /// A dataplane.
    Dataplane(Dataplane),
    /// A gateway.
    MeshGateway(MeshGateway),
    /// A gateway route.
    MeshGatewayRoute(MeshGatewayRoute),
    /// A secret.
    Secret(Secret),
    /// An external service.
    ExternalService(ExternalService),
    /// An HTTP route (targetRef).
    MeshHttpRoute(MeshHttpRoute),
    /// A TCP route (targetRef).
    MeshTcpRoute(MeshTcpRoute),
    /// A gateway instance (Kubernetes).
    MeshGatewayInstance(MeshGatewayInstance),
    /// A gateway config (Kubernetes).
    MeshGatewayConfig(MeshGatewayConfig),
    /// A targetRef policy.
    Policy(PolicySpec),
    /// A recognised kind that meshgate does not interpret; its spec as written.
    Opaque(&'static str, serde_json::Value),
}

/// A decoded resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    /// Identity.
    pub meta: Meta,
    /// Content.
    pub spec: Spec,
}

impl Resource {
    /// The data sources of this resource (listener certificates, ExternalService TLS material).
    pub fn data_sources_mut(&mut self) -> Vec<&mut crate::model::common::DataSource> {
        match &mut self.spec {
            Spec::MeshGateway(gw) => gw
                .conf
                .iter_mut()
                .flat_map(|c| c.listeners.iter_mut())
                .filter_map(|l| l.tls.as_mut())
                .flat_map(|t| t.certificates.iter_mut())
                .collect(),
            Spec::ExternalService(es) => match es.networking.as_mut().and_then(|n| n.tls.as_mut()) {
                Some(t) => {
                    [t.ca_cert.as_mut(), t.client_cert.as_mut(), t.client_key.as_mut()].into_iter().flatten().collect()
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Makes relative `file` data sources absolute against `base` (the directory of the YAML file they are in).
    pub fn resolve_file_paths(&mut self, base: &std::path::Path) {
        for ds in self.data_sources_mut() {
            if let Some(file) = &mut ds.file
                && std::path::Path::new(file.as_str()).is_relative()
            {
                *file = base.join(&*file).to_string_lossy().into_owned();
            }
        }
    }

    /// The kind.
    pub fn kind(&self) -> Kind {
        match &self.spec {
            Spec::Mesh(_) => Kind::Mesh,
            Spec::Dataplane(_) => Kind::Dataplane,
            Spec::MeshGateway(_) => Kind::MeshGateway,
            Spec::MeshGatewayRoute(_) => Kind::MeshGatewayRoute,
            Spec::Secret(_) => Kind::Secret,
            Spec::ExternalService(_) => Kind::ExternalService,
            Spec::MeshHttpRoute(_) => Kind::MeshHttpRoute,
            Spec::MeshTcpRoute(_) => Kind::MeshTcpRoute,
            Spec::MeshGatewayInstance(_) => Kind::MeshGatewayInstance,
            Spec::MeshGatewayConfig(_) => Kind::MeshGatewayConfig,
            Spec::Policy(p) => Kind::Policy(p.kind()),
            Spec::Opaque(kind, _) => Kind::Opaque(kind),
        }
    }

    /// `Kind name` for messages, e.g. `MeshGateway edge-gateway`.
    pub fn describe(&self) -> String {
        describe(self.kind().name(), &self.meta.name)
    }

    /// The spec as JSON (camelCase field names, defaults left out).
    pub fn spec_json(&self) -> serde_json::Value {
        let value = match &self.spec {
            Spec::Mesh(s) => serde_json::to_value(s),
            Spec::Dataplane(s) => serde_json::to_value(s),
            Spec::MeshGateway(s) => serde_json::to_value(s),
            Spec::MeshGatewayRoute(s) => serde_json::to_value(s),
            Spec::Secret(s) => serde_json::to_value(s),
            Spec::ExternalService(s) => serde_json::to_value(s),
            Spec::MeshHttpRoute(s) => serde_json::to_value(s),
            Spec::MeshTcpRoute(s) => serde_json::to_value(s),
            Spec::MeshGatewayInstance(s) => serde_json::to_value(s),
            Spec::MeshGatewayConfig(s) => serde_json::to_value(s),
            Spec::Policy(p) => p.to_json(),
            Spec::Opaque(_, v) => Ok(v.clone()),
        };
        value.unwrap_or(serde_json::Value::Null)
    }

    /// The resource in Universal form as JSON (`type`, `name`, `mesh`, and the spec inline or under `spec`).
    pub fn to_universal_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        out.insert("type".into(), self.kind().name().into());
        if self.kind().scope() == Scope::Mesh {
            out.insert("mesh".into(), self.meta.mesh.clone().into());
        }
        out.insert("name".into(), self.meta.name.clone().into());
        if !self.meta.labels.is_empty() {
            out.insert("labels".into(), serde_json::to_value(&self.meta.labels).unwrap_or_default());
        }
        let spec = self.spec_json();
        match self.kind().universal_spec() {
            UniversalSpec::Inline => {
                if let serde_json::Value::Object(fields) = spec {
                    out.extend(fields);
                }
            }
            UniversalSpec::Nested | UniversalSpec::None => {
                out.insert("spec".into(), spec);
            }
        }
        serde_json::Value::Object(out)
    }
}

/// `Kind name` (or `Kind <unnamed>`).
pub fn describe(kind: &str, name: &str) -> String {
    if name.is_empty() { format!("{kind} <unnamed>") } else { format!("{kind} {name}") }
}

/// A decoded document: the resource and where its fields are.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// The resource.
    pub resource: Resource,
    /// Positions of its fields (spec paths as Kuma writes them; `name` and `mesh` for the envelope).
    pub positions: Positions,
}

/// A document that could not be decoded into a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DocumentError {
    /// The kind, if the document said which.
    pub kind: Option<String>,
    /// The name, if the document gave one.
    pub name: Option<String>,
    /// The mesh, if it was read before decoding failed.
    pub mesh: Option<String>,
    /// Every problem found.
    pub issues: Vec<DecodeIssue>,
}

impl DocumentError {
    /// `Kind name` as far as known, e.g. `MeshGateway edge` or `document`.
    pub fn describe(&self) -> String {
        match &self.kind {
            Some(kind) => describe(kind, self.name.as_deref().unwrap_or_default()),
            None => "document".to_owned(),
        }
    }
}

const UNIVERSAL_ENVELOPE: &[&str] = &["type", "name", "mesh", "labels", "creationTime", "modificationTime", "kri"];
const K8S_ENVELOPE: &[&str] = &["apiVersion", "kind", "metadata", "mesh", "spec", "status"];
const K8S_METADATA: &[&str] = &[
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "generateName",
    "selfLink",
];
const K8S_SECRET_ENVELOPE: &[&str] = &["apiVersion", "kind", "metadata", "type", "data", "stringData", "immutable"];

/// Decodes one YAML document into a resource.
pub fn decode_document(node: &Node, unknown_fields: UnknownFields) -> Result<Decoded, DocumentError> {
    let dec = Decoder::new(unknown_fields, node.pos);
    let fail = |kind: Option<&str>, name: Option<&str>, issues: Vec<DecodeIssue>| DocumentError {
        kind: kind.map(str::to_owned),
        name: name.map(str::to_owned),
        mesh: None,
        issues,
    };
    let Some(entries) = node.as_map() else {
        let issue = DecodeIssue {
            path: Path::root(),
            pos: node.pos,
            message: format!(
                "a resource must be a mapping with `type` (Universal form) or `apiVersion` and `kind` (Kubernetes form), found {}",
                node.value.type_name()
            ),
        };
        return Err(fail(None, None, vec![issue]));
    };
    for (key, _) in entries {
        if key.as_str().is_none() {
            let issue = DecodeIssue {
                path: Path::root(),
                pos: key.pos,
                message: format!("field names must be strings, found {} `{}`", key.value.type_name(), scalar_text(key)),
            };
            return Err(fail(None, None, vec![issue]));
        }
    }
    let resource = if node.get("apiVersion").is_some() || node.get("kind").is_some() {
        decode_kubernetes(node, entries, &dec)?
    } else if node.get("type").is_some() {
        decode_universal(node, entries, &dec)?
    } else {
        let issue = DecodeIssue {
            path: Path::root(),
            pos: node.pos,
            message: "not a resource: missing `type` (Universal form) or `apiVersion` and `kind` (Kubernetes form)"
                .into(),
        };
        return Err(fail(None, None, vec![issue]));
    };
    Ok(Decoded { resource, positions: dec.into_positions() })
}

fn envelope_string(dec: &Decoder, node: &Node, field: &str, path: &Path) -> Option<String> {
    let value = node.get(field)?;
    dec.record(path, value.pos);
    match &value.value {
        Value::Str(s) => Some(s.clone()),
        Value::Null => None,
        other => {
            dec.report(path.clone(), value.pos, format!("expected a string, found {}", other.type_name()));
            None
        }
    }
}

fn envelope_labels(dec: &Decoder, node: Option<&Node>, path: &Path) -> Tags {
    let mut labels = BTreeMap::new();
    let Some(node) = node else { return labels };
    dec.record(path, node.pos);
    match &node.value {
        Value::Null => {}
        Value::Map(entries) => {
            for (k, v) in entries {
                let key = scalar_text(k);
                match &v.value {
                    Value::Str(s) => {
                        labels.insert(key, s.clone());
                    }
                    other => dec.report(
                        path.key(&key),
                        v.pos,
                        format!(
                            "expected a string, found {} `{}` (quote it to make it a string)",
                            other.type_name(),
                            scalar_text(v)
                        ),
                    ),
                }
            }
        }
        other => dec.report(path.clone(), node.pos, format!("expected a mapping, found {}", other.type_name())),
    }
    labels
}

fn unknown_key(dec: &Decoder, path: &Path, key: &Node, allowed: &[&str]) {
    let name = scalar_text(key);
    let message = match did_you_mean(&name, allowed.iter().copied()) {
        Some(best) => format!("unknown field `{name}`, did you mean `{best}`?"),
        None => format!(
            "unknown field `{name}`, expected one of {}",
            allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
        ),
    };
    dec.report(path.field(&name), key.pos, message);
}

fn resolve_kind(dec: &Decoder, written: &str, path: &Path, pos: Pos) -> Option<Kind> {
    let kind = Kind::from_name(written);
    if kind.is_none() {
        let message = match did_you_mean(written, Kind::all_names()) {
            Some(best) => format!("unknown resource kind \"{written}\", did you mean \"{best}\"?"),
            None => format!(
                "unknown resource kind \"{written}\" (meshgate reads {})",
                MODELLED_KINDS.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ),
        };
        dec.report(path.clone(), pos, message);
    }
    kind
}

fn decode_universal(node: &Node, entries: &[(Node, Node)], dec: &Decoder) -> Result<Resource, DocumentError> {
    let type_path = Path::rooted_at("type");
    let written_kind = envelope_string(dec, node, "type", &type_path).unwrap_or_default();
    let name = envelope_string(dec, node, "name", &Path::rooted_at("name")).unwrap_or_default();
    let mesh = envelope_string(dec, node, "mesh", &Path::rooted_at("mesh"));
    let labels = envelope_labels(dec, node.get("labels"), &Path::rooted_at("labels"));
    for field in ["creationTime", "modificationTime", "kri"] {
        let _ = envelope_string(dec, node, field, &Path::rooted_at(field));
    }
    let type_pos = node.get("type").map_or(node.pos, |n| n.pos);
    let kind = resolve_kind(dec, &written_kind, &type_path, type_pos);
    let error = |dec: &Decoder| DocumentError {
        kind: Some(written_kind.clone()),
        name: Some(name.clone()),
        mesh: None,
        issues: dec.take_issues(),
    };
    let Some(kind) = kind else { return Err(error(dec)) };

    let spec_node = match kind.universal_spec() {
        UniversalSpec::None => {
            dec.report(
                type_path,
                type_pos,
                format!("{} exists only in Kubernetes form (apiVersion: {KUMA_API_VERSION})", kind.name()),
            );
            return Err(error(dec));
        }
        UniversalSpec::Inline => {
            // Everything that is not envelope is spec. For a global kind `mesh` is not envelope either.
            let is_envelope =
                |k: &str| UNIVERSAL_ENVELOPE.contains(&k) && !(k == "mesh" && kind.scope() == Scope::Global);
            let rest: Vec<(Node, Node)> =
                entries.iter().filter(|(k, _)| !k.as_str().is_some_and(is_envelope)).cloned().collect();
            Node { pos: node.pos, value: Value::Map(rest) }
        }
        UniversalSpec::Nested => {
            let mut allowed: Vec<&str> = UNIVERSAL_ENVELOPE.to_vec();
            allowed.push("spec");
            for (key, _) in entries {
                if !key.as_str().is_some_and(|k| allowed.contains(&k)) {
                    unknown_key(dec, &Path::root(), key, &allowed);
                }
            }
            node.get("spec").cloned().unwrap_or(Node { pos: node.pos, value: Value::Null })
        }
    };
    let mesh = match kind.scope() {
        Scope::Global => String::new(),
        Scope::Mesh => mesh.filter(|m| !m.is_empty()).unwrap_or_else(|| DEFAULT_MESH.to_owned()),
    };
    let spec = decode_spec(kind, dec, &spec_node);
    let meta = Meta { name: name.clone(), mesh, namespace: None, labels, dialect: Dialect::Universal };
    finish(dec, spec, meta, &written_kind, &name, kind.universal_spec() == UniversalSpec::Inline)
}

fn decode_kubernetes(node: &Node, entries: &[(Node, Node)], dec: &Decoder) -> Result<Resource, DocumentError> {
    let api_version = envelope_string(dec, node, "apiVersion", &Path::rooted_at("apiVersion")).unwrap_or_default();
    let kind_path = Path::rooted_at("kind");
    let written_kind = envelope_string(dec, node, "kind", &kind_path).unwrap_or_default();
    let kind_pos = node.get("kind").map_or(node.pos, |n| n.pos);

    // metadata
    let meta_path = Path::rooted_at("metadata");
    let metadata = node.get("metadata");
    let mut name = String::new();
    let mut namespace = None;
    let mut labels = Tags::new();
    match metadata {
        Some(md) if md.as_map().is_some() => {
            for (key, _) in md.as_map().unwrap_or_default() {
                if !key.as_str().is_some_and(|k| K8S_METADATA.contains(&k)) {
                    unknown_key(dec, &meta_path, key, K8S_METADATA);
                }
            }
            if let Some(n) = md.get("name") {
                // Kuma reports the name as `name`, whichever form it came in.
                dec.record(&Path::rooted_at("name"), n.pos);
            }
            name = envelope_string(dec, md, "name", &meta_path.field("name")).unwrap_or_default();
            namespace = envelope_string(dec, md, "namespace", &meta_path.field("namespace"));
            labels = envelope_labels(dec, md.get("labels"), &meta_path.field("labels"));
            let _annotations = envelope_labels(dec, md.get("annotations"), &meta_path.field("annotations"));
        }
        Some(md) if md.value != Value::Null => {
            dec.report(meta_path.clone(), md.pos, format!("expected a mapping, found {}", md.value.type_name()));
        }
        _ => dec.report(meta_path.clone(), node.pos, "missing `metadata` (with at least `name`)"),
    }
    let error = |dec: &Decoder| DocumentError {
        kind: Some(written_kind.clone()),
        name: Some(name.clone()),
        mesh: None,
        issues: dec.take_issues(),
    };

    // Kubernetes Secret: a different envelope.
    if api_version == "v1" && written_kind == "Secret" {
        return decode_kubernetes_secret(node, entries, dec, name, namespace, labels);
    }
    if api_version != KUMA_API_VERSION {
        let pos = node.get("apiVersion").map_or(node.pos, |n| n.pos);
        let message = if api_version.is_empty() {
            format!("missing `apiVersion` (Kuma resources use {KUMA_API_VERSION})")
        } else if Kind::from_name(&written_kind).is_some() {
            format!(
                "unsupported apiVersion \"{api_version}\" for {written_kind}; Kuma resources use {KUMA_API_VERSION}"
            )
        } else {
            format!("not a Kuma resource (apiVersion \"{api_version}\", kind \"{written_kind}\")")
        };
        dec.report(Path::rooted_at("apiVersion"), pos, message);
        return Err(error(dec));
    }
    let Some(kind) = resolve_kind(dec, &written_kind, &kind_path, kind_pos) else { return Err(error(dec)) };
    if kind == Kind::Secret {
        dec.report(
            kind_path,
            kind_pos,
            format!(
                "on Kubernetes a Secret is a `v1` Secret of type {KUMA_SECRET_TYPE} with the data under `data.value`"
            ),
        );
        return Err(error(dec));
    }
    for (key, _) in entries {
        if !key.as_str().is_some_and(|k| K8S_ENVELOPE.contains(&k)) {
            unknown_key(dec, &Path::root(), key, K8S_ENVELOPE);
        }
    }
    let top_mesh = envelope_string(dec, node, "mesh", &Path::rooted_at("mesh"));
    let mesh = match kind.scope() {
        Scope::Global => {
            if let Some(m) = node.get("mesh") {
                dec.report(
                    Path::rooted_at("mesh"),
                    m.pos,
                    format!("{} is not mesh-scoped: remove `mesh`", kind.name()),
                );
            }
            String::new()
        }
        Scope::Mesh => resolve_k8s_mesh(dec, node, top_mesh, &labels),
    };
    let spec_node = node.get("spec").cloned().unwrap_or(Node { pos: node.pos, value: Value::Null });
    let spec = decode_spec(kind, dec, &spec_node);
    let meta = Meta { name: name.clone(), mesh, namespace, labels, dialect: Dialect::Kubernetes };
    finish(dec, spec, meta, &written_kind, &name, false)
}

fn resolve_k8s_mesh(dec: &Decoder, node: &Node, top: Option<String>, labels: &Tags) -> String {
    let label = labels.get(MESH_LABEL).filter(|m| !m.is_empty());
    match (top.filter(|m| !m.is_empty()), label) {
        (Some(top), Some(label)) if &top != label => {
            let pos = node.get("mesh").map_or(node.pos, |n| n.pos);
            dec.report(
                Path::rooted_at("mesh"),
                pos,
                format!("mesh \"{top}\" disagrees with the {MESH_LABEL} label \"{label}\""),
            );
            top
        }
        (Some(top), _) => top,
        (None, Some(label)) => label.clone(),
        (None, None) => DEFAULT_MESH.to_owned(),
    }
}

fn decode_kubernetes_secret(
    node: &Node,
    entries: &[(Node, Node)],
    dec: &Decoder,
    name: String,
    namespace: Option<String>,
    labels: Tags,
) -> Result<Resource, DocumentError> {
    for (key, _) in entries {
        if !key.as_str().is_some_and(|k| K8S_SECRET_ENVELOPE.contains(&k)) {
            unknown_key(dec, &Path::root(), key, K8S_SECRET_ENVELOPE);
        }
    }
    let secret_type = envelope_string(dec, node, "type", &Path::rooted_at("type")).unwrap_or_default();
    if secret_type != KUMA_SECRET_TYPE {
        let pos = node.get("type").map_or(node.pos, |n| n.pos);
        dec.report(
            Path::rooted_at("type"),
            pos,
            format!(
                "a Kubernetes Secret is a Kuma secret only with `type: {KUMA_SECRET_TYPE}` (found \"{secret_type}\")"
            ),
        );
    }
    let mut data = None;
    for (field, base64) in [("data", true), ("stringData", false)] {
        let Some(map) = node.get(field) else { continue };
        let path = Path::rooted_at(field);
        dec.record(&path, map.pos);
        let Some(items) = map.as_map() else {
            dec.report(path, map.pos, format!("expected a mapping, found {}", map.value.type_name()));
            continue;
        };
        for (k, v) in items {
            let key = scalar_text(k);
            if key != "value" {
                dec.report(
                    path.key(&key),
                    k.pos,
                    format!("unknown key \"{key}\": Kuma reads the secret from the key \"value\""),
                );
                continue;
            }
            // Kuma reports secret problems at `data`.
            dec.record(&Path::rooted_at("data"), v.pos);
            match v.as_str() {
                Some(s) if base64 => match crate::model::common::Base64Bytes::decode(s) {
                    Ok(bytes) => data = Some(bytes),
                    Err(e) => dec.report(path.key("value"), v.pos, e),
                },
                Some(s) => data = Some(crate::model::common::Base64Bytes(s.as_bytes().to_vec())),
                None => {
                    dec.report(path.key("value"), v.pos, format!("expected a string, found {}", v.value.type_name()))
                }
            }
        }
    }
    let mut mesh = resolve_k8s_mesh(dec, node, None, &labels);
    if mesh.is_empty() {
        mesh = DEFAULT_MESH.to_owned();
    }
    let meta = Meta { name: name.clone(), mesh, namespace, labels, dialect: Dialect::Kubernetes };
    finish(dec, Some(Spec::Secret(Secret { data })), meta, "Secret", &name, false)
}

fn decode_spec(kind: Kind, dec: &Decoder, node: &Node) -> Option<Spec> {
    // Kuma reports targetRef policies' paths from `spec`, and the proto-based kinds' paths from the spec root.
    let root = if kind.universal_spec() == UniversalSpec::Nested { Path::rooted_at("spec") } else { Path::root() };
    let spec = match kind {
        Kind::Mesh => dec.decode(node, &root).map(Spec::Mesh),
        Kind::Dataplane => dec.decode(node, &root).map(Spec::Dataplane),
        Kind::MeshGateway => dec.decode(node, &root).map(Spec::MeshGateway),
        Kind::MeshGatewayRoute => dec.decode(node, &root).map(Spec::MeshGatewayRoute),
        Kind::Secret => dec.decode(node, &root).map(Spec::Secret),
        Kind::ExternalService => dec.decode(node, &root).map(Spec::ExternalService),
        Kind::MeshHttpRoute => dec.decode(node, &root).map(Spec::MeshHttpRoute),
        Kind::MeshTcpRoute => dec.decode(node, &root).map(Spec::MeshTcpRoute),
        Kind::MeshGatewayInstance => dec.decode(node, &root).map(Spec::MeshGatewayInstance),
        Kind::MeshGatewayConfig => dec.decode(node, &root).map(Spec::MeshGatewayConfig),
        Kind::Policy(PolicyKind::MeshTimeout) => {
            dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshTimeout(p)))
        }
        Kind::Policy(PolicyKind::MeshRetry) => dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshRetry(p))),
        Kind::Policy(PolicyKind::MeshRateLimit) => {
            dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshRateLimit(p)))
        }
        Kind::Policy(PolicyKind::MeshFaultInjection) => {
            dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshFaultInjection(p)))
        }
        Kind::Policy(PolicyKind::MeshAccessLog) => {
            dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshAccessLog(p)))
        }
        Kind::Policy(PolicyKind::MeshCircuitBreaker) => {
            dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshCircuitBreaker(p)))
        }
        Kind::Policy(PolicyKind::MeshHealthCheck) => {
            dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshHealthCheck(p)))
        }
        Kind::Policy(PolicyKind::MeshLoadBalancingStrategy) => {
            dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshLoadBalancingStrategy(p)))
        }
        Kind::Policy(PolicyKind::MeshTrace) => dec.decode(node, &root).map(|p| Spec::Policy(PolicySpec::MeshTrace(p))),
        Kind::Opaque(name) => match &node.value {
            Value::Map(_) | Value::Null => Ok(Spec::Opaque(name, node.to_json())),
            other => {
                dec.report(root, node.pos, format!("expected a mapping, found {}", other.type_name()));
                return None;
            }
        },
    };
    match spec {
        Ok(spec) => Some(spec),
        Err(issues) => {
            for issue in issues {
                dec.report(issue.path, issue.pos, issue.message);
            }
            None
        }
    }
}

fn finish(
    dec: &Decoder,
    spec: Option<Spec>,
    meta: Meta,
    written_kind: &str,
    name: &str,
    inline_spec: bool,
) -> Result<Resource, DocumentError> {
    let mut issues = dec.take_issues();
    if inline_spec {
        // An unknown top-level field of an inline spec may be a misspelt envelope field (`nmae`).
        for issue in &mut issues {
            if let [crate::path::Segment::Field(field)] = issue.path.segments()
                && issue.message.starts_with("unknown field")
                && let Some(best) = did_you_mean(field, UNIVERSAL_ENVELOPE.iter().copied())
            {
                issue.message = format!("unknown field `{field}`, did you mean `{best}`?");
            }
        }
    }
    match spec {
        Some(spec) if issues.is_empty() => Ok(Resource { meta, spec }),
        _ => Err(DocumentError {
            kind: Some(written_kind.to_owned()),
            name: Some(name.to_owned()),
            mesh: Some(meta.mesh).filter(|m| !m.is_empty()),
            issues,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    #[test]
    fn rest_collections_are_kumas_and_unique() {
        for (kind, collection) in [
            ("MeshGateway", "meshgateways"),
            ("MeshGatewayRoute", "meshgatewayroutes"),
            ("MeshHTTPRoute", "meshhttproutes"),
            ("MeshTCPRoute", "meshtcproutes"),
            ("Dataplane", "dataplanes"),
            ("ExternalService", "external-services"),
            ("Secret", "secrets"),
            ("Mesh", "meshes"),
            ("MeshRetry", "meshretries"),
            ("MeshLoadBalancingStrategy", "meshloadbalancingstrategies"),
            ("RateLimit", "rate-limits"),
        ] {
            let k = Kind::from_name(kind).unwrap();
            assert_eq!(k.collection(), Some(collection));
            assert_eq!(Kind::from_collection(collection), Some(k));
        }
        assert_eq!(Kind::MeshGatewayInstance.collection(), None);
        let all: Vec<&str> = Kind::all_names().filter_map(|n| Kind::from_name(n)?.collection()).collect();
        let mut unique = all.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(all.len(), unique.len(), "{all:?}");
        // Every kind meshgate accepts in Universal form has a collection.
        assert_eq!(all.len(), Kind::all_names().count() - 2);
    }

    fn decode(text: &str) -> Resource {
        let doc = parse_documents(text).unwrap().remove(0);
        match decode_document(&doc, UnknownFields::Deny) {
            Ok(d) => d.resource,
            Err(e) => panic!("{:?}", e.issues),
        }
    }

    fn decode_err(text: &str) -> Vec<String> {
        let doc = parse_documents(text).unwrap().remove(0);
        decode_document(&doc, UnknownFields::Deny).unwrap_err().issues.iter().map(ToString::to_string).collect()
    }

    const UNIVERSAL_GW: &str = r#"
type: MeshGateway
mesh: default
name: edge-gateway
selectors: [{match: {kuma.io/service: edge-gateway}}]
tags: {product: edge}
conf:
  listeners:
  - {port: 8080, protocol: HTTP, hostname: foo.example.com, tags: {vhost: foo}}
  - port: 8443
    protocol: HTTPS
    hostname: foo.example.com
    crossMesh: false
    tls: {mode: TERMINATE, certificates: [{secret: foo-cert}, {inlineString: "pem"}]}
    resources: {connectionLimit: 1000}
"#;

    const KUBERNETES_GW: &str = r#"
apiVersion: kuma.io/v1alpha1
kind: MeshGateway
mesh: default
metadata:
  name: edge-gateway
spec:
  selectors: [{match: {kuma.io/service: edge-gateway}}]
  tags: {product: edge}
  conf:
    listeners:
    - {port: 8080, protocol: HTTP, hostname: foo.example.com, tags: {vhost: foo}}
    - port: 8443
      protocol: HTTPS
      hostname: foo.example.com
      cross_mesh: false
      tls: {mode: TERMINATE, certificates: [{secret: foo-cert}, {inline_string: "pem"}]}
      resources: {connection_limit: 1000}
"#;

    #[test]
    fn universal_and_kubernetes_forms_decode_to_the_same_resource() {
        let u = decode(UNIVERSAL_GW);
        let k = decode(KUBERNETES_GW);
        assert_eq!(u.spec, k.spec);
        assert_eq!((u.meta.name.as_str(), u.meta.mesh.as_str()), (k.meta.name.as_str(), k.meta.mesh.as_str()));
        assert_eq!(u.meta.dialect, Dialect::Universal);
        assert_eq!(k.meta.dialect, Dialect::Kubernetes);
        // And the Universal JSON of either decodes back to the same spec.
        let json = serde_json::to_string(&u.to_universal_json()).unwrap();
        assert_eq!(decode(&json).spec, u.spec);
    }

    #[test]
    fn snake_and_camel_spellings_decode_identically() {
        let camel = r#"
type: MeshGatewayRoute
name: r
selectors: [{match: {kuma.io/service: gw}}]
conf:
  http:
    rules:
    - matches: [{path: {match: PREFIX, value: /api}, queryParameters: [{name: a, value: b}]}]
      filters:
      - requestHeader: {set: [{name: x, value: y}]}
      - rewrite: {replacePrefixMatch: /, hostToBackendHostname: true}
      - redirect: {statusCode: 301}
      backends: [{weight: 1, destination: {kuma.io/service: api}}]
"#;
        let snake = camel
            .replace("queryParameters", "query_parameters")
            .replace("requestHeader", "request_header")
            .replace("replacePrefixMatch", "replace_prefix_match")
            .replace("hostToBackendHostname", "host_to_backend_hostname")
            .replace("statusCode", "status_code");
        assert_ne!(camel, snake);
        assert_eq!(decode(camel), decode(&snake));
    }

    #[test]
    fn secrets_in_both_forms() {
        let u = decode("type: Secret\nname: s\nmesh: m1\ndata: aGVsbG8=\n");
        let k = decode(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: kuma-system, labels: {kuma.io/mesh: m1}}\ntype: system.kuma.io/secret\ndata: {value: aGVsbG8=}\n",
        );
        assert_eq!(u.spec, k.spec);
        assert_eq!(u.meta.mesh, "m1");
        assert_eq!(k.meta.mesh, "m1");
        let Spec::Secret(s) = &k.spec else { panic!() };
        assert_eq!(s.data.as_ref().unwrap().0, b"hello");
        assert_eq!(
            decode_err("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: Opaque\ndata: {value: aGk=}\n"),
            vec![
                "type: a Kubernetes Secret is a Kuma secret only with `type: system.kuma.io/secret` (found \"Opaque\")"
            ]
        );
    }

    #[test]
    fn mesh_defaults_and_labels() {
        assert_eq!(decode("type: MeshGateway\nname: g\n").meta.mesh, "default");
        let k = decode(
            "apiVersion: kuma.io/v1alpha1\nkind: MeshHTTPRoute\nmetadata: {name: r, labels: {kuma.io/mesh: m2}}\nspec: {}\n",
        );
        assert_eq!(k.meta.mesh, "m2");
        assert_eq!(
            decode_err(
                "apiVersion: kuma.io/v1alpha1\nkind: MeshGateway\nmesh: a\nmetadata: {name: g, labels: {kuma.io/mesh: b}}\n"
            ),
            vec!["mesh: mesh \"a\" disagrees with the kuma.io/mesh label \"b\""]
        );
        assert_eq!(decode("type: Mesh\nname: default\n").meta.mesh, "");
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(decode_err("type: MeshGateway\nnme: g\n"), vec!["nme: unknown field `nme`, did you mean `name`?"]);
        assert_eq!(
            decode_err("type: MeshHTTPRoute\nname: r\nspek: {}\n"),
            vec!["spek: unknown field `spek`, did you mean `spec`?"]
        );
        assert_eq!(
            decode_err("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: g}\n"),
            vec!["apiVersion: not a Kuma resource (apiVersion \"gateway.networking.k8s.io/v1\", kind \"Gateway\")"]
        );
        assert_eq!(
            decode_err("type: MeshGatewayInstance\nname: i\n"),
            vec!["type: MeshGatewayInstance exists only in Kubernetes form (apiVersion: kuma.io/v1alpha1)"]
        );
        assert_eq!(
            decode_err("apiVersion: kuma.io/v1alpha1\nkind: MeshGateway\nmetadata: {name: g, nmespace: x}\n"),
            vec!["metadata.nmespace: unknown field `nmespace`, did you mean `namespace`?"]
        );
    }

    #[test]
    fn targetref_policy_paths_start_at_spec() {
        let doc =
            parse_documents("type: MeshHTTPRoute\nname: r\nspec:\n  to:\n  - targetRef: {kind: Mesh}\n    rulez: []\n")
                .unwrap()
                .remove(0);
        let err = decode_document(&doc, UnknownFields::Deny).unwrap_err();
        assert_eq!(err.issues[0].path.to_string(), "spec.to[0].rulez");
        assert_eq!(err.issues[0].pos, crate::yaml::Pos::new(6, 5));
    }

    #[test]
    fn opaque_kinds_are_kept_and_policies_modelled() {
        let r = decode("type: MeshMetric\nname: t\nmesh: default\nspec: {targetRef: {kind: Mesh}}\n");
        assert_eq!(r.kind(), Kind::Opaque("MeshMetric"));
        assert!(!r.kind().is_modelled());
        assert_eq!(r.spec_json()["targetRef"]["kind"], "Mesh");
        let r = decode(
            "type: MeshTimeout\nname: t\nmesh: default\nspec: {targetRef: {kind: Mesh}, to: [{targetRef: {kind: Mesh}, default: {idleTimeout: 10s}}]}\n",
        );
        assert_eq!(r.kind(), Kind::Policy(PolicyKind::MeshTimeout));
        assert!(r.kind().is_modelled());
        assert_eq!(r.spec_json()["to"][0]["default"]["idleTimeout"], "10s");
    }
}
