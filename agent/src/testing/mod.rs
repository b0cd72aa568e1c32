//! In-process agents for tests (feature `fake`): an [`Agent`] serving real
//! mTLS on an ephemeral loopback port, stopped when its handle drops, and
//! the helpers the agent's suites share around it. The agent's own suites
//! and the fleet engine's tests in `linkherdctl` start agents this way over
//! the fake kernel.

mod helpers;

pub use helpers::{
    Pki, RunningAgent, apply_confirmed, audit_records, endpoint, fake_with_nic, generation,
    listed_endpoints, next_event, plugin_call, start_adopting, start_agent, start_agent_with,
    tcp_reaches, unix_channel,
};

use std::{net::SocketAddr, sync::Arc};

use tokio::sync::oneshot;

use crate::{
    app::{Agent, AgentOptions, ServeError},
    net::NetOps,
    transport::tls::TlsPem,
};

/// An agent serving mTLS on `addr` until this handle drops.
#[derive(Debug)]
pub struct InProcessAgent {
    pub addr: SocketAddr,
    pub agent: Agent,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for InProcessAgent {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts an agent over `net` with `opts`, serving mTLS with `tls` on
/// 127.0.0.1 at a port the kernel picks.
pub async fn start(
    net: Arc<dyn NetOps>,
    opts: AgentOptions,
    tls: TlsPem,
) -> Result<InProcessAgent, ServeError> {
    let agent = Agent::new(net, opts).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(ServeError::Bind)?;
    let addr = listener.local_addr().map_err(ServeError::Bind)?;
    let (tx, rx) = oneshot::channel::<()>();
    let serving = agent.clone();
    tokio::spawn(async move {
        let stopped = async {
            let _ = rx.await;
        };
        if let Err(e) = serving.serve_tcp(listener, Some(tls), stopped).await {
            tracing::error!(error = %e, "in-process agent stopped");
        }
    });
    Ok(InProcessAgent {
        addr,
        agent,
        stop: Some(tx),
    })
}
