//! TCP proxying: one weighted backend per connection, bytes relayed both ways, half-close passed on.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::runtime::TcpRuntime;

/// Relays `downstream` to a backend chosen from `tcp`. Returns the bytes moved each way, or why it stopped early.
pub async fn proxy<S: AsyncRead + AsyncWrite + Unpin>(
    mut downstream: S,
    tcp: &TcpRuntime,
) -> Result<(u64, u64), String> {
    let cluster = tcp.backends.choose().ok_or("no backend")?;
    let endpoint = cluster.pick().ok_or_else(|| format!("no endpoints for cluster {}", cluster.name))?;
    let mut upstream = endpoint.connect_stream().await.map_err(|e| e.to_string())?;
    tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await.map_err(|e| e.to_string())
}
