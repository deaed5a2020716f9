//! Protocol switches relayed to the upstream: an HTTP/1.1 `Upgrade` (WebSocket and others), and an HTTP/2
//! extended CONNECT (RFC 8441) turned into an HTTP/1.1 upgrade towards the upstream. Once the upstream answers
//! 101, bytes are relayed both ways until either side closes.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::handler::{ResponseBody, empty, strip_hop_by_hop, text};
use crate::upstream::{BoxError, EndpointPool};

/// What the client asked to switch to.
#[derive(Debug)]
pub struct Upgrade {
    /// The protocol (`websocket`, …).
    pub protocol: String,
    /// Whether it came as an HTTP/2 extended CONNECT (answered 200 instead of 101).
    pub extended_connect: bool,
    /// The request method (CONNECT for extended CONNECT).
    pub method: Method,
    /// Path and query for the upstream.
    pub path_and_query: String,
    /// Request headers for the upstream (hop-by-hop already removed).
    pub headers: HeaderMap,
    /// The Host for the upstream.
    pub host: Option<HeaderValue>,
}

/// Sends the upgrade request on a fresh HTTP/1.1 connection and, on 101, relays bytes both ways.
pub async fn relay(
    upgrade: Upgrade,
    endpoint: &Arc<EndpointPool>,
    downstream: OnUpgrade,
    timeout: Duration,
) -> Response<ResponseBody> {
    let Ok(stream) = endpoint.connect_stream().await else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "upstream connect error\n");
    };
    let Ok((mut sender, conn)) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await else {
        return text(StatusCode::BAD_GATEWAY, "upstream protocol error\n");
    };
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let method = if upgrade.extended_connect { Method::GET } else { upgrade.method };
    let Ok(mut req) =
        Request::builder().method(method).uri(upgrade.path_and_query.as_str()).body(Empty::<Bytes>::new())
    else {
        return empty(StatusCode::BAD_REQUEST);
    };
    let mut headers = upgrade.headers;
    if let Some(host) = upgrade.host.or_else(|| HeaderValue::from_str(endpoint.authority()).ok()) {
        headers.insert(header::HOST, host);
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    match HeaderValue::from_str(&upgrade.protocol) {
        Ok(v) => {
            headers.insert(header::UPGRADE, v);
        }
        Err(_) => return empty(StatusCode::BAD_REQUEST),
    }
    if upgrade.extended_connect && upgrade.protocol.eq_ignore_ascii_case("websocket") {
        // RFC 8441 has no key/accept handshake; HTTP/1.1 WebSocket does.
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        if let Ok(v) = HeaderValue::from_str(&key) {
            headers.insert(header::SEC_WEBSOCKET_KEY, v);
        }
        headers.entry(header::SEC_WEBSOCKET_VERSION).or_insert(HeaderValue::from_static("13"));
    }
    *req.headers_mut() = headers;
    let mut response = match tokio::time::timeout(timeout, sender.send_request(req)).await {
        Err(_) => return text(StatusCode::GATEWAY_TIMEOUT, "upstream request timeout\n"),
        Ok(Err(_)) => return text(StatusCode::BAD_GATEWAY, "upstream protocol error\n"),
        Ok(Ok(r)) => r,
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        return Response::from_parts(parts, body.map_err(|e| -> BoxError { Box::new(e) }).boxed());
    }
    let upstream = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        let (Ok(down), Ok(up)) = (downstream.await, upstream.await) else { return };
        let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(down), &mut TokioIo::new(up)).await;
    });
    let mut reply = empty(if upgrade.extended_connect { StatusCode::OK } else { StatusCode::SWITCHING_PROTOCOLS });
    let upstream_headers = response.headers();
    if upgrade.extended_connect {
        for (name, value) in upstream_headers {
            if name.as_str().starts_with("sec-websocket-") && name != header::SEC_WEBSOCKET_ACCEPT {
                reply.headers_mut().append(name.clone(), value.clone());
            }
        }
    } else {
        *reply.headers_mut() = upstream_headers.clone();
    }
    reply
}
