//! `Dataplane` validation (Kuma `dataplane_validator.go`), including the builtin-gateway rules.

use super::Errors;
use super::tags::{TagsOpts, is_dns_name, is_ip, validate_port, validate_tags};
use crate::model::common::{PROTOCOL_TAG, SERVICE_TAG, Tags};
use crate::model::dataplane::{Dataplane, Gateway, Inbound, Networking, Outbound, TransparentProxying};
use crate::path::Path;

/// The protocols a service may declare.
pub(crate) const SUPPORTED_PROTOCOLS: &[&str] = &["grpc", "http", "http2", "kafka", "tcp"];

pub(super) fn validate(dp: &Dataplane) -> Errors {
    let mut errs = Errors::default();
    let net = Path::rooted_at("networking");
    let Some(networking) = &dp.networking else {
        errs.add(net, "must be defined");
        return errs;
    };
    if let Some(admin) = &networking.admin {
        let admin_port = net.field("admin").field("port");
        if uses_inbound_loopback(networking, admin.port) {
            errs.add(admin_port.clone(), "must differ from inbound");
        }
        if uses_outbound_loopback(networking, admin.port) {
            errs.add(admin_port, "must differ from outbound");
        }
    }
    if dp.is_delegated_gateway() {
        if !networking.inbound.is_empty() {
            errs.add(net.field("inbound"), "inbound cannot be defined for delegated gateways");
        }
        errs.add_at(&net.field("gateway"), validate_gateway(networking.gateway.as_ref()));
        errs.append(validate_networking(networking));
        errs.append(validate_probes(dp));
    } else if dp.is_builtin_gateway() {
        if !networking.inbound.is_empty() {
            errs.add(net.field("inbound"), "inbound cannot be defined for builtin gateways");
        }
        if !networking.outbound.is_empty() {
            errs.add(net.field("outbound"), "outbound cannot be defined for builtin gateways");
        }
        if dp.probes.is_some() {
            errs.add(net.field("probes"), "probes cannot be defined for builtin gateways");
        }
        errs.add_at(&net.field("gateway"), validate_gateway(networking.gateway.as_ref()));
        errs.append(validate_networking(networking));
    } else {
        if networking.inbound.is_empty() {
            errs.add(net, "has to contain at least one inbound interface or gateway");
        }
        errs.append(validate_networking(networking));
        errs.append(validate_probes(dp));
        if let Some(metrics) = &dp.metrics
            && metrics.type_ != "prometheus"
        {
            errs.add(
                Path::rooted_at("metrics").field("type"),
                "unknown backend type. Available backends: \"prometheus\"",
            );
        }
    }
    errs
}

fn is_loopback_or_unspecified(address: &str) -> bool {
    address.is_empty() || address == "127.0.0.1" || address == "0.0.0.0" || address == "::1" || address == "::"
}

/// Whether an inbound's workload (by default on 127.0.0.1) or the proxy itself uses `port` on loopback.
fn uses_inbound_loopback(networking: &Networking, port: u32) -> bool {
    networking.inbound.iter().any(|i| {
        let workload_port = if i.service_port == 0 { i.port } else { i.service_port };
        let workload_address = if i.service_address.is_empty() { "127.0.0.1" } else { &i.service_address };
        (workload_port == port && is_loopback_or_unspecified(workload_address))
            || (i.port == port && is_loopback_or_unspecified(i.effective_address(networking)))
    })
}

fn uses_outbound_loopback(networking: &Networking, port: u32) -> bool {
    networking.outbound.iter().any(|o| o.port == port && is_loopback_or_unspecified(&o.address))
}

