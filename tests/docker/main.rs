//! End-to-end suites with Debian's dockerd (tier T3, root): the agent as
//! Docker's network and IPAM driver on the netns lab, and the agent's image
//! run as the DaemonSet runs it. One binary, one module per suite.

mod agent_image;
mod engines;

/// One dockerd at a time: each test starts its own (own roots), and two
/// would share the host's iptables chains.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
