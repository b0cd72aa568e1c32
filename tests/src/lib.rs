//! The linkherd lab: a local fleet of hosts, each a network namespace running
//! a real `linkherd-agent`, reachable over mTLS on a private management
//! network — plus the helpers the end-to-end suites share with it.

pub mod bins;
pub mod fleet;
pub mod guard;
pub mod lab;
pub mod sh;
pub mod traffic;
