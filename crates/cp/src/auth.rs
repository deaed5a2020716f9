//! Who may do what on the control plane: user tokens (EdDSA-signed JWTs) with roles, as Kuma's user tokens.
//!
//! - **Signing keys** live in the store (type `meshgate.SigningKey`, never served by the REST API) with a serial: a
//!   token names its key in `kid`, so a new key can be added and the old one deleted later, both valid meanwhile.
//! - **Tokens** carry `name`, `groups`, `iat`, `nbf`, `exp` and `jti`; only `EdDSA` is accepted (no `none`, no HMAC),
//!   and a revoked `jti` (type `meshgate.RevokedToken`) is refused.
//! - **Roles** come from groups: `mesh-system:admin` (everything), `mesh-system:editor` (all but Secrets and token
//!   issuance), `mesh-system:viewer` (reads, no Secrets). Without a token, a request from a loopback address is admin
//!   when `localhost_is_admin` is on (the first-run default, to switch off in production) and refused otherwise.
//! - Failures answer 401 (who are you?) or 403 (not allowed), with the reason; the log line never holds the token.
//!   A source that fails too often is answered 429 for a while.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use meshgate_store::{AnyStore, Expect, Key, Range, ResourceStore, StoreError};
use ring::signature::KeyPair as _;
use serde::{Deserialize, Serialize};

/// The store type of signing keys.
pub const SIGNING_KEY: &str = "meshgate.SigningKey";
/// The store type of revoked token ids.
pub const REVOKED: &str = "meshgate.RevokedToken";
/// Failed attempts a source may make per [`FAILURE_WINDOW`] before it is turned away.
const MAX_FAILURES: usize = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// A role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A gateway with a dataplane token: its own Dataplane and plan, nothing else.
    Gateway,
    /// Reads, no Secrets.
    Viewer,
    /// All but Secrets and token issuance.
    Editor,
    /// Everything.
    Admin,
}

impl Role {
    /// The strongest role any of `groups` gives.
    fn of(groups: &[String]) -> Option<Role> {
        groups
            .iter()
            .filter_map(|g| match g.strip_prefix("mesh-system:").unwrap_or(g) {
                "admin" => Some(Role::Admin),
                "editor" => Some(Role::Editor),
                "viewer" => Some(Role::Viewer),
                _ => None,
            })
            .max()
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's name, or `localhost`.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// For a dataplane token: the Dataplane it may be.
    pub dataplane: Option<DataplaneClaim>,
}

/// What a dataplane token allows: one Dataplane, whose gateway tags must include these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneClaim {
    /// The mesh.
    pub mesh: String,
    /// The Dataplane's name.
    pub name: String,
    /// Tags the Dataplane must carry.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A token's claims.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user (for a dataplane token, `mesh/name`).
    pub name: String,
    /// Its groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// For a dataplane token: the Dataplane it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataplane: Option<DataplaneClaim>,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Expires at.
    pub exp: u64,
    /// The token's id (for revocation).
    pub jti: String,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no usable identity.
    Unauthenticated(String),
    /// 403: the identity may not do this.
    Forbidden(String),
    /// 429: too many failures from this source.
    TooManyFailures,
}

struct Signer {
    serial: u64,
    encoding: EncodingKey,
}

