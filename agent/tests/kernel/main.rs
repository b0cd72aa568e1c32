//! The agent on the real kernel (tier T2, root): the kernel contract inside
//! private network namespaces, the lifecycle, attachments, gRPC, netlink
//! reconnection, dropped privileges, shutdown and a full state directory.
//! (Suites that count the process's descriptors or threads, or change its
//! umask, keep binaries of their own: `limits_kernel`, `hardening_kernel`,
//! `socket_fake`; `crash_kernel` kills its own children without libtest.)
//! Each test skips without root (and fails instead under
//! `LINKHERD_REQUIRE_ROOT=1`). One binary, one module per suite.

#[path = "../contract/mod.rs"]
#[macro_use]
mod contract;
#[path = "../scenarios/mod.rs"]
#[macro_use]
mod scenarios;

mod attach;
mod contract_run;
mod converge;
mod grpc;
mod lifecycle;
mod netlink;
mod privilege;
mod scenario_run;
mod shutdown;
mod store_full;
mod systemd;
mod tenant;
