//! What `linkherd-cni` speaks with container runtimes, per the CNI
//! specification (versions 0.4.0, 1.0.0 and 1.1.0): the verb and its
//! parameters from the environment, the network configuration from stdin,
//! the version to answer in, and the result or error JSON on stdout. It
//! holds no networking: the agent does that. Everything a runtime sends is
//! bounded and checked here, so a malformed call is refused with the
//! specification's error code before anything is asked of the agent.

pub mod call;
pub mod config;
pub mod env;
pub mod error;
pub mod result;
pub mod version;

pub use config::NetConf;
pub use env::{Invocation, Verb};
pub use error::{CniError, Code};
pub use result::{AttachResult, IfaceResult, IpResult, RouteResult};
pub use version::CniVersion;