/// Token issuance and verification over the store; clones share it.
#[derive(Clone)]
pub struct Auth {
    store: AnyStore,
    /// Whether a request from a loopback address without a token is admin.
    pub localhost_is_admin: bool,
    keys: Arc<RwLock<BTreeMap<u64, DecodingKey>>>,
    signer: Arc<RwLock<Option<Signer>>>,
    failures: Arc<Mutex<HashMap<IpAddr, Vec<Instant>>>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("localhost_is_admin", &self.localhost_is_admin).finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredKey {
    serial: u64,
    /// The Ed25519 key pair, PKCS#8, base64.
    pkcs8: String,
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Auth {
    /// Loads the signing keys, creating the first one when there is none.
    pub async fn start(store: AnyStore, localhost_is_admin: bool) -> Result<Auth, StoreError> {
        let auth =
            Auth { store, localhost_is_admin, keys: Arc::default(), signer: Arc::default(), failures: Arc::default() };
        if auth.reload_keys().await? == 0 {
            match auth.rotate().await {
                Ok(_) => {}
                // Another replica starting on the same store created the first key at the same moment.
                Err(StoreError::AlreadyExists(_)) => {
                    auth.reload_keys().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(auth)
    }

    /// Re-reads the signing keys; the newest signs. Returns how many there are.
    async fn reload_keys(&self) -> Result<usize, StoreError> {
        let page = self.store.list(SIGNING_KEY, Some(""), Range { offset: 0, size: 0 }).await?;
        let mut keys = BTreeMap::new();
        let mut newest: Option<Signer> = None;
        for stored in page.items {
            let Ok(k) = serde_json::from_value::<StoredKey>(stored.spec) else { continue };
            let Ok(pkcs8) = base64::engine::general_purpose::STANDARD.decode(&k.pkcs8) else { continue };
            let Ok(pair) = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8) else { continue };
            keys.insert(k.serial, DecodingKey::from_ed_der(pair.public_key().as_ref()));
            if newest.as_ref().is_none_or(|n| n.serial < k.serial) {
                newest = Some(Signer { serial: k.serial, encoding: EncodingKey::from_ed_der(&pkcs8) });
            }
        }
        let count = keys.len();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys;
        *self.signer.write().unwrap_or_else(PoisonError::into_inner) = newest;
        Ok(count)
    }

    /// Adds a signing key with the next serial; new tokens are signed with it, older ones stay valid.
    pub async fn rotate(&self) -> Result<u64, StoreError> {
        let next = self.keys.read().unwrap_or_else(PoisonError::into_inner).keys().max().map_or(1, |s| s + 1);
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| StoreError::Backend(sqlx::Error::Protocol("no randomness for a signing key".into())))?;
        let spec = serde_json::to_value(StoredKey {
            serial: next,
            pkcs8: base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref()),
        })
        .unwrap_or_default();
        self.store.put(&Key::new(SIGNING_KEY, "", next.to_string()), &spec, Expect::Absent).await?;
        self.reload_keys().await?;
        tracing::info!(serial = next, "user-token signing key added");
        Ok(next)
    }

    /// Deletes the signing key `serial`: the tokens it signed stop working.
    pub async fn delete_key(&self, serial: u64) -> Result<(), StoreError> {
        self.store.delete(&Key::new(SIGNING_KEY, "", serial.to_string()), None).await?;
        self.reload_keys().await?;
        Ok(())
    }

    /// Issues a user token.
    pub fn issue(&self, name: &str, groups: &[String], valid_for: Duration) -> Result<String, String> {
        self.sign(name, groups, None, valid_for)
    }

    /// Issues a dataplane token: the bearer may register and run that Dataplane only.
    pub fn issue_dataplane(&self, claim: DataplaneClaim, valid_for: Duration) -> Result<String, String> {
        let name = format!("{}/{}", claim.mesh, claim.name);
        self.sign(&name, &[], Some(claim), valid_for)
    }

    fn sign(
        &self,
        name: &str,
        groups: &[String],
        dataplane: Option<DataplaneClaim>,
        valid_for: Duration,
    ) -> Result<String, String> {
        let signer = self.signer.read().unwrap_or_else(PoisonError::into_inner);
        let Some(signer) = signer.as_ref() else { return Err("no signing key".to_owned()) };
        let iat = now();
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut jti).map_err(|_| "no randomness")?;
        let claims = Claims {
            name: name.to_owned(),
            groups: groups.to_vec(),
            dataplane,
            iat,
            nbf: iat,
            exp: iat.saturating_add(valid_for.as_secs()),
            jti: jti.iter().map(|b| format!("{b:02x}")).collect(),
        };
        let header = Header { kid: Some(signer.serial.to_string()), ..Header::new(Algorithm::EdDSA) };
        jsonwebtoken::encode(&header, &claims, &signer.encoding).map_err(|e| e.to_string())
    }

    /// Revokes a token by its id.
    pub async fn revoke(&self, jti: &str) -> Result<(), StoreError> {
        let spec = serde_json::json!({ "jti": jti, "revokedAt": now() });
        self.store.put(&Key::new(REVOKED, "", jti), &spec, Expect::Any).await.map(|_| ())
    }

    /// The identity a token proves.
    async fn verify(&self, token: &str) -> Result<Identity, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed token: {e}"))?;
        if header.alg != Algorithm::EdDSA {
            return Err(format!("token algorithm {:?} is not accepted", header.alg));
        }
        let serial: u64 = header.kid.as_deref().and_then(|k| k.parse().ok()).ok_or("token without a key id")?;
        let mut key = self.keys.read().unwrap_or_else(PoisonError::into_inner).get(&serial).cloned();
        if key.is_none() {
            // Another replica may have added it.
            let _ = self.reload_keys().await;
            key = self.keys.read().unwrap_or_else(PoisonError::into_inner).get(&serial).cloned();
        }
        let key = key.ok_or_else(|| format!("token signed by an unknown key {serial}"))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "jti"]);
        let claims =
            jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| format!("invalid token: {e}"))?.claims;
        // A key deleted through another replica stops working here too.
        match self.store.get(&Key::new(SIGNING_KEY, "", serial.to_string())).await {
            Ok(Some(_)) => {}
            Ok(None) => return Err(format!("token signed by a deleted key {serial}")),
            Err(e) => return Err(format!("signing keys unavailable: {e}")),
        }
        match self.store.get(&Key::new(REVOKED, "", claims.jti.clone())).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err("token revoked".to_owned()),
            Err(e) => return Err(format!("revocation list unavailable: {e}")),
        }
        if let Some(dataplane) = claims.dataplane {
            return Ok(Identity { name: claims.name, role: Role::Gateway, dataplane: Some(dataplane) });
        }
        let role = Role::of(&claims.groups).ok_or("the token's groups give no role")?;
        Ok(Identity { name: claims.name, role, dataplane: None })
    }

    /// Who sends a request: its bearer token, or the loopback rule. Failures are counted per source.
    pub async fn identify(&self, peer: SocketAddr, authorization: Option<&str>) -> Result<Identity, Refusal> {
        if self.too_many_failures(peer.ip()) {
            return Err(Refusal::TooManyFailures);
        }
        let result = match authorization {
            Some(value) => match value.strip_prefix("Bearer ").map(str::trim) {
                Some(token) if !token.is_empty() => self.verify(token).await,
                _ => Err("the Authorization header must be `Bearer <token>`".to_owned()),
            },
            None if self.localhost_is_admin && peer.ip().is_loopback() => {
                return Ok(Identity { name: "localhost".to_owned(), role: Role::Admin, dataplane: None });
            }
            None => Err("authentication required: send a user token as `Authorization: Bearer <token>`".to_owned()),
        };
        result.map_err(|why| {
            self.failed(peer.ip());
            tracing::warn!(source = %peer.ip(), reason = %why, "authentication failed");
            Refusal::Unauthenticated(why)
        })
    }

    fn too_many_failures(&self, ip: IpAddr) -> bool {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(times) = failures.get_mut(&ip) else { return false };
        times.retain(|t| t.elapsed() < FAILURE_WINDOW);
        times.len() >= MAX_FAILURES
    }

    fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        // Bounded: sources are forgotten when their window passes.
        failures.retain(|_, times| times.last().is_some_and(|t| t.elapsed() < FAILURE_WINDOW));
        failures.entry(ip).or_default().push(Instant::now());
    }
}

