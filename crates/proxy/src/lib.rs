//! # meshgate-proxy — the data plane
//!
//! What it is for: executing [`meshgate_plan::GatewayPlan`]s — binding each listener on its Dataplane's address,
//! serving HTTP/1.1 and HTTP/2 cleartext, matching virtual hosts and routes exactly as Kuma's Envoy configuration
//! did (exact host, then the longest wildcard, then `*`; the first route of the ordered table whose conditions all
//! hold), applying filters (header changes, rewrites, redirects, mirrors), and forwarding to weighted backends over
//! pooled upstream connections. A new plan is swapped in atomically: unchanged listeners keep their sockets and
//! connections, new ones bind, removed ones drain.
//!
//! Kuma concept: the builtin gateway's Envoy (listeners, HTTP connection manager, routes, clusters).
//!
//! What it must never do: read resources or files, or decide routing semantics of its own — everything it does is
//! in the plan. It depends on `plan` only, never on `api` or `compile`.

pub mod accesslog;
pub mod balance;
pub mod body;
pub mod domain;
pub mod explain;
pub mod guard;
pub mod handler;
pub mod health;
pub mod metrics;
pub mod overview;
pub mod path;
pub mod policy;
pub mod replay;
pub mod runtime;
pub mod server;
pub mod sni;
pub mod tcp;
pub mod tls;
pub mod trace;
pub mod upgrade;
pub mod upstream;

pub use runtime::ProxySettings;
pub use server::{ApplyReport, DEFAULT_DRAIN, Proxy};
