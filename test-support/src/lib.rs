//! What linkherd's test suites share, so that each is written once: the
//! root check ([`root`]), kernel capability checks ([`caps`]), private
//! namespaces that clean up after themselves ([`netns`]), a fleet PKI
//! ([`pki`]), running commands ([`cmd`]) and keeping generated files
//! current ([`generated`]), and the fuzz suites' settings ([`fuzz`]).
//!
//! This crate is a dev-dependency only. It depends on no linkherd crate, so
//! any of them can use it without a cycle.

pub mod caps;
pub mod cmd;
pub mod fuzz;
pub mod generated;
pub mod netns;
pub mod pki;
pub mod root;

pub use cmd::{run, text};
pub use netns::TestNetns;
pub use pki::Pki;
pub use root::have_root;