/// Whether `who` may send `method` to `path` (`secret`: the request reads or writes Secrets).
pub fn allowed(who: &Identity, method: &axum::http::Method, secret: bool, issuance: bool) -> Result<(), Refusal> {
    let write = !matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    let ok = match who.role {
        Role::Gateway => false,
        Role::Admin => true,
        Role::Editor => !secret && !issuance,
        Role::Viewer => !secret && !issuance && !write,
    };
    if ok {
        Ok(())
    } else {
        let what = if issuance {
            "issue or revoke tokens"
        } else if secret {
            "access Secrets"
        } else {
            "change resources"
        };
        let role = match who.role {
            Role::Gateway => "gateway",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        };
        Err(Refusal::Forbidden(format!("user {:?} (role {role}) may not {what}", who.name)))
    }
}

/// The middleware in front of every route but `GET /`: identifies the caller and checks its role.
pub(crate) async fn guard(
    axum::extract::State(auth): axum::extract::State<Auth>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let path = req.uri().path().to_owned();
    // `GET /` (product and version) and the dashboard's page (static, no data: it asks for a token itself) are open.
    if path == "/" || (req.method() == axum::http::Method::GET && (path == "/ui" || path == "/ui/")) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0);
    let authorization = req.headers().get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let who = match auth.identify(peer, authorization).await {
        Ok(who) => who,
        Err(refusal) => return refused(&refusal).into_response(),
    };
    if let Some(claim) = who.dataplane.clone() {
        return match gateway_request(&auth, &claim, req).await {
            Ok(req) => next.run(req).await,
            Err(refusal) => {
                tracing::warn!(dataplane = %who.name, %path, "gateway request refused");
                refused(&refusal).into_response()
            }
        };
    }
    // Plans carry the listeners' private keys: reading them is reading Secrets.
    let secret = path.split('/').any(|s| s == "secrets") || path.starts_with("/meshgate/v1/plans/");
    let issuance = path.starts_with("/tokens");
    if let Err(refusal) = allowed(&who, req.method(), secret, issuance) {
        tracing::warn!(user = %who.name, method = %req.method(), %path, "request refused");
        return refused(&refusal).into_response();
    }
    req.extensions_mut().insert(who);
    next.run(req).await
}

