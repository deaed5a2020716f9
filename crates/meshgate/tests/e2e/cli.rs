//! `validate` and `generate tls-certificate`, run as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;

fn meshgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_meshgate")).args(args).output().expect("run meshgate")
}

fn meshgate_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run meshgate");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `validate` on one file and returns its single output line (asserting exit code 1 and one line).
fn single_problem(dir: &Path, name: &str, content: &str) -> (String, String) {
    let file = write(dir, name, content);
    let out = meshgate(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{text}");
    (lines[0].to_owned(), file.display().to_string())
}

#[test]
fn validate_accepts_the_examples() {
    let out = meshgate(&["validate", repo().join("examples").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), "");
    assert!(stderr(&out).contains("ok: 24 resources valid"), "{}", stderr(&out));
}

const GATEWAY: &str = "\
type: MeshGateway
mesh: default
name: gw
selectors:
- match:
    kuma.io/service: gw
conf:
  listeners:
  - port: 0
    protocol: HTTP
";

#[test]
fn validate_reports_kuma_violations_with_exact_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (line, file) = single_problem(dir.path(), "port.yaml", GATEWAY);
    assert_eq!(
        line,
        format!("{file}:9:5: MeshGateway gw: conf.listeners[0].port: port must be in the range [1, 65535]")
    );

    // Several violations at once, in file order.
    let many = GATEWAY.replace("port: 0", "port: 99\n    hostname: Foo.com").replace("kuma.io/service: gw", "app: gw");
    let file = write(dir.path(), "many.yaml", &many);
    let out = meshgate(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let f = file.display();
    assert_eq!(
        stdout(&out),
        format!(
            "{f}:5:3: MeshGateway gw: selectors[0].match: mandatory tag \"kuma.io/service\" is missing\n\
             {f}:10:5: MeshGateway gw: conf.listeners[0].hostname: invalid hostname\n"
        )
    );

    // The Kubernetes form reports Kuma's paths too (no `spec.` for proto-based kinds).
    let k8s = "\
apiVersion: kuma.io/v1alpha1
kind: MeshGatewayRoute
mesh: default
metadata:
  name: route
spec:
  selectors:
  - match:
      kuma.io/service: gw
  conf:
    http:
      rules:
      - matches:
        - path: {match: PREFIX, value: api}
        backends:
        - destination: {kuma.io/service: backend}
";
    let (line, file) = single_problem(dir.path(), "k8s.yaml", k8s);
    assert_eq!(
        line,
        format!("{file}:14:11: MeshGatewayRoute route: conf.http.rules[0].matches[0].value: must be an absolute path")
    );
}

#[test]
fn validate_reports_each_class_of_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // Unknown field, with a did-you-mean.
    let typo = "type: MeshGateway\nname: gw\nselectors: [{match: {kuma.io/service: gw}}]\nconf:\n  listeners:\n  - port: 8443\n    protocol: HTTPS\n    tls:\n      mode: TERMINATE\n      certificate: [{secret: s}]\n";
    let (line, f) = single_problem(d, "typo.yaml", typo);
    assert_eq!(
        line,
        format!(
            "{f}:10:7: MeshGateway gw: conf.listeners[0].tls.certificate: unknown field `certificate`, did you mean `certificates`?"
        )
    );

    // Wrong type.
    let (line, f) = single_problem(d, "type.yaml", &GATEWAY.replace("port: 0", "port: [8080]"));
    assert_eq!(line, format!("{f}:9:11: MeshGateway gw: conf.listeners[0].port: expected an integer, found a list"));

    // Unknown enum value.
    let (line, f) = single_problem(d, "enum.yaml", &GATEWAY.replace("port: 0", "port: 80").replace("HTTP", "HTTPX"));
    assert_eq!(
        line,
        format!(
            "{f}:10:15: MeshGateway gw: conf.listeners[0].protocol: unknown value \"HTTPX\", did you mean \"HTTP\"? (allowed: NONE, TCP, TLS, HTTP, HTTPS)"
        )
    );

    // YAML syntax.
    let (line, f) = single_problem(d, "syntax.yaml", "type: MeshGateway\nname: [gw\n");
    assert_eq!(line, format!("{f}:2:7: invalid YAML: unclosed bracket '['"));

    // An unquoted wildcard reads as an alias.
    let (line, f) = single_problem(
        d,
        "alias.yaml",
        "type: MeshGateway\nname: gw\nconf: {listeners: [{hostname: *.example.com}]}\n",
    );
    assert!(line.starts_with(&format!("{f}:3:")) && line.contains("invalid YAML"), "{line}");

    // Duplicate key.
    let (line, f) = single_problem(d, "dup.yaml", "type: MeshGateway\nname: gw\nname: gw2\n");
    assert_eq!(line, format!("{f}:3:1: invalid YAML: duplicate mapping key: name"));

    // Unknown kind, and a document that is not a resource.
    let (line, f) = single_problem(d, "kind.yaml", "type: MeshGatway\nname: gw\n");
    assert_eq!(
        line,
        format!("{f}:1:7: MeshGatway gw: type: unknown resource kind \"MeshGatway\", did you mean \"MeshGateway\"?")
    );
    let (line, f) = single_problem(d, "notres.yaml", "hello: world\n");
    assert_eq!(
        line,
        format!(
            "{f}:1:1: document: not a resource: missing `type` (Universal form) or `apiVersion` and `kind` (Kubernetes form)"
        )
    );

    // Checks Kuma made only when generating configuration.
    let redirect = "type: MeshGatewayRoute\nname: r\nselectors: [{match: {kuma.io/service: gw}}]\nconf:\n  http:\n    rules:\n    - matches: [{path: {match: PREFIX, value: /}}]\n      filters:\n      - redirect: {scheme: https, status_code: 300}\n";
    let (line, f) = single_problem(d, "redirect.yaml", redirect);
    assert_eq!(
        line,
        format!(
            "{f}:9:35: MeshGatewayRoute r: conf.http.rules[0].filters[0].redirect.status_code: redirect status code 300 is not supported"
        )
    );
    let tls = GATEWAY.replace("port: 0", "port: 443").replace("protocol: HTTP", "protocol: TLS");
    let (line, f) = single_problem(d, "tls.yaml", &tls);
    assert_eq!(line, format!("{f}:9:5: MeshGateway gw: conf.listeners[0].tls: unsupported TLS mode \"NONE\""));
}

