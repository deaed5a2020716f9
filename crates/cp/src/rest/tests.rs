//! The REST API, request by request, over the in-memory store.

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use meshgate_store::MemoryStore;
use tower::ServiceExt;

use super::*;

struct Client(Router);

impl Client {
    fn new() -> Client {
        Client(router(
            AnyStore::Memory(MemoryStore::new()),
            ServerInfo::default(),
            json!({"store": "memory:"}),
            None,
            None,
        ))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: &str,
        if_match: Option<&str>,
    ) -> (StatusCode, HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(v) = if_match {
            req = req.header(header::IF_MATCH, v);
        }
        let resp = self.0.clone().oneshot(req.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    async fn put(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call("PUT", path, body, None).await;
        (s, v)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.call("GET", path, "", None).await;
        (s, v)
    }
}

const MESH: &str = "type: Mesh\nname: default\n";
const GATEWAY: &str = "type: MeshGateway
mesh: default
name: edge
selectors:
- match:
    kuma.io/service: edge
conf:
  listeners:
  - port: 8080
    protocol: HTTP
";

#[tokio::test]
async fn create_read_update_delete() {
    let c = Client::new();
    assert_eq!(c.get("/").await.1["product"], "meshgate");
    assert_eq!(c.put("/meshes/default", MESH).await.0, StatusCode::CREATED);
    assert_eq!(c.get("/config").await.1["store"], "memory:");
    // A dry run validates and tells, and writes nothing.
    assert_eq!(c.put("/meshes/default/meshgateways/edge?dryRun=true", GATEWAY).await.1["change"], "created");
    assert_eq!(c.get("/meshes/default/meshgateways/edge").await.0, StatusCode::NOT_FOUND);
    assert_eq!(c.put("/meshes/default/meshgateways/edge", GATEWAY).await.0, StatusCode::CREATED);
    assert_eq!(c.put("/meshes/default/meshgateways/edge?dryRun=true", GATEWAY).await.1["change"], "unchanged");
    // Writing the same again: 200, and no new version.
    let (status, headers, _) = c.call("PUT", "/meshes/default/meshgateways/edge", GATEWAY, None).await;
    assert_eq!((status, &headers[header::ETAG]), (StatusCode::OK, &HeaderValue::from_static("\"1\"")));
    let changed_port = GATEWAY.replace("8080", "8081");
    assert_eq!(c.put("/meshes/default/meshgateways/edge?dryRun=true", &changed_port).await.1["change"], "updated");
    let (status, headers, gw) = c.call("GET", "/meshes/default/meshgateways/edge", "", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::ETAG], "\"1\"");
    assert_eq!(gw["type"], "MeshGateway");
    assert_eq!(gw["conf"]["listeners"][0]["port"], 8080);
    assert!(gw["creationTime"].as_str().is_some_and(|t| t.ends_with('Z')));
    // Update: 200, version 2; a write at the old version conflicts.
    let changed = GATEWAY.replace("8080", "9090");
    assert_eq!(c.put("/meshes/default/meshgateways/edge", &changed).await.0, StatusCode::OK);
    let (status, _, body) = c.call("PUT", "/meshes/default/meshgateways/edge", GATEWAY, Some("\"1\"")).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(c.get("/meshes/default/meshgateways/edge").await.1["conf"]["listeners"][0]["port"], 9090);
    // JSON works as well as YAML, and the Kubernetes form is stored in Universal form.
    let json_body = r#"{"type":"MeshGateway","mesh":"default","name":"edge","selectors":[{"match":{"kuma.io/service":"edge"}}],"conf":{"listeners":[{"port":7070,"protocol":"HTTP"}]}}"#;
    let (status, _, _) = c.call("PUT", "/meshes/default/meshgateways/edge", json_body, Some("\"2\"")).await;
    assert_eq!(status, StatusCode::OK);
    // Delete: 200, then 404.
    let (status, _, _) = c.call("DELETE", "/meshes/default/meshgateways/edge", "", Some("\"1\"")).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(c.call("DELETE", "/meshes/default/meshgateways/edge", "", None).await.0, StatusCode::OK);
    let (status, body) = c.get("/meshes/default/meshgateways/edge").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["title"], "Could not retrieve a resource");
    assert_eq!(
        (&body["type"], &body["status"], &body["detail"]),
        (&json!("/std-errors"), &json!(404), &json!("Not found"))
    );
    let (status, _, body) = c.call("DELETE", "/meshes/default/meshgateways/edge", "", None).await;
    assert_eq!((status, &body["title"]), (StatusCode::NOT_FOUND, &json!("Could not delete a resource")));
}

