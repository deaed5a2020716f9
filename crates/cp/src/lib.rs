//! meshgate's control plane — the part of Kuma's `kuma-cp` that builtin gateways need.
//!
//! It serves Kuma's REST API (`/meshes/{mesh}/{collection}/{name}` and the lists beside it) over a
//! [`meshgate_store`] store. Every write is decoded and validated by [`meshgate_api`] first, with Kuma's field paths
//! and messages, and refused as a whole when anything is wrong; what is stored is the resource's Universal form.
//!
//! Whenever the store changes it compiles every builtin gateway's plan ([`plans`]) and pushes each connected gateway
//! (`meshgate dp`) its own, over a long-lived HTTP stream; gateways acknowledge the version they applied.
//!
//! The control plane never runs traffic and never reads configuration files: gateways get their plans from it, and
//! the CLI (`meshgate apply`, `get`, `delete`) talks to it over HTTP.

pub mod auth;
pub mod plans;
pub mod rest;

pub use auth::Auth;
pub use plans::{BoundPlan, Distributor, GatewayStatus, PlanMessage};
pub use rest::{ServerInfo, router};
