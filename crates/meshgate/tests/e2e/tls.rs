//! HTTPS, TLS and TCP listeners, connection limits and upgrades, through real sockets with certificates minted per
//! test.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    Accepts, Backend, Gateway, backend_yaml, eventually, free_port, gateway_yaml, mint, peer_cert, raw_request,
    secret_yaml, start_upgrade_echo, tls_connect, write_config,
};

fn http_route(name: &str, selector_extra: &str, service: &str) -> String {
    format!(
        "---\ntype: MeshGatewayRoute\nmesh: default\nname: {name}\nselectors:\n- match:\n    kuma.io/service: gw\n{selector_extra}conf:\n  http:\n    rules:\n    - matches: [{{path: {{match: PREFIX, value: /}}}}]\n      backends: [{{destination: {{kuma.io/service: {service}}}}}]\n"
    )
}

fn tcp_route(name: &str, selector_extra: &str, backends: &str) -> String {
    format!(
        "---\ntype: MeshGatewayRoute\nmesh: default\nname: {name}\nselectors:\n- match:\n    kuma.io/service: gw\n{selector_extra}conf:\n  tcp:\n    rules:\n    - backends: [{backends}]\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_chooses_certificates_by_sni_and_key_type() {
    let foo = Backend::start("foo").await;
    let wild = Backend::start("wild").await;
    let (foo_rsa, _, foo_rsa_der) = mint(&["foo.example.com"], &rcgen::PKCS_RSA_SHA256);
    let (foo_ec, _, foo_ec_der) = mint(&["foo.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let (wild_ec, _, wild_der) = mint(&["*.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let port = free_port();
    let mut config = gateway_yaml(&format!(
        "  - {{port: {port}, protocol: HTTPS, hostname: foo.example.com, tags: {{vhost: foo}}, tls: {{mode: TERMINATE, certificates: [{{secret: foo-rsa}}, {{secret: foo-ec}}]}}}}\n  - {{port: {port}, protocol: HTTPS, hostname: '*.example.com', tags: {{vhost: wild}}, tls: {{mode: TERMINATE, certificates: [{{secret: wild}}]}}}}\n"
    ));
    config.push_str(&secret_yaml("foo-rsa", &foo_rsa));
    config.push_str(&secret_yaml("foo-ec", &foo_ec));
    config.push_str(&secret_yaml("wild", &wild_ec));
    config.push_str(&backend_yaml("foo-1", "foo", foo.port(), ""));
    config.push_str(&backend_yaml("wild-1", "wild", wild.port(), ""));
    config.push_str(&http_route("foo", "    vhost: foo\n", "foo"));
    config.push_str(&http_route("wild", "    vhost: wild\n", "wild"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    let roots: &[&[u8]] = &[&foo_rsa_der, &foo_ec_der, &wild_der];

    // ECDSA when the client can verify it, RSA when it can only verify RSA.
    let mut s = tls_connect(port, "foo.example.com", roots, Accepts::Any, &[b"http/1.1"]).await.unwrap();
    assert_eq!(peer_cert(&s), foo_ec_der);
    let (status, headers, body) = raw_request(&mut s, "foo.example.com", "/x").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"backend\":\"foo\""), "{body}");
    assert_eq!(
        headers.get("strict-transport-security").map(String::as_str),
        Some("max-age=31536000; includeSubDomains")
    );
    let s = tls_connect(port, "foo.example.com", roots, Accepts::RsaOnly, &[]).await.unwrap();
    assert_eq!(peer_cert(&s), foo_rsa_der);
    let s = tls_connect(port, "foo.example.com", roots, Accepts::EcdsaOnly, &[]).await.unwrap();
    assert_eq!(peer_cert(&s), foo_ec_der);

    // A wildcard listener answers other names; no match and no `*` listener: the handshake fails.
    let mut s = tls_connect(port, "bar.example.com", roots, Accepts::Any, &[]).await.unwrap();
    assert_eq!(peer_cert(&s), wild_der);
    let (status, _, body) = raw_request(&mut s, "bar.example.com", "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"backend\":\"wild\""), "{body}");
    assert!(tls_connect(port, "other.org", roots, Accepts::Any, &[]).await.is_err(), "unknown SNI must fail");

    // SNI of one listener, Host of another: 404 (Host is matched within the SNI's virtual hosts,
    // so the wildcard listener's routes are not reachable through foo's certificate).
    let mut s = tls_connect(port, "foo.example.com", roots, Accepts::Any, &[]).await.unwrap();
    let (status, _, _) = raw_request(&mut s, "bar.example.com", "/").await;
    assert_eq!(status, 404);

    // HTTP/2 through ALPN.
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_der(&foo_ec_der).unwrap())
        .add_root_certificate(reqwest::Certificate::from_der(&foo_rsa_der).unwrap())
        .resolve("foo.example.com", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let r = c.get(format!("https://foo.example.com:{port}/h2")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["headers"]["x-forwarded-proto"], "https");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_live_under_keep_alive() {
    let app = Backend::start("app").await;
    let (first, _, first_der) = mint(&["secure.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let (second, _, second_der) = mint(&["secure.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut config = gateway_yaml(&format!(
        "  - {{port: {port}, protocol: HTTPS, hostname: secure.example.com, tls: {{mode: TERMINATE, certificates: [{{secret: cert}}]}}}}\n"
    ));
    config.push_str(&backend_yaml("app-1", "app", app.port(), ""));
    config.push_str(&http_route("r", "", "app"));
    write_config(d, "gateway.yaml", &config);
    write_config(d, "secret.yaml", &secret_yaml("cert", &first));
    let gw = Gateway::start(d, &[]).await;
    let roots: &[&[u8]] = &[&first_der, &second_der];
    let mut old = tls_connect(port, "secure.example.com", roots, Accepts::Any, &[]).await.unwrap();
    assert_eq!(peer_cert(&old), first_der);
    assert_eq!(raw_request(&mut old, "secure.example.com", "/1").await.0, 200);

    write_config(d, "secret.yaml", &secret_yaml("cert", &second));
    eventually(Duration::from_secs(2), "new handshakes get the new certificate", || async {
        tls_connect(port, "secure.example.com", roots, Accepts::Any, &[])
            .await
            .is_ok_and(|s| peer_cert(&s) == second_der)
    })
    .await;
    // The connection opened before the rotation keeps working.
    assert_eq!(raw_request(&mut old, "secure.example.com", "/2").await.0, 200);

    // A broken replacement is rejected; the current certificate stays.
    write_config(d, "secret.yaml", "type: Secret\nmesh: default\nname: cert\ndata: 'not base64!'\n");
    eventually(Duration::from_secs(2), "the bad secret is rejected", || async {
        gw.config().await["rejections"].to_string().contains("secret.yaml")
    })
    .await;
    let s = tls_connect(port, "secure.example.com", roots, Accepts::Any, &[]).await.unwrap();
    assert_eq!(peer_cert(&s), second_der);
    let config = gw.config().await.to_string();
    assert!(!config.contains("PRIVATE KEY-----\\nMI"), "no private key in /config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_terminate_and_tcp() {
    let (secure, backend_ca) = Backend::start_tls("secure", "pass.example.com").await;
    let plain = Backend::start("plain").await;
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let (gw_cert, _, gw_der) = mint(&["term.example.com"], &rcgen::PKCS_ECDSA_P256_SHA256);
    let tls_port = free_port();
    let tcp_port = free_port();
    let mut config = gateway_yaml(&format!(
        "  - {{port: {tls_port}, protocol: TLS, hostname: pass.example.com, tags: {{chain: pass}}, tls: {{mode: PASSTHROUGH}}}}\n  - {{port: {tls_port}, protocol: TLS, hostname: term.example.com, tags: {{chain: term}}, tls: {{mode: TERMINATE, certificates: [{{secret: term}}]}}}}\n  - {{port: {tcp_port}, protocol: TCP, tags: {{chain: tcp}}}}\n"
    ));
    config.push_str(&secret_yaml("term", &gw_cert));
    config.push_str(&backend_yaml("secure-1", "secure", secure.port(), ""));
    config.push_str(&backend_yaml("plain-1", "plain", plain.port(), ""));
    config.push_str(&backend_yaml("a-1", "a", a.port(), ""));
    config.push_str(&backend_yaml("b-1", "b", b.port(), ""));
    config.push_str(&tcp_route("pass", "    chain: pass\n", "{destination: {kuma.io/service: secure}}"));
    config.push_str(&tcp_route("term", "    chain: term\n", "{destination: {kuma.io/service: plain}}"));
    config.push_str(&tcp_route(
        "tcp",
        "    chain: tcp\n",
        "{weight: 1, destination: {kuma.io/service: a}}, {weight: 3, destination: {kuma.io/service: b}}",
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;

    // Passthrough: the backend's own certificate reaches the client.
    let (_, backend_pem) = x509_parser::pem::parse_x509_pem(backend_ca.as_bytes()).unwrap();
    let mut s = tls_connect(tls_port, "pass.example.com", &[&backend_pem.contents], Accepts::Any, &[]).await.unwrap();
    assert_eq!(peer_cert(&s), backend_pem.contents);
    let (status, _, body) = raw_request(&mut s, "pass.example.com", "/through").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"backend\":\"secure\""), "{body}");
    // Terminate: the gateway's certificate, then plain bytes to the backend.
    let mut s = tls_connect(tls_port, "term.example.com", &[&gw_der], Accepts::Any, &[]).await.unwrap();
    assert_eq!(peer_cert(&s), gw_der);
    let (status, _, body) = raw_request(&mut s, "term.example.com", "/ended-here").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"backend\":\"plain\""), "{body}");
    // Unknown SNI: the connection is closed.
    assert!(tls_connect(tls_port, "nope.example.com", &[&gw_der], Accepts::Any, &[]).await.is_err());

    // TCP: weighted 1:3, one backend per connection; the backend's close reaches the client.
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..200 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tcp_port)).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: tcp\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let backend = if out.contains("\"backend\":\"a\"") {
            "a"
        } else if out.contains("\"backend\":\"b\"") {
            "b"
        } else {
            "?"
        };
        *counts.entry(backend).or_insert(0) += 1;
    }
    let share_b = f64::from(counts.get("b").copied().unwrap_or(0)) / 200.0;
    assert!((0.6..=0.9).contains(&share_b), "1:3 weights gave {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_closes_the_excess() {
    let app = Backend::start("app").await;
    let port = free_port();
    let mut config =
        gateway_yaml(&format!("  - {{port: {port}, protocol: HTTP, resources: {{connectionLimit: 1}}}}\n"));
    config.push_str(&backend_yaml("app-1", "app", app.port(), ""));
    config.push_str(&http_route("r", "", "app"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;
    let mut first = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(raw_request(&mut first, "example.com", "/").await.0, 200);
    let mut second = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let _ = second.write_all(b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n").await;
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(2), second.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0, "the connection over the limit is closed without an answer");
    assert_eq!(raw_request(&mut first, "example.com", "/again").await.0, 200, "the first keeps working");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrade_and_extended_connect_relay_bytes() {
    let echo = start_upgrade_echo().await;
    let port = free_port();
    let mut config = gateway_yaml(&format!("  - {{port: {port}, protocol: HTTP}}\n"));
    config.push_str(&backend_yaml("ws-1", "ws", echo.port(), ""));
    config.push_str(&http_route("r", "", "ws"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let _gw = Gateway::start(dir.path(), &[]).await;

    // HTTP/1.1 Upgrade: 101, then bytes both ways.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(
        b"GET /chat HTTP/1.1\r\nHost: example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).await.unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    let frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"; // a masked "Hello" text frame
    s.write_all(frame).await.unwrap();
    let mut echoed = vec![0u8; frame.len()];
    s.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, frame);

    // HTTP/2 extended CONNECT (RFC 8441) becomes an HTTP/1.1 upgrade upstream.
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(hyper::Method::CONNECT)
        .uri("http://example.com/chat")
        .header("sec-websocket-version", "13")
        .body(http_body_util::Empty::new())
        .unwrap();
    req.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
    let mut resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let upgraded = hyper::upgrade::on(&mut resp).await.unwrap();
    let mut io = hyper_util::rt::TokioIo::new(upgraded);
    io.write_all(b"over h2").await.unwrap();
    let mut back = [0u8; 7];
    io.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"over h2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_certificates_serve_from_a_secret_and_a_file() {
    use base64::Engine as _;
    let app = Backend::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let generate = |key_type: &str, stem: &str| {
        let key = d.join(format!("{stem}.key"));
        let cert = d.join(format!("{stem}.crt"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshgate"))
            .args(["generate", "tls-certificate", "--type=server", "--hostname=gen.example.com"])
            .arg(format!("--key-type={key_type}"))
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--cert-file={}", cert.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let cert_pem = std::fs::read_to_string(cert).unwrap();
        let der = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).unwrap().1.contents;
        (std::fs::read_to_string(key).unwrap() + &cert_pem, der)
    };
    let (rsa_bundle, rsa_der) = generate("rsa", "rsa");
    let (ec_bundle, ec_der) = generate("ecdsa", "ec");
    // The ECDSA pair is given as a file with the certificate before the key; the RSA pair as a Secret.
    let (ec_key, ec_cert) = ec_bundle.split_at(ec_bundle.find("-----BEGIN CERTIFICATE").unwrap());
    std::fs::write(d.join("ec-bundle.pem"), format!("{ec_cert}{ec_key}")).unwrap();
    let port = free_port();
    let mut config = gateway_yaml(&format!(
        "  - {{port: {port}, protocol: HTTPS, hostname: gen.example.com, tls: {{mode: TERMINATE, certificates: [{{secret: gen}}, {{file: ec-bundle.pem}}]}}}}\n"
    ));
    config.push_str(&format!(
        "---\ntype: Secret\nmesh: default\nname: gen\ndata: {}\n",
        base64::engine::general_purpose::STANDARD.encode(&rsa_bundle)
    ));
    config.push_str(&backend_yaml("app-1", "app", app.port(), ""));
    config.push_str(&http_route("r", "", "app"));
    write_config(d, "config.yaml", &config);
    let _gw = Gateway::start(d, &[]).await;
    let roots: &[&[u8]] = &[&rsa_der, &ec_der];
    let mut s = tls_connect(port, "gen.example.com", roots, Accepts::RsaOnly, &[]).await.unwrap();
    assert_eq!(peer_cert(&s), rsa_der);
    assert_eq!(raw_request(&mut s, "gen.example.com", "/").await.0, 200);
    let mut s = tls_connect(port, "gen.example.com", roots, Accepts::EcdsaOnly, &[]).await.unwrap();
    assert_eq!(peer_cert(&s), ec_der);
    assert_eq!(raw_request(&mut s, "gen.example.com", "/").await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_relays_half_close_and_closes_without_a_route() {
    // A backend that reads until the client's FIN, then answers with what it read and closes.
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_port = backend.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = backend.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                if s.read_to_end(&mut got).await.is_ok() {
                    let _ = s.write_all(format!("read {} bytes: ", got.len()).as_bytes()).await;
                    let _ = s.write_all(&got).await;
                }
            });
        }
    });
    let port = free_port();
    let open_port = free_port();
    let mut config = gateway_yaml(&format!(
        "  - {{port: {port}, protocol: TCP, tags: {{chain: tcp}}}}\n  - {{port: {open_port}, protocol: TCP, tags: {{chain: none}}}}\n"
    ));
    config.push_str(&backend_yaml("raw-1", "raw", backend_port, ""));
    config.push_str(&tcp_route("tcp", "    chain: tcp\n", "{destination: {kuma.io/service: raw}}"));
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "config.yaml", &config);
    let _gw = Gateway::start(dir.path(), &[]).await;

    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let payload = vec![b'x'; 300_000];
    s.write_all(&payload).await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await.unwrap().unwrap();
    assert!(out.starts_with(b"read 300000 bytes: "), "{}", String::from_utf8_lossy(&out[..out.len().min(40)]));
    assert_eq!(out.len(), "read 300000 bytes: ".len() + payload.len());

    // A TCP listener without a route accepts and closes.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", open_port)).await.unwrap();
    let _ = s.write_all(b"hello").await;
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert_eq!(n, 0);
}