#[tokio::test]
async fn writes_are_refused_with_every_violation() {
    let c = Client::new();
    c.put("/meshes/default", MESH).await;
    /// A path, a body, and the causes (field, message) it gets.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case<'_>] = &[
        (
            "/meshes/default/meshgateways/edge",
            "type: MeshGateway\nmesh: default\nname: edge\nselectors: []\nconf:\n  listeners:\n  - port: 0\n    protocol: HTTP\n",
            &[
                ("selectors", "must have at least one element"),
                ("conf.listeners[0].port", "port must be in the range [1, 65535]"),
            ],
        ),
        ("/meshes/default/meshgateways/other", GATEWAY, &[("name", "name from the URL has to be the same as in body")]),
        ("/meshes/demo/meshgateways/edge", GATEWAY, &[("mesh", "mesh from the URL has to be the same as in body")]),
        (
            "/meshes/default/meshgatewayroutes/edge",
            GATEWAY,
            &[("type", "type from the URL has to be the same as in body")],
        ),
    ];
    for (path, body, expected) in cases {
        let (status, value) = c.put(path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {value}");
        assert_eq!(value["title"], "Could not process a resource");
        assert_eq!(
            (&value["detail"], &value["details"]),
            (&json!("Resource is not valid"), &json!("Resource is not valid"))
        );
        assert_eq!(value["invalid_parameters"][0]["reason"], value["causes"][0]["message"]);
        let causes: Vec<Cause> = serde_json::from_value(value["causes"].clone()).unwrap();
        let expected: Vec<Cause> =
            expected.iter().map(|(f, m)| Cause { field: (*f).to_owned(), message: (*m).to_owned() }).collect();
        assert_eq!(causes, expected, "{path}");
    }
    // Not YAML at all, and a mesh that does not exist.
    let (status, value) = c.put("/meshes/default/meshgateways/edge", "{{{").await;
    assert_eq!((status, &value["title"]), (StatusCode::BAD_REQUEST, &json!("Bad Request")));
    assert!(value["detail"].as_str().unwrap().starts_with("invalid MeshGateway object: "), "{value}");
    let (status, value) =
        c.put("/meshes/demo/meshgateways/edge", &GATEWAY.replace("mesh: default", "mesh: demo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(value["detail"], "mesh of name demo is not found");
    // A body over the 1 MiB limit is refused before it is read whole.
    let big = format!("{GATEWAY}# {}\n", "x".repeat(1 << 21));
    let (status, _) = c.put("/meshes/default/meshgateways/edge", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing was stored.
    assert_eq!(c.get("/meshes/default/meshgateways").await.1["total"], 0);
    assert_eq!(c.get("/meshes/default/no-such-things").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn lists_page_and_hide_secret_values() {
    let c = Client::new();
    c.put("/meshes/default", MESH).await;
    c.put("/meshes/demo", "type: Mesh\nname: demo\n").await;
    for i in 0..5 {
        let body = GATEWAY.replace("name: edge", &format!("name: gw-{i}"));
        assert_eq!(c.put(&format!("/meshes/default/meshgateways/gw-{i}"), &body).await.0, StatusCode::CREATED);
    }
    let body = GATEWAY.replace("mesh: default", "mesh: demo");
    c.put("/meshes/demo/meshgateways/edge", &body).await;
    let (_, page) = c.get("/meshes/default/meshgateways?size=2").await;
    assert_eq!(page["total"], 5);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["items"][0]["name"], "gw-0");
    assert_eq!(page["next"], "http://localhost/meshes/default/meshgateways?offset=2&size=2");
    let (_, last) = c.get("/meshes/default/meshgateways?size=2&offset=4").await;
    assert_eq!(last["items"][0]["name"], "gw-4");
    assert_eq!(last["next"], Value::Null);
    // Across meshes.
    assert_eq!(c.get("/meshgateways").await.1["total"], 6);
    assert_eq!(c.get("/meshes").await.1["total"], 2);
    let (status, too_big) = c.get("/meshes/default/meshgateways?size=2000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(too_big["causes"][0]["message"], "invalid page size of 2000. Maximum page size is 1000");
    // Secrets: the value is readable one by one, never listed.
    let secret = "type: Secret\nmesh: default\nname: key\ndata: c2VjcmV0\n";
    assert_eq!(c.put("/meshes/default/secrets/key", secret).await.0, StatusCode::CREATED);
    assert_eq!(c.get("/meshes/default/secrets/key").await.1["data"], "c2VjcmV0");
    let (_, list) = c.get("/meshes/default/secrets").await;
    assert_eq!(list["items"][0]["name"], "key");
    assert!(list["items"][0].get("data").is_none());
    assert!(!c.get("/secrets").await.1.to_string().contains("c2VjcmV0"));
}
