//! End-to-end suites on the netns lab (tier T3, root): the lab's hosts as
//! network namespaces on this kernel, each with a real agent, driven by the
//! real `linkherdctl`, `linkherd-cni` and podman binaries. One binary, one
//! module per suite; tests run side by side, each on a lab of its own.

mod catalog;
mod cni;
mod deploy_examples;
mod docs_cni;
mod fleet_apply;
mod fleet_plan;
mod podman;
mod seed;