#[test]
fn validate_refuses_hostile_files_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let bin = d.join("binary.yaml");
    let mut bytes: Vec<u8> = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..=255u8).cycle().take(4096));
    std::fs::write(&bin, &bytes).unwrap();
    let out = meshgate(&["validate", bin.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), format!("{}:1:1: not UTF-8 text (is this a binary file?)\n", bin.display()));

    let big = d.join("big.yaml");
    let mut content = String::from("type: Secret\nname: s\ndata: ");
    content.push_str(&"A".repeat(50 * 1024 * 1024));
    std::fs::write(&big, content).unwrap();
    let out = meshgate(&["validate", big.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with(&format!("{}:1:1: file is ", big.display())) && text.contains("larger than the 8 MiB limit"),
        "{text}"
    );

    let deep = format!("type: MeshGateway\nname: gw\nconf: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    let (line, _) = single_problem(d, "deep.yaml", &deep);
    assert!(line.ends_with("invalid YAML: nested deeper than 32 levels"), "{line}");
    let mut block = String::from("type: MeshGateway\nname: gw\nconf:\n");
    for i in 1..200 {
        block.push_str(&" ".repeat(i * 2));
        block.push_str("k:\n");
    }
    let (line, _) = single_problem(d, "deep-block.yaml", &block);
    assert!(line.contains("invalid YAML"), "{line}");

    let laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    let (line, _) = single_problem(d, "laughs.yaml", laughs);
    assert!(line.contains("invalid YAML"), "{line}");

    let out = meshgate(&["validate", d.join("missing.yaml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("missing.yaml:1:1: cannot read:"), "{}", stdout(&out));
}

fn gateway_with_certificates(certs: &[&str]) -> String {
    let mut s = String::from(
        "type: MeshGateway\nmesh: default\nname: gw\nselectors: [{match: {kuma.io/service: gw}}]\nconf:\n  listeners:\n  - port: 8443\n    protocol: HTTPS\n    hostname: foo.example.com\n    tls:\n      mode: TERMINATE\n      certificates:\n",
    );
    for c in certs {
        s.push_str(&format!("      - secret: {c}\n"));
    }
    s
}

fn secret(name: &str, pem: &str) -> String {
    format!(
        "---\ntype: Secret\nmesh: default\nname: {name}\ndata: {}\n",
        base64::engine::general_purpose::STANDARD.encode(pem)
    )
}

fn rcgen_bundle(alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["foo.example.com".to_owned()]).unwrap().self_signed(&key).unwrap();
    (key.serialize_pem(), cert.pem())
}

#[test]
fn validate_checks_listener_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, cert) = rcgen_bundle(&rcgen::PKCS_ECDSA_P256_SHA256);
    let (other_key, _) = rcgen_bundle(&rcgen::PKCS_ECDSA_P256_SHA256);

    let missing = gateway_with_certificates(&["nope"]);
    let (line, f) = single_problem(d, "missing.yaml", &missing);
    assert_eq!(
        line,
        format!(
            "{f}:13:9: MeshGateway gw: conf.listeners[0].tls.certificates[0].secret: secret \"nope\" not found in mesh \"default\""
        )
    );
    // --no-references skips it.
    let out = meshgate(&["validate", "--no-references", &f]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    let mismatch = gateway_with_certificates(&["bad"]) + &secret("bad", &format!("{other_key}{cert}"));
    let (line, f) = single_problem(d, "mismatch.yaml", &mismatch);
    assert_eq!(
        line,
        format!(
            "{f}:13:9: MeshGateway gw: conf.listeners[0].tls.certificates[0]: private key does not match the server certificate"
        )
    );

    let no_key = gateway_with_certificates(&["nokey"]) + &secret("nokey", &cert);
    let (line, f) = single_problem(d, "nokey.yaml", &no_key);
    assert_eq!(line, format!("{f}:13:9: MeshGateway gw: conf.listeners[0].tls.certificates[0]: missing private key"));

    let twice = gateway_with_certificates(&["a", "b"])
        + &secret("a", &format!("{key}{cert}"))
        + &secret("b", &format!("{cert}{key}"));
    let (line, f) = single_problem(d, "twice.yaml", &twice);
    assert_eq!(
        line,
        format!(
            "{f}:14:9: MeshGateway gw: conf.listeners[0].tls.certificates[1]: duplicate TLS certificate \"cert.ecdsa:secret:b\""
        )
    );

    let good = gateway_with_certificates(&["good"]) + &secret("good", &format!("{cert}{key}"));
    let file = write(d, "good.yaml", &good);
    let out = meshgate(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn validate_reads_standard_input_and_notes_uninterpreted_kinds() {
    let out = meshgate_stdin(
        &["validate", "-"],
        b"type: MeshMetric\nname: t\nmesh: default\nspec: {targetRef: {kind: Mesh}}\n---\ntype: FaultInjection\nname: f\nmesh: default\nsources: [{match: {kuma.io/service: '*'}}]\ndestinations: [{match: {kuma.io/service: '*'}}]\nconf: {abort: {httpStatus: 500, percentage: 50}}\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("<stdin>:1:1: note: MeshMetric t: accepted, but meshgate does not apply MeshMetric resources yet"),
        "{err}"
    );
    assert!(
        err.contains("<stdin>:6:1: note: FaultInjection f: accepted; as in Kuma, legacy FaultInjection is not applied to builtin gateways (use MeshFaultInjection)"),
        "{err}"
    );
    let out = meshgate_stdin(
        &["validate", "-"],
        b"type: MeshTimeout\nname: t\nmesh: default\nspec: {targetRef: {kind: Mesh}}\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out)
            .contains("<stdin>:4:7: MeshTimeout t: spec: at least one of 'from', 'to' or 'rules' has to be defined"),
        "{}",
        stdout(&out)
    );
    let out = meshgate_stdin(&["validate", "-"], b"type: MeshGateway\nname: g\n");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "<stdin>:1:1: MeshGateway g: selectors: must have at least one element\n<stdin>:1:1: MeshGateway g: conf: cannot be empty\n"
    );
}

fn parse_cert(pem: &str) -> (Vec<String>, String, Vec<String>) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => sans.push((*d).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => sans.push(format!("ip:{ip:?}")),
                other => sans.push(format!("{other:?}")),
            }
        }
    }
    let alg = cert.public_key().algorithm.algorithm.to_id_string();
    let mut usages = Vec::new();
    if let Ok(Some(eku)) = cert.extended_key_usage() {
        if eku.value.server_auth {
            usages.push("server".to_owned());
        }
        if eku.value.client_auth {
            usages.push("client".to_owned());
        }
    }
    (sans, alg, usages)
}