fn validate_gateway(gateway: Option<&Gateway>) -> Errors {
    fn protocol_is_tcp(path: &Path, tags: &Tags) -> Errors {
        let mut errs = Errors::default();
        if let Some(protocol) = tags.get(PROTOCOL_TAG)
            && protocol != "tcp"
        {
            errs.add(
                path.key(PROTOCOL_TAG),
                format!("other values than tcp are not allowed, provided value \"{protocol}\""),
            );
        }
        errs
    }
    let empty = Tags::new();
    let tags = gateway.map_or(&empty, |g| &g.tags);
    let opts = TagsOpts { require_service: true, extra_tags: vec![protocol_is_tcp], ..Default::default() };
    validate_tags(&Path::rooted_at("tags"), tags, &opts)
}

fn validate_networking(networking: &Networking) -> Errors {
    let mut errs = Errors::default();
    let path = Path::rooted_at("networking");
    errs.append(validate_address(&path, &networking.address));
    for (i, inbound) in networking.inbound.iter().enumerate() {
        let field = path.field("inbound").index(i);
        errs.add_at(&field, validate_inbound(inbound, &networking.address));
        if !inbound.tags.contains_key(SERVICE_TAG) {
            errs.add(field.field("tags").key(SERVICE_TAG), "tag has to exist");
        }
    }
    for (i, outbound) in networking.outbound.iter().enumerate() {
        errs.add_at(&path.field("outbound").index(i), validate_outbound(outbound));
    }
    // Kuma's path really is spelled "transparentProxing".
    errs.add_at(
        &path.field("transparentProxing"),
        validate_transparent_proxying(networking.transparent_proxying.as_ref()),
    );
    errs
}

fn validate_address(path: &Path, address: &str) -> Errors {
    let mut errs = Errors::default();
    let field = path.field("address");
    if address.is_empty() {
        errs.add(field, "address can't be empty");
        return errs;
    }
    if address == "0.0.0.0" || address == "::" {
        errs.add(field.clone(), "must not be 0.0.0.0 or ::");
    }
    if !is_ip(address) && !is_dns_name(address) {
        errs.add(field, "address has to be valid IP address or domain name");
    }
    errs
}

fn protocol_tag_check(path: &Path, tags: &Tags) -> Errors {
    let mut errs = Errors::default();
    if let Some(value) = tags.get(PROTOCOL_TAG)
        && !SUPPORTED_PROTOCOLS.contains(&value.as_str())
    {
        errs.add(
            path.key(PROTOCOL_TAG),
            format!(
                "tag \"{PROTOCOL_TAG}\" has an invalid value \"{value}\". Allowed values: {}",
                SUPPORTED_PROTOCOLS.join(", ")
            ),
        );
    }
    errs
}

fn validate_inbound(inbound: &Inbound, dp_address: &str) -> Errors {
    let mut errs = Errors::default();
    errs.append(validate_port(&Path::rooted_at("port"), inbound.port));
    if inbound.service_port != 0 {
        errs.append(validate_port(&Path::rooted_at("servicePort"), inbound.service_port));
    }
    let same_ports = inbound.service_port == 0 || inbound.service_port == inbound.port;
    if !inbound.service_address.is_empty() {
        if !is_ip(&inbound.service_address) {
            errs.add(Path::rooted_at("serviceAddress"), "serviceAddress has to be valid IP address");
        }
        if inbound.service_address == dp_address && same_ports {
            errs.add(
                Path::rooted_at("serviceAddress"),
                "serviceAddress and servicePort has to differ from address and port",
            );
        }
    }
    if !inbound.address.is_empty() {
        if !is_ip(&inbound.address) {
            errs.add(Path::rooted_at("address"), "address has to be valid IP address");
        }
        if inbound.address == inbound.service_address && same_ports {
            errs.add(
                Path::rooted_at("serviceAddress"),
                "serviceAddress and servicePort has to differ from address and port",
            );
        }
    }
    let opts = TagsOpts { extra_tags: vec![protocol_tag_check], ..Default::default() };
    errs.append(validate_tags(&Path::rooted_at("tags"), &inbound.tags, &opts));
    if let Some(probe) = &inbound.service_probe {
        let path = Path::rooted_at("serviceProbe");
        for (field, d) in [("interval", probe.interval), ("timeout", probe.timeout)] {
            if let Some(d) = d
                && d.0.is_zero()
            {
                errs.add(path.field(field), "must have a positive value");
            }
        }
        for (field, t) in
            [("unhealthyThreshold", probe.unhealthy_threshold), ("healthyThreshold", probe.healthy_threshold)]
        {
            if t == Some(0) {
                errs.add(path.field(field), "must have a positive value");
            }
        }
    }
    errs
}

