//! Connectivity probes, run from inside a chosen network namespace.
//!
//! Each probe runs on a blocking-pool thread that enters the namespace for
//! the probe's duration (a socket belongs to the namespace of the thread
//! that creates it), so probes never run on the threads that serve gRPC and
//! many can run at once from different namespaces. Every probe is bounded
//! in time (it returns by its deadline) and in cost ([`budget`]: how many
//! run at once, how many packets a second), so probes cannot take the
//! threads other requests need.

pub mod arp;
pub mod budget;
pub mod icmp;
pub mod tcp;
