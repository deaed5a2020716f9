//! TCP proxying: one weighted backend per connection, bytes relayed both ways, half-close passed on.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::runtime::TcpRuntime;

/// Relays `downstream` to a backend chosen from `tcp`, trying up to `attempts` endpoints in turn to connect
/// (MeshRetry `tcp.maxConnectAttempt`). Returns the bytes moved each way, or why it stopped early.
pub async fn proxy<S: AsyncRead + AsyncWrite + Unpin>(
    mut downstream: S,
    tcp: &TcpRuntime,
    attempts: u32,
) -> Result<(u64, u64), String> {
    let cluster = tcp.backends.choose().ok_or("no backend")?;
    let mut tries = 0;
    let mut upstream = loop {
        let endpoint = cluster.pick().ok_or_else(|| format!("no endpoints for cluster {}", cluster.name))?;
        tries += 1;
        match endpoint.connect_stream().await {
            Ok(s) => break s,
            Err(e) if tries >= attempts.max(1) => return Err(e.to_string()),
            Err(_) => {}
        }
    };
    tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await.map_err(|e| e.to_string())
}
