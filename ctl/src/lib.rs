//! `linkherdctl` as a library: the fleet engine ([`fleet`]: plan, rollout,
//! verify, destroy, status, each returning a typed report), fleet specs
//! ([`spec`]) and their addresses ([`ipam`]), connecting to agents
//! ([`client`], [`config`]), a connectivity diagnosis ([`diagnose`]), the
//! fleet CA ([`certs`]), output rendering ([`output`]) and the command line
//! ([`cli`]), which only parses and prints. The lab and the end-to-end tests
//! reuse these.

pub mod certs;
pub mod cli;
pub mod client;
pub mod config;
pub mod diagnose;
pub mod fleet;
pub mod ipam;
pub mod output;
pub mod spec;