const OUTBOUND_KINDS: &[&str] = &["MeshExternalService", "MeshMultiZoneService", "MeshService"];

fn validate_outbound(outbound: &Outbound) -> Errors {
    let mut errs = Errors::default();
    errs.append(validate_port(&Path::rooted_at("port"), outbound.port));
    if !outbound.address.is_empty() && !is_ip(&outbound.address) {
        errs.add(Path::rooted_at("address"), "address has to be valid IP address");
    }
    if let Some(r) = &outbound.backend_ref {
        if !OUTBOUND_KINDS.contains(&r.kind.as_str()) {
            errs.add(
                Path::rooted_at("backendRef").field("kind"),
                format!("invalid value. Available values are: {}", OUTBOUND_KINDS.join(",")),
            );
        }
        if r.name.is_empty() && r.labels.is_empty() {
            errs.add(Path::rooted_at("backendRef"), "either 'name' or 'labels' should be specified");
        }
        if r.kind != "MeshExternalService" {
            errs.append(validate_port(&Path::rooted_at("backendRef").field("port"), r.port));
        }
        if !outbound.tags.is_empty() {
            errs.add(Path::rooted_at("backendRef"), "both backendRef and tags/service cannot be defined");
        }
    } else if outbound.tags.is_empty() {
        errs.add(Path::rooted_at("tags"), format!("mandatory tag \"{SERVICE_TAG}\" is missing"));
    } else {
        let opts = TagsOpts { require_service: true, ..Default::default() };
        errs.append(validate_tags(&Path::rooted_at("tags"), &outbound.tags, &opts));
    }
    errs
}

fn validate_transparent_proxying(tp: Option<&TransparentProxying>) -> Errors {
    let mut errs = Errors::default();
    let Some(refs) = tp.and_then(|t| t.reachable_backends.as_ref()) else { return errs };
    let path = Path::rooted_at("reachableBackends").field("refs");
    for (i, r) in refs.refs.iter().enumerate() {
        let rp = path.index(i);
        if !OUTBOUND_KINDS.contains(&r.kind.as_str()) {
            errs.add(rp.field("kind"), format!("invalid value. Available values are: {}", OUTBOUND_KINDS.join(",")));
        }
        if !r.name.is_empty() && !super::tags::is_domain(&r.name) {
            errs.add(
                rp.field("name"),
                "invalid characters. A lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            );
        }
        if r.name.is_empty() && r.namespace.is_empty() && r.labels.is_empty() {
            errs.add(rp.field("name"), "name or labels are required");
        }
        if r.name.is_empty() && !r.namespace.is_empty() {
            errs.add(rp.field("name"), "name is required, when namespace is defined");
        }
        if (!r.name.is_empty() || !r.namespace.is_empty()) && !r.labels.is_empty() {
            errs.add(rp.field("labels"), "labels cannot be defined when name is specified");
        }
    }
    errs
}

fn validate_probes(dp: &Dataplane) -> Errors {
    let mut errs = Errors::default();
    let Some(probes) = &dp.probes else { return errs };
    let path = Path::rooted_at("probes");
    errs.append(validate_port(&path.field("port"), probes.port));
    for (i, e) in probes.endpoints.iter().enumerate() {
        let ep = path.field("endpoints").index(i);
        errs.append(validate_port(&ep.field("inboundPort"), e.inbound_port));
        if !e.inbound_path.starts_with('/') {
            errs.add(ep.field("inboundPath"), "should be a valid URL Path");
        }
        if !e.path.starts_with('/') {
            errs.add(ep.field("path"), "should be a valid URL Path");
        }
    }
    errs
}
