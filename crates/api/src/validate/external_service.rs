//! `ExternalService` validation (Kuma `external_service_validator.go`).

use super::Errors;
use super::dataplane::SUPPORTED_PROTOCOLS;
use super::tags::{TagsOpts, is_dns_name, is_ip, split_host_port, validate_port, validate_tags};
use crate::model::common::{DataSource, PROTOCOL_TAG, SERVICE_TAG};
use crate::model::external_service::ExternalService;
use crate::path::Path;

pub(super) fn validate(es: &ExternalService) -> Errors {
    let mut errs = Errors::default();
    let path = Path::rooted_at("networking");
    match &es.networking {
        None => errs.add(path.clone(), "should have networking"),
        Some(n) => errs.append(validate_address(&path, &n.address)),
    }
    let tls = es.networking.as_ref().and_then(|n| n.tls.as_ref());
    if tls.and_then(|t| t.server_name.as_deref()) == Some("") {
        errs.add(path.field("tls").field("serverName"), "cannot be empty");
    }
    for (field, ds) in [
        ("caCert", tls.and_then(|t| t.ca_cert.as_ref())),
        ("clientCert", tls.and_then(|t| t.client_cert.as_ref())),
        ("clientKey", tls.and_then(|t| t.client_key.as_ref())),
    ] {
        errs.append(validate_data_source(&path.field("tls").field(field), ds));
    }
    if let Some(value) = es.tags.get(PROTOCOL_TAG)
        && !SUPPORTED_PROTOCOLS.contains(&value.as_str())
    {
        errs.add(
            Path::rooted_at("tags").key(PROTOCOL_TAG),
            format!(
                "tag \"{PROTOCOL_TAG}\" has an invalid value \"{value}\". Allowed values: {}",
                SUPPORTED_PROTOCOLS.join(", ")
            ),
        );
    }
    let opts = TagsOpts { require_service: true, ..Default::default() };
    errs.append(validate_tags(&Path::rooted_at("tags"), &es.tags, &opts));
    if let Some(service) = es.service().filter(|s| !s.is_empty())
        && let Some(n) = &es.networking
        && let Ok((host, _)) = split_host_port(&n.address)
        && host == service
    {
        errs.add(Path::rooted_at("tags").key(SERVICE_TAG), "cannot be the same as networking.address");
    }
    errs
}

fn validate_address(path: &Path, address: &str) -> Errors {
    let mut errs = Errors::default();
    let field = path.field("address");
    if address.is_empty() {
        errs.add(field, "address can't be empty");
        return errs;
    }
    let (host, port) = match split_host_port(address) {
        Ok(hp) => hp,
        Err(_) => {
            errs.add(field.clone(), "unable to parse address");
            ("", "")
        }
    };
    if !is_ip(host) && !is_dns_name(host) {
        errs.add(field.clone(), "address has to be a valid IP address or a domain name");
    }
    let port_number = match port.parse::<u32>() {
        Ok(p) => p,
        Err(_) => {
            errs.add(field.clone(), "unable to parse port in address");
            0
        }
    };
    errs.append(validate_port(&field, port_number));
    errs
}

/// Kuma's `system.ValidateDataSource`.
pub(crate) fn validate_data_source(path: &Path, ds: Option<&DataSource>) -> Errors {
    let mut errs = Errors::default();
    if ds.is_some_and(DataSource::is_empty) {
        errs.add(path.clone(), "data source cannot be empty");
    }
    errs
}
