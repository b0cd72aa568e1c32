//! What the agent keeps: the durable state directory ([`store`]), the audit
//! log written into it ([`audit`]), the agent's own id ([`agent_id`]), and
//! who a change is made for ([`caller`]).

pub mod agent_id;
pub mod audit;
pub mod caller;
pub mod store;
