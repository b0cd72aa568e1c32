use super::*;
use crate::fleet::status::Drift;

fn change(action: Action, kind: &str, object: &str) -> Change {
    Change {
        action,
        kind: kind.into(),
        object: object.into(),
        detail: String::new(),
    }
}

/// no1 with one change of each kind.
fn changes() -> Vec<Change> {
    vec![
        change(Action::Create, "endpoint", "n/b5"),
        change(Action::Update, "endpoint", "n/b1"),
        change(Action::Delete, "endpoint", "n/b2"),
    ]
}

fn view<'a>(host: &'a str, agent: &'a str, changes: &'a [Change]) -> PlanView<'a> {
    PlanView {
        host,
        agent,
        generation: 1,
        changes,
    }
}

#[test]
fn drift_names_missing_differing_and_extra_objects() {
    let hosts = [
        HostStatus {
            host: "no1".into(),
            differences: changes()
                .into_iter()
                .map(|c| (Drift::from(c.action), c))
                .collect(),
            containers: vec![],
        },
        HostStatus {
            host: "no2".into(),
            differences: vec![],
            containers: vec![],
        },
    ];
    assert_eq!(
        render_drift(&hosts, &[]),
        "no1: 3 difference(s) from the spec\n  missing  endpoint    n/b5\n  \
         differs  endpoint    n/b1\n  extra    endpoint    n/b2\nno2: in sync"
    );
    assert_eq!(exit(true), Exit::Changes);
    assert_eq!(exit(false), Exit::Success);
}

fn container(network: &str, id: &str, stale: bool) -> AttachedView {
    AttachedView {
        host: "no1".into(),
        network: network.into(),
        container_id: id.into(),
        ifname: "eth0".into(),
        netns: format!("/run/netns/cni-{id}"),
        addresses: vec!["172.16.10.34/24".into()],
        mac: "02:00:00:00:00:01".into(),
        parent: "ens192.10".into(),
        stale,
    }
}

#[test]
fn status_counts_containers_per_network_and_names_the_stale_ones() {
    let hosts = [HostStatus {
        host: "no1".into(),
        differences: vec![],
        containers: vec![
            container("mac_net20", "c3", false),
            container("mac_net10", "3f2a9c01b2de4455", false),
            container("mac_net10", "c2", true),
        ],
    }];
    assert_eq!(
        render_drift(&hosts, &[]),
        "no1: in sync\n  containers  2 on mac_net10, 1 on mac_net20\n  \
         stale       c2/eth0 on mac_net10: namespace /run/netns/cni-c2 is gone; GC or DEL removes it"
    );
}

#[test]
fn render_marks_each_action_and_counts_them() {
    let c = changes();
    let plans = [
        view("no1", "https://a:1", &c),
        view("no2", "https://b:1", &[]),
    ];
    let plain = render(&plans, false);
    assert_eq!(
        plain,
        "no1 (https://a:1):\n  + endpoint    n/b5\n  ~ endpoint    n/b1\n  - endpoint    n/b2\n\
         no2 (https://b:1): no changes\nPlan: 1 to create, 1 to change, 1 to delete."
    );
    let coloured = render(&plans, true);
    assert!(
        coloured.contains("\x1b[32m  + endpoint    n/b5\x1b[0m"),
        "{coloured}"
    );
    assert!(
        coloured.contains("\x1b[31m  - endpoint    n/b2\x1b[0m"),
        "{coloured}"
    );
    assert_eq!(
        render(&plans[1..], false),
        "no2 (https://b:1): no changes\nNo changes: the fleet matches the spec."
    );
    let json = serde_json::to_value(&plans[0]).expect("json");
    assert_eq!(json["changes"][0]["action"], "create");
}
