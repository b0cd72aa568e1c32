//! The kernel contract against the in-memory fake (no root needed).

use crate::contract;

use std::sync::Arc;

use async_trait::async_trait;
use contract::{Env, Fixture};
use linkherd_agent::net::fake::FakeKernel;

struct FakeFixture(Arc<FakeKernel>);

#[async_trait]
impl Fixture for FakeFixture {
    async fn add_veth(&self, a: &str, b: &str) {
        self.0.add_veth(a, b).expect("add veth");
    }
    async fn del_link(&self, name: &str) {
        self.0.del_link_named(name).expect("del link");
    }
    async fn add_addr(&self, name: &str, cidr: &str) {
        self.0
            .add_addr(name, cidr.parse().expect("cidr"))
            .expect("add addr");
    }
    fn vlan_expected(&self) -> bool {
        false
    }
    async fn add_bridge_with_port(&self, bridge: &str, port: &str) {
        self.0.add_bridge(bridge).expect("bridge");
        self.0.set_master(port, bridge).expect("master");
    }
    fn netns_name(&self, base: &str) -> String {
        format!("fake-{base}")
    }
}

async fn make(_case: &str) -> Option<(Env, ())> {
    let fake = Arc::new(FakeKernel::new());
    Some((
        Env {
            net: fake.clone(),
            fx: Box::new(FakeFixture(fake)),
        },
        (),
    ))
}

contract_tests!(make);
