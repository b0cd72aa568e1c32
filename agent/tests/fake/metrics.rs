//! `GET /metrics`: scraped over HTTP from the loopback health listener and
//! read by a real Prometheus text parser (Python's `prometheus_client`,
//! OpenMetrics flavour), after calls that every family should count.

use std::{collections::BTreeMap, process::Command};

use linkherd_agent::{
    converge::Trigger,
    testing::{Pki, fake_with_nic, start_agent},
};
use linkherd_proto::{
    model::Role,
    pb::{self, macvlan_service_client::MacvlanServiceClient},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The body of `GET /metrics` on `addr`.
async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").expect("http");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase().contains("application/openmetrics-text"),
        "{head}"
    );
    body.to_owned()
}

/// Every sample as `name{labels} value`, parsed by prometheus_client.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    // Debian's interpreter, where python3-prometheus-client installs.
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 (install python3-prometheus-client: scripts/setup.sh --tests)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser");
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics (is python3-prometheus-client installed? \
         scripts/setup.sh --tests): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.parse().expect("value")))
        .collect()
}

#[tokio::test]
async fn metrics_are_served_and_read_by_a_prometheus_parser() {
    let (pki, fake) = (Pki::new(), fake_with_nic());
    let agent = start_agent(fake, &pki, None).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let serving = agent.agent.clone();
    tokio::spawn(async move { serving.serve_health(listener, std::future::pending()).await });

    let ch = agent.channel(&pki, Some(Role::Admin)).await.expect("admin");
    let mut mv = MacvlanServiceClient::new(ch);
    mv.create(pb::CreateMacvlanRequest {
        endpoint: Some(linkherd_agent::testing::endpoint("m1", "10.0.0.5/24")),
        create_netns: true,
    })
    .await
    .expect("create");
    let refused = mv
        .delete(pb::DeleteMacvlanRequest {
            network: "mac_net".into(),
            name: "nope".into(),
            ..Default::default()
        })
        .await
        .expect_err("not found");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    agent
        .agent
        .context()
        .converge
        .pass(Trigger::Periodic)
        .await
        .expect("pass");

    let m = parse(&scrape(addr).await);
    let get = |k: &str| {
        *m.get(k)
            .unwrap_or_else(|| panic!("{k} missing from {m:#?}"))
    };
    assert_eq!(
        get(
            r#"linkherd_grpc_requests_total{code="OK",method="linkherd.v1.MacvlanService/Create"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            r#"linkherd_grpc_requests_total{code="NOT_FOUND",method="linkherd.v1.MacvlanService/Delete"}"#
        ),
        1.0
    );
    assert_eq!(
        get(r#"linkherd_objects{kind="endpoint",phase="in-sync"}"#),
        1.0
    );
    assert_eq!(
        get(r#"linkherd_objects{kind="endpoint",phase="fighting"}"#),
        0.0
    );
    assert_eq!(
        get(r#"linkherd_reconcile_passes_total{trigger="start"}"#),
        1.0
    );
    assert_eq!(
        get(r#"linkherd_reconcile_passes_total{trigger="periodic"}"#),
        1.0
    );
    assert_eq!(get("linkherd_reconcile_pass_duration_seconds_count{}"), 2.0);
    assert_eq!(
        get("linkherd_endpoint_create_duration_seconds_count{}"),
        1.0
    );
    // No label carries an address, a container or an endpoint name.
    assert!(
        m.keys()
            .all(|k| !k.contains("10.0.0.5") && !k.contains("m1"))
    );
}