/// What a gateway with a dataplane token may do: register its own Dataplane (carrying the token's tags), and
/// read and acknowledge its own plan. Nothing else — in particular no other Dataplane's plan or Secrets.
async fn gateway_request(
    auth: &Auth,
    claim: &DataplaneClaim,
    req: axum::extract::Request,
) -> Result<axum::extract::Request, Refusal> {
    let path = req.uri().path().to_owned();
    let own_dataplane = format!("/meshes/{}/dataplanes/{}", claim.mesh, claim.name);
    let own_plan = format!("/meshgate/v1/plans/{}/{}", claim.mesh, claim.name);
    let refuse = |why: &str| Refusal::Forbidden(format!("dataplane token for {}/{}: {why}", claim.mesh, claim.name));
    let method = req.method().clone();
    if path == own_plan && method == axum::http::Method::GET
        || path == format!("{own_plan}/ack") && method == axum::http::Method::POST
    {
        // The Dataplane as stored must carry the token's tags.
        let key = Key::new("Dataplane", claim.mesh.clone(), claim.name.clone());
        let stored = auth.store.get(&key).await.map_err(|_| refuse("the store is unavailable"))?;
        let stored = stored.ok_or_else(|| refuse("no such Dataplane"))?;
        return if tags_match(claim, &stored.spec) { Ok(req) } else { Err(refuse("the Dataplane's tags differ")) };
    }
    if path == own_dataplane && method == axum::http::Method::PUT {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.map_err(|_| refuse("unreadable body"))?;
        let outcome = meshgate_api::load::decode_text(
            std::path::Path::new("<request body>"),
            &String::from_utf8_lossy(&bytes),
            meshgate_api::UnknownFields::Deny,
        );
        let matches = match outcome.loaded.as_slice() {
            [one] => {
                let r = one.resource();
                r.kind() == meshgate_api::Kind::Dataplane
                    && r.meta.mesh == claim.mesh
                    && r.meta.name == claim.name
                    && tags_match(claim, &r.to_universal_json())
            }
            // Let the API answer what is wrong with it.
            _ => true,
        };
        if !matches {
            return Err(refuse("the Dataplane does not match the token (mesh, name or tags)"));
        }
        return Ok(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes)));
    }
    Err(refuse("only its own Dataplane and plan"))
}

