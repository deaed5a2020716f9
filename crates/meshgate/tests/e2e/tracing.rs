//! MeshTrace on a gateway, through the real binary: W3C `traceparent` propagation to the upstream, spans exported
//! to an OTLP/HTTP receiver (and, after a live change, to a Zipkin one) with the listener, route and backend, the
//! policy's tags, and the right parent/child ids; sampling at 0 % exports nothing but still propagates the trace.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Backend, Gateway, backend_yaml, client, eventually, free_port, gateway_yaml, send, write_config};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn mesh_trace(backend: &str, sampling: &str) -> String {
    format!(
        "type: MeshTrace\nmesh: default\nname: edge-trace\nspec:\n  targetRef: {{kind: MeshGateway, name: gw}}\n  default:\n    backends: [{backend}]\n    tags:\n    - {{name: team, literal: edge}}\n    - {{name: env, header: {{name: x-env, default: prod}}}}\n    sampling: {sampling}\n"
    )
}

/// The spans a receiver got, from every request body it saw.
fn otlp_spans(receiver: &Backend) -> Vec<(Value, Value)> {
    let mut out = Vec::new();
    for seen in receiver.seen() {
        let Ok(body) = serde_json::from_str::<Value>(&seen.body) else { continue };
        for rs in body["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    out.push((rs["resource"].clone(), span.clone()));
                }
            }
        }
    }
    out
}

