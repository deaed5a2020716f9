//! The resource model: one Rust type per Kuma spec, with Kuma's field names (camelCase, snake_case accepted).

pub mod common;
pub mod dataplane;
pub mod external_service;
pub mod gateway;
pub mod gateway_instance;
pub mod gateway_route;
pub mod mesh;
pub mod meshhttproute;
pub mod meshtcproute;
pub mod policy;
pub mod secret;
pub mod targetref;
pub mod wkt;

pub use dataplane::Dataplane;
pub use external_service::ExternalService;
pub use gateway::MeshGateway;
pub use gateway_instance::{MeshGatewayConfig, MeshGatewayInstance};
pub use gateway_route::MeshGatewayRoute;
pub use mesh::Mesh;
pub use meshhttproute::MeshHttpRoute;
pub use meshtcproute::MeshTcpRoute;
pub use secret::Secret;