#[test]
fn generate_tls_certificate_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    let cert = dir.path().join("cert.pem");
    let out = meshgate(&[
        "generate",
        "tls-certificate",
        "--type=server",
        "--hostname=foo.example.com,bar.example.com",
        "--hostname=10.0.0.1",
        &format!("--key-file={}", key.display()),
        &format!("--cert-file={}", cert.display()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("Private key saved in {}\nCertificate saved in {}\n", key.display(), cert.display())
    );
    let key_pem = std::fs::read_to_string(&key).unwrap();
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8 key expected");
    let (sans, alg, usages) = parse_cert(&cert_pem);
    assert_eq!(sans, vec!["foo.example.com", "bar.example.com", "ip:[10, 0, 0, 1]"]);
    assert_eq!(alg, "1.2.840.113549.1.1.1", "RSA by default");
    assert_eq!(usages, vec!["server"]);
    let bundle = meshgate_api::pem::parse_bundle(format!("{key_pem}{cert_pem}").as_bytes()).unwrap();
    assert_eq!(bundle.key_type, meshgate_api::pem::KeyType::Rsa);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o400);
        assert_eq!(std::fs::metadata(&cert).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Generating again over the read-only key works.
    let again = meshgate(&[
        "generate",
        "tls-certificate",
        "--type=client",
        "--hostname=dp-1",
        "--key-type=ecdsa",
        &format!("--key-file={}", key.display()),
        &format!("--cert-file={}", cert.display()),
    ]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let (sans, alg, usages) = parse_cert(&std::fs::read_to_string(&cert).unwrap());
    assert_eq!(sans, vec!["dp-1"]);
    assert_eq!(alg, "1.2.840.10045.2.1", "ECDSA");
    assert_eq!(usages, vec!["client"]);
}

#[test]
fn generated_certificate_on_stdout_works_as_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    for key_type in ["rsa", "ecdsa"] {
        let out = meshgate(&[
            "generate",
            "tls-certificate",
            "--type=server",
            "--hostname=foo.example.com",
            &format!("--key-type={key_type}"),
            "--key-file=-",
            "--cert-file=-",
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let pem = stdout(&out);
        let key_at = pem.find("-----BEGIN PRIVATE KEY-----").unwrap();
        let cert_at = pem.find("-----BEGIN CERTIFICATE-----").unwrap();
        assert!(key_at < cert_at, "key first, then certificate");
        let config = gateway_with_certificates(&["generated"]) + &secret("generated", &pem);
        let file = write(dir.path(), &format!("{key_type}.yaml"), &config);
        let check = meshgate(&["validate", file.to_str().unwrap()]);
        assert_eq!(check.status.code(), Some(0), "{key_type}: {}", stdout(&check));
    }
}

#[test]
fn generate_tls_certificate_errors_match_kumactl() {
    let cases: &[(&[&str], &str)] = &[
        (&["--type=server"], "Error: at least one hostname must be given\n"),
        (&["--type=server", "--hostname="], "Error: at least one hostname must be given\n"),
        (&["--type=x", "--hostname=a"], "Error: invalid certificate type \"x\"\n"),
        (&["--hostname=a"], "Error: invalid certificate type \"\"\n"),
        (&["--type=server", "--hostname=a", "--key-type=dsa"], "Error: invalid key type \"dsa\"\n"),
    ];
    for (args, want) in cases {
        let mut full = vec!["generate", "tls-certificate", "--key-file=-", "--cert-file=-"];
        full.extend_from_slice(args);
        let out = meshgate(&full);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&out), *want, "{args:?}");
        assert_eq!(stdout(&out), "", "{args:?}");
    }
}

#[test]
fn inspect_shows_listeners_routes_and_the_policies_in_force() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/universal");
    let out = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["inspect", "meshgateway", "edge-gateway", "--config", examples.to_str().unwrap()])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("MeshGateway edge-gateway (mesh default): Dataplane edge-gateway-1"), "{text}");
    assert!(text.contains("listener edge-gateway:HTTP:8080 (HTTP)"), "{text}");
    assert!(text.contains("hostname foo.example.com  tags {"), "{text}");
    // The example's MeshTimeout on every listener, its MeshRateLimit only on the port of the tagged listeners.
    assert!(text.contains("timeout 10000 ms"), "{text}");
    assert!(text.contains("MeshTimeout edge-timeouts"), "{text}");
    assert!(text.contains("rate limit 100/1000 ms → 429"), "{text}");
    assert!(text.contains("MeshRetry mesh-retry-all-default"), "{text}");
    let json = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["inspect", "meshgateway", "edge-gateway", "--config", examples.to_str().unwrap(), "-o", "json"])
        .output()
        .unwrap();
    let plans: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(plans[0]["gateway"]["name"], "edge-gateway");
    assert!(!stdout(&json).contains("PRIVATE KEY"), "secrets stay redacted");
    let missing = Command::new(env!("CARGO_BIN_EXE_meshgate"))
        .args(["inspect", "meshgateway", "nope", "--config", examples.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("no Dataplane is bound to MeshGateway \"nope\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_object_per_line() {
    let backend = crate::support::Backend::start("a").await;
    let port = crate::support::free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::gateway_yaml(&format!("  - port: {port}\n    protocol: HTTP\n"));
    config.push_str(&crate::support::backend_yaml("a-1", "a", backend.port(), ""));
    std::fs::write(dir.path().join("config.yaml"), config).unwrap();
    let gw = crate::support::Gateway::start(dir.path(), &["--log-format", "json"]).await;
    // A rejected change, so that a warning is logged too.
    crate::support::write_config(dir.path(), "broken.yaml", "type: MeshGateway\nname: [\n");
    crate::support::eventually(std::time::Duration::from_secs(5), "the rejection is logged", || async {
        gw.log().contains("broken.yaml")
    })
    .await;
    gw.terminate();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let log = gw.log();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{log}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{line}");
        assert!(v["fields"]["message"].is_string(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("\"WARN\"") && l.contains("broken.yaml")), "{log}");
    assert!(lines.iter().any(|l| l.contains("listening")), "{log}");
}

/// Every command's `--help` ends with an example of its use.
#[test]
fn every_command_has_an_example_in_its_help() {
    fn walk(path: &mut Vec<String>, missing: &mut Vec<String>, seen: &mut usize) {
        *seen += 1;
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = stdout(&meshgate(&args));
        if !path.is_empty() && !help.contains("Example: meshgate") {
            missing.push(path.join(" "));
        }
        // The "Commands:" section lists the subcommands, one per line, two spaces in.
        let Some(section) = help.split("Commands:\n").nth(1) else { return };
        let subs: Vec<String> = section
            .lines()
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .filter(|c| c != "help")
            .collect();
        for sub in subs {
            path.push(sub);
            walk(path, missing, seen);
            path.pop();
        }
    }
    let (mut missing, mut seen) = (Vec::new(), 0);
    walk(&mut Vec::new(), &mut missing, &mut seen);
    assert!(seen >= 20, "only {seen} commands found: the help format changed?");
    assert!(missing.is_empty(), "commands without an example in --help: {missing:?}");
}
