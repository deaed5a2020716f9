//! `Mesh` validation (Kuma `mesh_validator.go`): backends are named uniquely and the enabled/default backend
//! exists; logging and tracing backends are complete.

use std::collections::BTreeSet;

use super::Errors;
use super::tags::split_host_port;
use crate::model::mesh::{LoggingBackend, Mesh, TracingBackend};
use crate::model::wkt::{JsonObject, parse_go_duration};
use crate::path::Path;

pub(super) fn validate(mesh: &Mesh) -> Errors {
    let mut errs = Errors::default();
    if let Some(mtls) = &mesh.mtls {
        let mut child = Errors::default();
        let mut used = BTreeSet::new();
        for (i, b) in mtls.backends.iter().enumerate() {
            if !used.insert(b.name.as_str()) {
                child.add(
                    Path::rooted_at("backends").index(i).field("name"),
                    format!("\"{}\" name is already used for another backend", b.name),
                );
            }
        }
        if !mtls.enabled_backend.is_empty() && !used.contains(mtls.enabled_backend.as_str()) {
            child.add(Path::rooted_at("enabledBackend"), "has to be set to one of the backends in the mesh");
        }
        for b in &mtls.backends {
            if let Some(dp_cert) = &b.dp_cert {
                let expiration = dp_cert.rotation.as_ref().map_or("", |r| r.expiration.as_str());
                if parse_go_duration(expiration).is_err() {
                    child.add(
                        Path::rooted_at("dpcert").field("rotation").field("expiration"),
                        "has to be a valid format",
                    );
                }
            }
        }
        errs.add_at(&Path::rooted_at("mtls"), child);
    }
    if let Some(logging) = &mesh.logging {
        let mut child = Errors::default();
        let mut used = BTreeSet::new();
        for (i, b) in logging.backends.iter().enumerate() {
            child.add_at(&Path::rooted_at("backends").index(i), validate_logging_backend(b));
            if !used.insert(b.name.as_str()) {
                child.add(
                    Path::rooted_at("backends").index(i).field("name"),
                    format!("\"{}\" name is already used for another backend", b.name),
                );
            }
        }
        if !logging.default_backend.is_empty() && !used.contains(logging.default_backend.as_str()) {
            child.add(Path::rooted_at("defaultBackend"), "has to be set to one of the logging backend in mesh");
        }
        errs.add_at(&Path::rooted_at("logging"), child);
    }
    if let Some(tracing) = &mesh.tracing {
        let mut child = Errors::default();
        let mut used = BTreeSet::new();
        for (i, b) in tracing.backends.iter().enumerate() {
            child.add_at(&Path::rooted_at("backends").index(i), validate_tracing_backend(b));
            if !used.insert(b.name.as_str()) {
                child.add(
                    Path::rooted_at("backends").index(i).field("name"),
                    format!("\"{}\" name is already used for another backend", b.name),
                );
            }
        }
        if !tracing.default_backend.is_empty() && !used.contains(tracing.default_backend.as_str()) {
            child.add(Path::rooted_at("defaultBackend"), "has to be set to one of the tracing backend in mesh");
        }
        errs.add_at(&Path::rooted_at("tracing"), child);
    }
    if let Some(metrics) = &mesh.metrics {
        let mut child = Errors::default();
        let mut used = BTreeSet::new();
        for (i, b) in metrics.backends.iter().enumerate() {
            if used.contains(b.name.as_str()) {
                child.add(
                    Path::rooted_at("backends").index(i).field("name"),
                    format!("\"{}\" name is already used for another backend", b.name),
                );
            }
            if b.type_ != "prometheus" {
                child.add(
                    Path::rooted_at("backends").index(i).field("type"),
                    "unknown backend type. Available backends: \"prometheus\"",
                );
            }
            used.insert(b.name.as_str());
        }
        if !metrics.enabled_backend.is_empty() && !used.contains(metrics.enabled_backend.as_str()) {
            child.add(Path::rooted_at("enabledBackend"), "has to be set to one of the backends in the mesh");
        }
        errs.add_at(&Path::rooted_at("metrics"), child);
    }
    errs
}

fn conf_str<'a>(conf: Option<&'a JsonObject>, field: &str) -> &'a str {
    conf.and_then(|c| c.get(field)).and_then(|v| v.as_str()).unwrap_or_default()
}

fn validate_logging_backend(b: &LoggingBackend) -> Errors {
    let mut errs = Errors::default();
    if b.name.is_empty() {
        errs.add(Path::rooted_at("name"), "cannot be empty");
    }
    let conf = b.conf.as_ref();
    match b.type_.as_str() {
        "file" => {
            if conf_str(conf, "path").is_empty() {
                errs.add(Path::rooted_at("config").field("path"), "cannot be empty");
            }
        }
        "tcp" => {
            let address = conf_str(conf, "address");
            if address.is_empty() {
                errs.add(Path::rooted_at("config").field("address"), "cannot be empty");
            } else if !split_host_port(address).is_ok_and(|(h, p)| !h.is_empty() && !p.is_empty()) {
                errs.add(Path::rooted_at("config").field("address"), "has to be in format of HOST:PORT");
            }
        }
        _ => errs.add(Path::rooted_at("type"), "unknown backend type. Available backends: \"tcp\", \"file\""),
    }
    errs
}

fn validate_tracing_backend(b: &TracingBackend) -> Errors {
    let mut errs = Errors::default();
    if b.name.is_empty() {
        errs.add(Path::rooted_at("name"), "cannot be empty");
    }
    let sampling = b.sampling.unwrap_or(0.0);
    if !(0.0..=100.0).contains(&sampling) {
        errs.add(Path::rooted_at("sampling"), "has to be in [0.0 - 100.0] range");
    }
    let conf = b.conf.as_ref();
    match b.type_.as_str() {
        "zipkin" => {
            let api = conf_str(conf, "apiVersion");
            if !["", "httpJsonV1", "httpJson", "httpProto"].contains(&api) {
                errs.add(
                    Path::rooted_at("config").field("apiVersion"),
                    "has invalid value. Allowed values: httpJsonV1, httpJson, httpProto",
                );
            }
            let url = conf_str(conf, "url");
            if url.is_empty() {
                errs.add(Path::rooted_at("config").field("url"), "cannot be empty");
            } else {
                let authority = url.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or_default());
                match authority {
                    None => errs.add(Path::rooted_at("config").field("url"), "invalid URL"),
                    Some(a) if split_host_port(a).is_err() => {
                        errs.add(Path::rooted_at("config").field("url"), "port has to be explicitly specified")
                    }
                    Some(_) => {}
                }
            }
        }
        "datadog" => {
            let address = conf_str(conf, "address");
            if address.is_empty() {
                errs.add(Path::rooted_at("config").field("address"), "cannot be empty");
            }
            if !address.starts_with("unix:") {
                let parts: Vec<&str> = address.split(':').collect();
                if parts.len() < 2 {
                    errs.add(
                        Path::rooted_at("config").field("address"),
                        "must be of format address:port or unix:/path/to/socket",
                    );
                } else if !parts[parts.len() - 1].parse::<u32>().is_ok_and(|p| (1..=65535).contains(&p)) {
                    errs.add(Path::rooted_at("config").field("address"), "port must be number in range 1-65535");
                }
            }
        }
        _ => errs.add(Path::rooted_at("type"), "unknown backend type. Available backends: \"zipkin\", \"datadog\""),
    }
    errs
}