/// Whether a Dataplane (Universal JSON) carries every tag the token names, on its gateway.
fn tags_match(claim: &DataplaneClaim, dataplane: &serde_json::Value) -> bool {
    let tags = &dataplane["networking"]["gateway"]["tags"];
    claim.tags.iter().all(|(k, v)| tags.get(k).and_then(serde_json::Value::as_str) == Some(v.as_str()))
}

/// The answer to a refused request, in Kuma's error format.
fn refused(refusal: &Refusal) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    use axum::http::StatusCode;
    let (status, title, detail) = match refusal {
        Refusal::Unauthenticated(why) => (StatusCode::UNAUTHORIZED, "Unauthenticated", why.clone()),
        Refusal::Forbidden(why) => (StatusCode::FORBIDDEN, "Access Denied", why.clone()),
        Refusal::TooManyFailures => (
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "too many failed authentications from this address; try again later".to_owned(),
        ),
    };
    (
        status,
        axum::Json(serde_json::json!({
            "type": "/std-errors", "status": status.as_u16(), "title": title, "detail": detail, "details": detail,
        })),
    )
}

/// A duration as Go writes it (`24h`, `30m`, `90s`, `1h30m`) or in days (`7d`).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        total = total.checked_add(n.checked_mul(match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        })?)?;
    }
    (number.is_empty() && total > 0).then(|| Duration::from_secs(total))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenRequest {
    name: String,
    #[serde(default)]
    groups: Vec<String>,
    valid_for: String,
}

/// A JSON body, whatever its Content-Type says (curl users forget it).
fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, crate::rest::RestError> {
    serde_json::from_slice(body).map_err(|e| crate::rest::bad_request("", &format!("invalid JSON body: {e}")))
}

