//! linkherdctl's integration suites (tiers T0 and T1, no root): the fleet
//! engine through the library over in-process agents, TLS hints, exit
//! codes and completion, the generated docs, and the spec fuzzing. One
//! binary, one module per suite.

mod docs;
mod engine;
mod exit_codes;
mod fuzz_spec;
mod terminal;
mod tls;
