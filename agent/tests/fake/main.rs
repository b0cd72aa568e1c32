//! The agent over the in-memory fake kernel (tier T1, no root needed): the
//! kernel contract, the lifecycle, transactions, the full gRPC stack over
//! mTLS, limits, roles, the state directory and the Docker driver. One
//! binary, one module per suite (see docs/testing.md).

#[path = "../contract/mod.rs"]
#[macro_use]
mod contract;
#[path = "../scenarios/mod.rs"]
#[macro_use]
mod scenarios;

mod audit;
mod bounds;
mod cancel;
mod catalog;
mod contract_run;
mod converge;
mod docker;
mod grpc;
mod lifecycle;
mod limits;
mod local_caps;
mod metrics;
mod roles;
mod scenario_run;
mod state_fixture;
mod store;
mod txn;
