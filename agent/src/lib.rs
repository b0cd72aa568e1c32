//! linkherd agent library, grouped by what each part is for:
//!
//! - [`app`]: the composition root and the one table of services;
//! - [`api`]: the gRPC adapters (pb → model → domain → pb, audit);
//! - [`transport`]: listeners, mTLS, the auth layer, budgets, `/healthz`;
//! - the domain: the host's objects ([`host`]), commit-confirmed
//!   transactions ([`txn`]), promiscuous-mode [`leases`], the [`watch`] hub;
//! - [`state`]: the state directory, the audit log, the agent's id, callers;
//! - [`net`]: the only code that touches the kernel;
//! - [`docker`]: Docker's network and IPAM driver.
//!
//! `main.rs` only reads configuration ([`config`]) and starts an
//! [`app::Agent`] on its listeners.

pub mod api;
pub mod app;
pub mod config;
pub mod context;
pub mod converge;
pub mod docker;
pub mod error;
pub mod faults;
pub mod host;
pub mod leases;
pub mod metrics;
pub mod net;
pub mod state;
#[cfg(feature = "fake")]
pub mod testing;
pub mod transport;
pub mod txn;
pub mod watch;
