//! `linkherdctl` as a library: the command line ([`cli`]), connecting to
//! agents ([`client`], [`config`]), the fleet CA ([`certs`]) and output
//! rendering ([`output`]). The lab and the end-to-end tests reuse these.

pub mod certs;
pub mod cli;
pub mod client;
pub mod config;
pub mod diagnose;
pub mod error;
pub mod fleet;
pub mod ipam;
pub mod output;
pub mod progress;
pub mod rollout;
pub mod spec;
pub mod verify;