pub(crate) async fn issue_user_token(
    axum::extract::State(auth): axum::extract::State<Auth>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let req: TokenRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(valid_for) = parse_duration(&req.valid_for) else {
        return crate::rest::bad_request("validFor", "must be a duration such as 24h, 30m or 7d").into_response();
    };
    if req.name.is_empty() {
        return crate::rest::bad_request("name", "cannot be empty").into_response();
    }
    match auth.issue(&req.name, &req.groups, valid_for) {
        Ok(token) => {
            tracing::info!(user = %req.name, groups = ?req.groups, "user token issued");
            token.into_response()
        }
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RevokeRequest {
    jti: String,
}

pub(crate) async fn revoke_token(
    axum::extract::State(auth): axum::extract::State<Auth>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let req: RevokeRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match auth.revoke(&req.jti).await {
        Ok(()) => {
            tracing::info!(jti = %req.jti, "token revoked");
            axum::Json(serde_json::json!({})).into_response()
        }
        Err(e) => crate::rest::RestError::from(e).into_response(),
    }
}

pub(crate) async fn rotate_key(axum::extract::State(auth): axum::extract::State<Auth>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match auth.rotate().await {
        Ok(serial) => axum::Json(serde_json::json!({ "serial": serial })).into_response(),
        Err(e) => crate::rest::RestError::from(e).into_response(),
    }
}

pub(crate) async fn delete_key(
    axum::extract::State(auth): axum::extract::State<Auth>,
    axum::extract::Path(serial): axum::extract::Path<u64>,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match auth.delete_key(serial).await {
        Ok(()) => axum::Json(serde_json::json!({})).into_response(),
        Err(e) => crate::rest::RestError::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_roles() {
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        for bad in ["", "0s", "h", "10", "5y", "-1h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let groups = |g: &[&str]| g.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(Role::of(&groups(&["mesh-system:viewer", "mesh-system:editor"])), Some(Role::Editor));
        assert_eq!(Role::of(&groups(&["admin"])), Some(Role::Admin));
        assert_eq!(Role::of(&groups(&["developers"])), None);
        let who = |role| Identity { name: "u".to_owned(), role, dataplane: None };
        let get = axum::http::Method::GET;
        let put = axum::http::Method::PUT;
        assert!(allowed(&who(Role::Viewer), &get, false, false).is_ok());
        assert!(allowed(&who(Role::Viewer), &put, false, false).is_err());
        assert!(allowed(&who(Role::Viewer), &get, true, false).is_err());
        assert!(allowed(&who(Role::Editor), &put, false, false).is_ok());
        assert!(allowed(&who(Role::Editor), &get, true, false).is_err());
        assert!(allowed(&who(Role::Editor), &put, false, true).is_err());
        assert!(allowed(&who(Role::Admin), &put, true, true).is_ok());
    }

    #[tokio::test]
    async fn tokens_verify_until_expired_revoked_or_their_key_goes() {
        let store = AnyStore::Memory(meshgate_store::MemoryStore::new());
        let auth = Auth::start(store, false).await.unwrap();
        let peer: SocketAddr = "10.0.0.1:1234".parse().unwrap();
        let token = auth.issue("alice", &["mesh-system:editor".to_owned()], Duration::from_secs(60)).unwrap();
        let bearer = format!("Bearer {token}");
        assert_eq!(auth.identify(peer, Some(&bearer)).await.unwrap().role, Role::Editor);
        assert!(matches!(auth.identify(peer, None).await, Err(Refusal::Unauthenticated(_))));
        // Loopback without a token is admin only when asked.
        let local: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(auth.identify(local, None).await.is_err());
        let open = Auth { localhost_is_admin: true, ..auth.clone() };
        assert_eq!(open.identify(local, None).await.unwrap().role, Role::Admin);
        // Rotation keeps old tokens; deleting the key ends them.
        assert_eq!(auth.rotate().await.unwrap(), 2);
        assert!(auth.identify(peer, Some(&bearer)).await.is_ok());
        auth.delete_key(1).await.unwrap();
        assert!(auth.identify(peer, Some(&bearer)).await.is_err());
        let fresh = format!(
            "Bearer {}",
            auth.issue("bob", &["mesh-system:viewer".to_owned()], Duration::from_secs(60)).unwrap()
        );
        assert!(auth.identify(peer, Some(&fresh)).await.is_ok());
        let jti = {
            use base64::Engine as _;
            let payload = fresh.split('.').nth(1).unwrap();
            let claims: Claims =
                serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap())
                    .unwrap();
            claims.jti
        };
        auth.revoke(&jti).await.unwrap();
        assert!(auth.identify(peer, Some(&fresh)).await.is_err());
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct DataplaneTokenRequest {
    mesh: String,
    name: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    #[serde(rename = "validFor")]
    valid_for: String,
}

pub(crate) async fn issue_dataplane_token(
    axum::extract::State(auth): axum::extract::State<Auth>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let req: DataplaneTokenRequest = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(valid_for) = parse_duration(&req.valid_for) else {
        return crate::rest::bad_request("validFor", "must be a duration such as 24h, 30m or 7d").into_response();
    };
    if req.mesh.is_empty() || req.name.is_empty() {
        return crate::rest::bad_request("name", "mesh and name cannot be empty").into_response();
    }
    let claim = DataplaneClaim { mesh: req.mesh, name: req.name, tags: req.tags };
    tracing::info!(dataplane = %format!("{}/{}", claim.mesh, claim.name), "dataplane token issued");
    match auth.issue_dataplane(claim, valid_for) {
        Ok(token) => token.into_response(),
        Err(e) => (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}
