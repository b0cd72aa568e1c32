//! What every service handler shares.

use std::{sync::Arc, time::Instant};

use tokio::sync::OnceCell;

use crate::{
    audit::Audit,
    net::{Capabilities, NetOps},
    promisc::PromiscLeases,
};

/// Shared agent state: the kernel seam and the bookkeeping around it.
#[derive(Debug)]
pub struct Context {
    pub net: Arc<dyn NetOps>,
    pub leases: PromiscLeases,
    pub audit: Arc<Audit>,
    /// The name this host has in the fleet (defaults to the hostname).
    pub host_name: String,
    pub started: Instant,
    capabilities: OnceCell<Capabilities>,
}

impl Context {
    pub fn new(
        net: Arc<dyn NetOps>,
        audit: Arc<Audit>,
        leases: PromiscLeases,
        host_name: String,
    ) -> Self {
        Self {
            net,
            leases,
            audit,
            host_name,
            started: Instant::now(),
            capabilities: OnceCell::new(),
        }
    }

    /// Kernel capabilities, probed once: the probe can make the kernel try to
    /// load modules, which is not something to repeat on every call.
    pub async fn capabilities(&self) -> &Capabilities {
        self.capabilities
            .get_or_init(|| async { self.net.capabilities().await })
            .await
    }
}