fn attribute(span: &Value, key: &str) -> Option<String> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"]["stringValue"].as_str())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mesh_trace_propagates_and_exports_spans() {
    let api = Backend::start("api").await;
    let otel = Backend::start("otel").await;
    let zipkin = Backend::start("zipkin").await;
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    config.push_str(&backend_yaml("api-1", "api", api.port(), ""));
    config.push_str(
        "---\ntype: MeshGatewayRoute\nmesh: default\nname: api-route\nselectors: [{match: {kuma.io/service: gw}}]\nconf:\n  http:\n    rules:\n    - matches: [{path: {match: PREFIX, value: /}}]\n      backends: [{destination: {kuma.io/service: api}}]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let otel_backend =
        format!("{{type: OpenTelemetry, openTelemetry: {{endpoint: \"http://127.0.0.1:{}\"}}}}", otel.port());
    std::fs::write(dir.path().join("trace.yaml"), mesh_trace(&otel_backend, "{overall: 100}")).unwrap();
    let gw = Gateway::start(dir.path(), &[]).await;
    let c = client();

    // A request that carries a sampled trace: the upstream sees the same trace, with the gateway's span as parent.
    let incoming = format!("00-{TRACE}-{PARENT}-01");
    let r = send(&c, "GET", port, "example.com", "/orders", &[("traceparent", &incoming), ("x-env", "canary")]).await;
    assert_eq!(r.status, 200, "{r:?}");
    let upstream =
        r.upstream_header("traceparent").unwrap_or_else(|| panic!("traceparent reaches the upstream: {r:?}"));
    let parts: Vec<&str> = upstream.split('-').collect();
    assert_eq!((parts[0], parts[1], parts[3]), ("00", TRACE, "01"), "{upstream}");
    let gateway_span = parts[2].to_owned();
    assert_ne!(gateway_span, PARENT, "the gateway adds its own span");

    // Its span reaches the OTLP receiver.
    eventually(Duration::from_secs(5), "the span is exported", || async {
        otlp_spans(&otel).iter().any(|(_, s)| s["traceId"] == TRACE)
    })
    .await;
    assert!(otel.seen().iter().all(|s| s.path == "/v1/traces"), "OTLP/HTTP path");
    let (resource, span) = otlp_spans(&otel).into_iter().find(|(_, s)| s["traceId"] == TRACE).unwrap();
    assert_eq!(span["spanId"], gateway_span.as_str(), "{span}");
    assert_eq!(span["parentSpanId"], PARENT, "{span}");
    assert_eq!(span["kind"], 2, "a server span");
    assert_eq!(resource["attributes"][0]["value"]["stringValue"], "gw", "{resource}");
    assert_eq!(attribute(&span, "meshgate.listener"), Some(format!("gw:HTTP:{port}")));
    assert_eq!(attribute(&span, "meshgate.route").as_deref(), Some("api-route"));
    assert_eq!(attribute(&span, "meshgate.cluster").as_deref(), Some("api"));
    assert_eq!(attribute(&span, "meshgate.upstream"), Some(format!("127.0.0.1:{}", api.port())));
    assert_eq!(attribute(&span, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attribute(&span, "url.path").as_deref(), Some("/orders"));
    assert_eq!(attribute(&span, "team").as_deref(), Some("edge"));
    assert_eq!(attribute(&span, "env").as_deref(), Some("canary"));
    let (start, end) = (span["startTimeUnixNano"].as_str().unwrap(), span["endTimeUnixNano"].as_str().unwrap());
    assert!(start.parse::<u128>().unwrap() <= end.parse::<u128>().unwrap());

    // No incoming trace: a new one starts at the gateway (random sampling defaults to 100 %).
    let r = send(&c, "GET", port, "example.com", "/new", &[]).await;
    let upstream = r.upstream_header("traceparent").unwrap();
    let new_trace = upstream.split('-').nth(1).unwrap().to_owned();
    assert_ne!(new_trace, TRACE);
    eventually(Duration::from_secs(5), "the new trace is exported, as a root span", || async {
        otlp_spans(&otel).iter().any(|(_, s)| s["traceId"] == new_trace.as_str() && s["parentSpanId"] == "")
    })
    .await;

    // Sampling at 0 %: the trace still propagates (flag 00) and nothing is exported.
    write_config(dir.path(), "trace.yaml", &mesh_trace(&otel_backend, "{overall: 0}"));
    eventually(Duration::from_secs(5), "the sampling change applies", || async {
        let r = send(&client(), "GET", port, "example.com", "/probe", &[]).await;
        r.upstream_header("traceparent").is_some_and(|t| t.ends_with("-00"))
    })
    .await;
    // Spans of the probes sent before the change may still be on their way.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = otlp_spans(&otel).len();
    let r =
        send(&c, "GET", port, "example.com", "/quiet", &[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))]).await;
    assert!(r.upstream_header("traceparent").is_some_and(|t| t.contains(TRACE) && t.ends_with("-00")), "{r:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(otlp_spans(&otel).len(), before, "nothing exported at 0 %");

    // A live switch to Zipkin: spans arrive as Zipkin v2 JSON.
    let zipkin_backend =
        format!("{{type: Zipkin, zipkin: {{url: \"http://127.0.0.1:{}/api/v2/spans\"}}}}", zipkin.port());
    write_config(dir.path(), "trace.yaml", &mesh_trace(&zipkin_backend, "{overall: 100}"));
    eventually(Duration::from_secs(5), "spans reach Zipkin", || async {
        let _ = send(&client(), "GET", port, "example.com", "/zipkin", &[]).await;
        zipkin.seen().iter().any(|s| {
            s.path == "/api/v2/spans"
                && serde_json::from_str::<Value>(&s.body).is_ok_and(|v| {
                    v.as_array().is_some_and(|spans| {
                        spans.iter().any(|sp| {
                            sp["localEndpoint"]["serviceName"] == "gw" && sp["tags"]["meshgate.route"] == "api-route"
                        })
                    })
                })
        })
    })
    .await;
    assert!(gw.log().contains("listening"), "{}", gw.log());
}

#[test]
fn an_unsupported_collector_is_a_diagnostic_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = gateway_yaml("  - port: 1\n    protocol: HTTP\n");
    config.push_str("---\n");
    config.push_str(&mesh_trace("{type: OpenTelemetry, openTelemetry: {endpoint: \"otel-collector:4317\"}}", "{}"));
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["inspect", "meshgateway", "gw", "--config"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("meshgate exports OTLP over HTTP"), "{text}");
}
