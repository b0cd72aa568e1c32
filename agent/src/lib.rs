//! linkherd agent library: the kernel seam ([`net`]), the gRPC services
//! ([`service`]), and the transport, identity and audit around them
//! ([`server`], [`auth`], [`audit`]). `main.rs` only reads configuration
//! ([`config`]) and starts an [`server::Agent`].

pub mod audit;
pub mod auth;
pub mod budget;
pub mod capped;
pub mod config;
pub mod context;
pub mod docker;
pub mod error;
pub mod faults;
pub mod health_http;
pub mod identity;
pub mod lifecycle;
pub mod net;
pub mod promisc;
pub mod server;
pub mod service;
pub mod store;
#[cfg(feature = "fake")]
pub mod testing;
pub mod tls;
pub mod txn;
pub mod watch;
