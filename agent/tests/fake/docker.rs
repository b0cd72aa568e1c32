//! Docker's remote driver protocol on a real unix socket, over the fake
//! kernel: the calls dockerd makes for `docker network create` and `docker
//! run` (as a Debian 20.10 engine sends them), what each leaves in the
//! kernel and the records, the audit lines, and what a wrong, malformed,
//! unknown or oversized call gets — Docker's `{"Err": ...}`, with nothing
//! left behind.

use linkherd_agent::testing;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use linkherd_agent::net::NetOps;
use linkherd_agent::testing::{Pki, fake_with_nic, start_agent};
use linkherd_proto::{model::IfName, pb};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NET_ID: &str = "02f5fff91f3685237ec4e518726ae0dcaeba87f4f152f0b2a00bb072f311f109";
const EP_ID: &str = "bae95847415fae74b95cc84704889fb0bf0314b55036b7fb4c455fb2bad92a95";

/// One call to the plugin socket (see [`testing::plugin_call`]).
async fn call(sock: &Path, method: &str, body: &str) -> (u16, Value) {
    testing::plugin_call(sock, method, body).await
}

/// Files in record set `set` of the state directory under `dir`.
fn records(dir: &Path, set: &str) -> usize {
    std::fs::read_dir(dir.join("state").join(set))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn ok(sock: &Path, method: &str, body: Value) -> Value {
    let (status, v) = call(sock, method, &body.to_string()).await;
    assert_eq!(status, 200, "{method}: {v}");
    assert!(v.get("Err").is_none(), "{method}: {v}");
    v
}

async fn refused(sock: &Path, method: &str, body: Value) -> String {
    let (status, v) = call(sock, method, &body.to_string()).await;
    assert_eq!(status, 200, "{method}: {v}");
    assert_eq!(v["Err"], v["Error"], "both of libnetwork's spellings");
    v["Err"]
        .as_str()
        .unwrap_or_else(|| panic!("{method} accepted: {v}"))
        .to_owned()
}

fn catalog() -> pb::DesiredState {
    pb::DesiredState {
        networks: vec!["mac_net10".into()],
        catalog: vec![pb::CatalogNetwork {
            name: "mac_net10".into(),
            parent: "ens192".into(),
            mode: pb::MacvlanMode::Bridge.into(),
            v4: Some(pb::CatalogPool {
                subnet: "172.16.10.0/24".into(),
                gateway: "172.16.10.1".into(),
                blocks: vec!["172.16.10.48/30".into()],
                excluded: Vec::new(),
            }),
            v6: Some(pb::CatalogPool {
                subnet: "fd00:10::/64".into(),
                gateway: "fd00:10::1".into(),
                blocks: vec!["fd00:10::1:0/112".into()],
                excluded: Vec::new(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An agent over a fake kernel with NIC ens192 and mac_net10 in its
/// catalog, serving the plugin on a socket in `dir`.
async fn plugin(
    dir: &Path,
) -> (
    testing::RunningAgent,
    PathBuf,
    std::sync::Arc<linkherd_agent::net::fake::FakeKernel>,
) {
    let fake = fake_with_nic();
    let pki = Pki::new();
    let agent = start_agent(fake.clone(), &pki, Some(&dir.join("state"))).await;
    let mut host = pb::host_service_client::HostServiceClient::new(
        agent
            .channel(&pki, Some(linkherd_proto::model::Role::Admin))
            .await
            .expect("admin"),
    );
    testing::apply_confirmed(&mut host, catalog()).await;
    let sock = serve_plugin(&agent, dir);
    (agent, sock, fake)
}

/// `agent` serving the plugin on a socket in `dir`.
fn serve_plugin(agent: &testing::RunningAgent, dir: &Path) -> PathBuf {
    let sock = dir.join("plugins/linkherd.sock");
    let listener = linkherd_agent::transport::unix::bind_unix(&sock).expect("bind");
    let serving = agent.agent.clone();
    tokio::spawn(async move { serving.serve_docker(listener, std::future::pending()).await });
    sock
}

fn create_network(parent: &str, gateway: &str) -> Value {
    json!({
        "NetworkID": NET_ID,
        "Options": {"com.docker.network.enable_ipv6": false, "com.docker.network.generic": {"parent": parent}},
        "IPv4Data": [{"AddressSpace": "linkherd", "Gateway": gateway, "Pool": "172.16.10.0/24"}],
        "IPv6Data": []
    })
}

#[tokio::test]
async fn dockers_calls_make_and_remove_a_handed_over_macvlan() {
    let dir = tempfile::tempdir().expect("dir");
    let (_agent, sock, fake) = plugin(dir.path()).await;
    let v = ok(&sock, "Plugin.Activate", json!({})).await;
    assert_eq!(v, json!({"Implements": ["NetworkDriver", "IpamDriver"]}));
    let pool = ok(&sock, "IpamDriver.RequestPool", json!({"AddressSpace": "linkherd", "Pool": "172.16.10.0/24", "SubPool": "", "Options": {}, "V6": false})).await;
    assert_eq!(
        pool,
        json!({"PoolID": "mac_net10/v4", "Pool": "172.16.10.0/24", "Data": {}})
    );
    let gw = ok(&sock, "IpamDriver.RequestAddress", json!({"PoolID": "mac_net10/v4", "Address": "", "Options": {"RequestAddressType": "com.docker.network.gateway"}})).await;
    assert_eq!(gw, json!({"Address": "172.16.10.1/24"}));
    ok(
        &sock,
        "NetworkDriver.CreateNetwork",
        create_network("ens192", "172.16.10.1/24"),
    )
    .await;
    // Go's nil map arrives as null.
    let a = ok(
        &sock,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "mac_net10/v4", "Address": "", "Options": null}),
    )
    .await;
    assert_eq!(
        a,
        json!({"Address": "172.16.10.48/24"}),
        "the lowest of this host's block"
    );
    let b = ok(
        &sock,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "mac_net10/v4", "Address": ""}),
    )
    .await;
    assert_eq!(
        b,
        json!({"Address": "172.16.10.49/24"}),
        "the first is reserved"
    );
    let release = json!({"PoolID": "mac_net10/v4", "Address": "172.16.10.49"});
    ok(&sock, "IpamDriver.ReleaseAddress", release.clone()).await;
    // Free again, but handed out last for a while (issue 25: a previous
    // holder's late release must find nobody's reservation).
    let any = json!({"PoolID": "mac_net10/v4", "Address": ""});
    let next = ok(&sock, "IpamDriver.RequestAddress", any).await;
    assert_eq!(
        next,
        json!({"Address": "172.16.10.50/24"}),
        "given back lately: last"
    );
    let asked = json!({"PoolID": "mac_net10/v4", "Address": "172.16.10.49"});
    let again = ok(&sock, "IpamDriver.RequestAddress", asked).await;
    assert_eq!(
        again,
        json!({"Address": "172.16.10.49/24"}),
        "released: free again"
    );
    ok(&sock, "IpamDriver.ReleaseAddress", release).await;
    let release50 = json!({"PoolID": "mac_net10/v4", "Address": "172.16.10.50"});
    ok(&sock, "IpamDriver.ReleaseAddress", release50).await;

    let ep = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {"Address": "172.16.10.48/24", "AddressIPv6": "", "MacAddress": ""}, "Options": {}});
    let made = ok(&sock, "NetworkDriver.CreateEndpoint", ep).await;
    let mac = made["Interface"]["MacAddress"]
        .as_str()
        .expect("a MAC for Docker")
        .to_owned();
    fake.add_netns_at(Path::new("/var/run/docker/netns/13178d05e73d"));
    let join = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": "/var/run/docker/netns/13178d05e73d", "Options": {}});
    let joined = ok(&sock, "NetworkDriver.Join", join).await;
    assert_eq!(
        joined,
        json!({"InterfaceName": {"SrcName": "lhbae95847415f", "DstPrefix": "eth"}, "Gateway": "172.16.10.1", "DisableGatewayService": true})
    );
    let link = fake
        .link(&IfName::parse("t", "lhbae95847415f").expect("name"))
        .await
        .expect("made for Docker");
    assert_eq!(link.mac.map(|m| m.to_string()), Some(mac.clone()));
    assert!(
        !link.admin_up && link.addresses.is_empty(),
        "down, unaddressed: Docker configures it once moved"
    );
    assert_eq!(link.parent.as_deref(), Some("ens192"));
    let info = ok(
        &sock,
        "NetworkDriver.EndpointOperInfo",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID}),
    )
    .await;
    assert_eq!(info["Value"]["linkherd.addresses"], "172.16.10.48/24");
    assert_eq!(records(dir.path(), "attachments"), 1);
    assert_eq!(records(dir.path(), "docker-networks"), 1);

    let leave = json!({"NetworkID": NET_ID, "EndpointID": EP_ID});
    ok(&sock, "NetworkDriver.Leave", leave.clone()).await;
    assert!(
        fake.link(&IfName::parse("t", "lhbae95847415f").expect("name"))
            .await
            .is_err(),
        "deleted at Leave"
    );
    ok(&sock, "NetworkDriver.DeleteEndpoint", leave.clone()).await;
    // Docker calls again, or for what it never made here: done already.
    ok(&sock, "NetworkDriver.Leave", leave.clone()).await;
    ok(&sock, "NetworkDriver.DeleteEndpoint", leave).await;
    let elsewhere = json!({"NetworkID": "f".repeat(64), "EndpointID": EP_ID});
    ok(&sock, "NetworkDriver.DeleteEndpoint", elsewhere).await;
    assert_eq!(records(dir.path(), "attachments"), 0);
    ok(
        &sock,
        "NetworkDriver.DeleteNetwork",
        json!({"NetworkID": NET_ID}),
    )
    .await;
    assert_eq!(records(dir.path(), "docker-networks"), 0);

    let audit = testing::audit_records(&dir.path().join("state"), "DockerPlugin/Join", 1).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0]["caller"], "docker (plugin socket)", "{}", audit[0]);
    assert_eq!(
        audit[0]["result"],
        "made lhbae95847415f on ens192 for Docker to move"
    );
}

#[tokio::test]
async fn wrong_malformed_unknown_and_huge_calls_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let (_agent, sock, fake) = plugin(dir.path()).await;
    let before = fake.links().await.expect("links").len();
    let err = refused(
        &sock,
        "NetworkDriver.CreateNetwork",
        create_network("eth0", "172.16.10.1/24"),
    )
    .await;
    assert_eq!(
        err,
        "-o parent=eth0 is not mac_net10's on this host: the fleet's parent here is ens192; give that, or leave -o parent out"
    );
    let err = refused(
        &sock,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "mac_net10/v4", "Address": "172.16.10.1"}),
    )
    .await;
    assert_eq!(err, "address 172.16.10.1 is the gateway; ask for another");
    let err = refused(
        &sock,
        "NetworkDriver.Join",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": "/x"}),
    )
    .await;
    assert!(
        err.starts_with(&format!(
            "Docker network {NET_ID} is not a linkherd network this host's agent knows"
        )),
        "{err}"
    );
    let err = refused(
        &sock,
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": "../../etc"}),
    )
    .await;
    assert_eq!(
        err,
        "NetworkID \"../../etc\" is not a Docker id (letters and digits, at most 128)"
    );
    let (status, v) = call(&sock, "NetworkDriver.CreateEndpoint", "{\"NetworkID\": 5").await;
    assert_eq!(status, 200);
    assert!(
        v["Err"]
            .as_str()
            .expect("err")
            .starts_with("NetworkDriver.CreateEndpoint: the request is not what Docker sends"),
        "{v}"
    );
    let (status, v) = call(&sock, "NetworkDriver.Bogus", "{}").await;
    assert_eq!(
        (status, v["Err"].as_str()),
        (404, Some("linkherd does not serve NetworkDriver.Bogus"))
    );
    let huge = format!("{{\"NetworkID\": \"{}\"}}", "a".repeat(100_000));
    let (status, _) = call(&sock, "NetworkDriver.CreateNetwork", &huge).await;
    assert_eq!(status, 413, "bodies are bounded");
    // A Join whose endpoint was never created: nothing made.
    ok(
        &sock,
        "NetworkDriver.CreateNetwork",
        create_network("ens192", "172.16.10.1/24"),
    )
    .await;
    let err = refused(
        &sock,
        "NetworkDriver.Join",
        json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "SandboxKey": "/var/run/docker/netns/x"}),
    )
    .await;
    assert!(
        err.starts_with(&format!(
            "endpoint {EP_ID} of network mac_net10 is not known to this host's agent"
        )),
        "{err}"
    );
    assert_eq!(
        fake.links().await.expect("links").len(),
        before,
        "nothing left behind"
    );
    assert_eq!(records(dir.path(), "attachments"), 0);
    let err = refused(
        &sock,
        "NetworkDriver.CreateNetwork",
        json!({"NetworkID": NET_ID, "IPv4Data": [{"AddressSpace": "linkherd", "Pool": "172.16.10.0/24", "AuxAddresses": {"r": "172.16.10.5"}}]}),
    )
    .await;
    assert!(
        err.starts_with("--aux-address r is not used by linkherd"),
        "{err}"
    );
}

/// Sends `head` (and no more) on a new connection to the plugin socket.
async fn stalled(sock: &Path, head: &str) -> tokio::net::UnixStream {
    let mut s = tokio::net::UnixStream::connect(sock)
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    s
}

/// What the server sends before it closes `s`, waiting at most `within`;
/// `None` when it has not closed by then.
async fn until_closed(mut s: tokio::net::UnixStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    tokio::time::timeout(within, s.read_to_end(&mut out))
        .await
        .ok()
        .map(|_| String::from_utf8_lossy(&out).into_owned())
}

/// Issue 25, problem 4: 64 clients that send headers and part of a body
/// blocked every later call. Now they hold no place among the calls, and
/// each is answered or closed within its deadline: a body within 10 s of
/// its headers, headers within 10 s, and a kept-alive connection idle for
/// 10 s is closed.
#[tokio::test(flavor = "multi_thread")]
async fn slow_clients_hold_nothing_and_are_cut_off() {
    let dir = tempfile::tempdir().expect("dir");
    let (_agent, sock, _fake) = plugin(dir.path()).await;
    let part = "POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: 100\r\n\r\n{\"x\":";
    let mut bodies = Vec::new();
    for _ in 0..70 {
        bodies.push(stalled(&sock, part).await);
    }
    let headers = stalled(&sock, "POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\n").await;
    let idle = stalled(
        &sock,
        "POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let t = Instant::now();
    let v = ok(&sock, "Plugin.Activate", json!({})).await;
    assert_eq!(v["Implements"][0], "NetworkDriver");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a call waited {:?} behind slow clients",
        t.elapsed()
    );

    let window = Duration::from_secs(16);
    let body_cut = tokio::spawn(until_closed(bodies.remove(0), window));
    let (body_cut, headers_cut, idle_cut) = (
        body_cut.await.expect("task"),
        until_closed(headers, window).await,
        until_closed(idle, window).await,
    );
    let answered = body_cut.expect("a stalled body was never answered");
    assert!(
        answered.contains("Plugin.Activate: the request's body did not arrive within 10 s"),
        "{answered}"
    );
    assert_eq!(
        headers_cut.as_deref(),
        Some(""),
        "stalled headers: closed without an answer"
    );
    let idle = idle_cut.expect("an idle kept-alive connection was never closed");
    assert!(
        idle.starts_with("HTTP/1.1 200"),
        "its one call was answered: {idle}"
    );
    assert!(
        t.elapsed() >= Duration::from_secs(10),
        "cut before its deadline: {:?}",
        t.elapsed()
    );
}

/// Issue 25, problem 7: 3,000 idle connections were all kept. Past 128 a
/// connection is closed at once; when they go, calls are served again.
#[tokio::test(flavor = "multi_thread")]
async fn plugin_connections_are_capped() {
    let dir = tempfile::tempdir().expect("dir");
    let (_agent, sock, _fake) = plugin(dir.path()).await;
    let mut open = Vec::new();
    for _ in 0..300 {
        open.push(
            tokio::net::UnixStream::connect(&sock)
                .await
                .expect("connect"),
        );
    }
    let mut closed = 0;
    for s in open.drain(..) {
        if until_closed(s, Duration::from_millis(20)).await.is_some() {
            closed += 1;
        }
    }
    assert_eq!(closed, 300 - 128, "connections over the cap closed at once");
    let v = ok(&sock, "Plugin.Activate", json!({})).await;
    assert_eq!(v["Implements"][1], "IpamDriver");
}

/// Issue 25, problem 9: values were echoed whole (a 60 KB error reply, a
/// 60 KB method name in a 404). Each value is cut to 80 bytes, a reply to
/// about a kilobyte.
#[tokio::test]
async fn values_from_docker_are_cut_in_replies() {
    let dir = tempfile::tempdir().expect("dir");
    let (_agent, sock, _fake) = plugin(dir.path()).await;
    let long = "a".repeat(40_000);
    let (status, v) = call(&sock, &format!("NetworkDriver.{long}"), "{}").await;
    let err = v["Err"].as_str().expect("err");
    assert_eq!(status, 404);
    assert!(err.len() < 200 && err.ends_with("(40014 bytes)"), "{err}");
    let err = refused(
        &sock,
        "NetworkDriver.CreateNetwork",
        json!({ "NetworkID": long }),
    )
    .await;
    assert!(err.len() < 300 && err.contains("… (40000 bytes)"), "{err}");
    let err = refused(
        &sock,
        "NetworkDriver.CreateNetwork",
        json!({ "Options": long }),
    )
    .await;
    assert!(err.len() < 400, "{} bytes: {}", err.len(), &err[..200]);
    assert!(
        err.starts_with("NetworkDriver.CreateNetwork: the request is not what Docker sends"),
        "{err}"
    );
    let escape = format!("x\u{1b}[2J{}", "b".repeat(10));
    let err = refused(
        &sock,
        "NetworkDriver.CreateNetwork",
        json!({ "NetworkID": escape }),
    )
    .await;
    assert!(!err.contains('\u{1b}') && err.contains("\\u{1b}"), "{err}");
}

/// Issue 25, problem 5: a late or repeated ReleaseAddress of a previous
/// holder dropped the next holder's reservation, so the address went out
/// twice and the second CreateEndpoint was refused. A deleted endpoint
/// owes its release, which frees nothing when it comes (nor when it comes
/// again); a reservation released rests before it is handed out again.
#[tokio::test]
async fn a_previous_holders_release_frees_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let (_agent, sock, _fake) = plugin(dir.path()).await;
    ok(
        &sock,
        "NetworkDriver.CreateNetwork",
        create_network("ens192", "172.16.10.1/24"),
    )
    .await;
    let any = || json!({"PoolID": "mac_net10/v4", "Address": ""});
    let request = |v: Value| v["Address"].as_str().expect("address").to_owned();
    let endpoint = |id: &str, addr: &str| json!({"NetworkID": NET_ID, "EndpointID": id, "Interface": {"Address": addr, "AddressIPv6": "", "MacAddress": ""}, "Options": {}});
    let release =
        |a: &str| json!({"PoolID": "mac_net10/v4", "Address": a.split('/').next().expect("ip")});
    let id = |c: char| c.to_string().repeat(64);
    // A: an endpoint made and deleted; its ReleaseAddress is still to come.
    let a = request(ok(&sock, "IpamDriver.RequestAddress", any()).await);
    ok(
        &sock,
        "NetworkDriver.CreateEndpoint",
        endpoint(&id('a'), &a),
    )
    .await;
    let gone = json!({"NetworkID": NET_ID, "EndpointID": id('a')});
    ok(&sock, "NetworkDriver.DeleteEndpoint", gone).await;
    // B gets the lowest free address, A's (as `docker restart` expects).
    let b = request(ok(&sock, "IpamDriver.RequestAddress", any()).await);
    assert_eq!(b, a);
    // A's late release, then again: B keeps its reservation both times.
    ok(&sock, "IpamDriver.ReleaseAddress", release(&a)).await;
    let c = request(ok(&sock, "IpamDriver.RequestAddress", any()).await);
    ok(&sock, "IpamDriver.ReleaseAddress", release(&a)).await;
    let d = request(ok(&sock, "IpamDriver.RequestAddress", any()).await);
    assert!(c != b && d != b && c != d, "{b} handed out twice: {c} {d}");
    ok(
        &sock,
        "NetworkDriver.CreateEndpoint",
        endpoint(&id('b'), &b),
    )
    .await;
    // C's own release before its endpoint frees its address, which rests:
    // E gets the last other one, F then C's.
    ok(&sock, "IpamDriver.ReleaseAddress", release(&c)).await;
    let e = request(ok(&sock, "IpamDriver.RequestAddress", any()).await);
    assert!(![&b, &c, &d].contains(&&e), "{e}");
    let f = request(ok(&sock, "IpamDriver.RequestAddress", any()).await);
    assert_eq!(f, c, "the one at rest, when nothing else is free");
    let err = refused(&sock, "IpamDriver.RequestAddress", any()).await;
    assert!(
        err.starts_with("no free address left in this host's blocks of mac_net10"),
        "{err}"
    );
}

/// Issue 25, problem 8: the plugin's state had no bounds (3,000 bindings,
/// 20,000 reservations, 2,000 endpoints never joined). Each has a cap, at
/// which the next call is refused with what to do.
#[tokio::test(flavor = "multi_thread")]
async fn the_plugins_state_is_capped() {
    let dir = tempfile::tempdir().expect("dir");
    let (_agent, sock, _fake) = plugin(dir.path()).await;
    let t = Instant::now();
    let v6 = |i: usize| format!("fd00:10::1:{:x}", i + 2);
    for i in 0..1024 {
        let body = json!({"PoolID": "mac_net10/v6", "Address": v6(i)});
        ok(&sock, "IpamDriver.RequestAddress", body).await;
    }
    let err = refused(
        &sock,
        "IpamDriver.RequestAddress",
        json!({"PoolID": "mac_net10/v6", "Address": ""}),
    )
    .await;
    assert!(
        err.starts_with("1024 addresses are handed out already and not yet used"),
        "{err}"
    );
    for i in 0..1024 {
        let body = json!({"PoolID": "mac_net10/v6", "Address": v6(i)});
        ok(&sock, "IpamDriver.ReleaseAddress", body).await;
    }
    let reservations = t.elapsed();

    let t = Instant::now();
    ok(
        &sock,
        "NetworkDriver.CreateNetwork",
        create_network("ens192", "172.16.10.1/24"),
    )
    .await;
    for i in 0..1024 {
        let ep = json!({"NetworkID": NET_ID, "EndpointID": format!("{i:064x}"),
            "Interface": {"Address": "", "AddressIPv6": format!("{}/64", v6(i)), "MacAddress": ""}});
        ok(&sock, "NetworkDriver.CreateEndpoint", ep).await;
    }
    let ep = json!({"NetworkID": NET_ID, "EndpointID": "f".repeat(64),
        "Interface": {"Address": "", "AddressIPv6": format!("{}/64", v6(2000)), "MacAddress": ""}});
    let err = refused(&sock, "NetworkDriver.CreateEndpoint", ep).await;
    assert!(
        err.starts_with("1024 Docker endpoints are created and not joined yet"),
        "{err}"
    );
    assert_eq!(records(dir.path(), "attachments"), 1024);
    let endpoints = t.elapsed();

    let t = Instant::now();
    for i in 1..1024 {
        let mut body = create_network("ens192", "172.16.10.1/24");
        body["NetworkID"] = json!(format!("{i:064x}"));
        ok(&sock, "NetworkDriver.CreateNetwork", body).await;
    }
    let mut body = create_network("ens192", "172.16.10.1/24");
    body["NetworkID"] = json!("e".repeat(64));
    let err = refused(&sock, "NetworkDriver.CreateNetwork", body).await;
    assert!(
        err.starts_with("this host's agent has 1024 Docker networks already"),
        "{err}"
    );
    assert_eq!(records(dir.path(), "docker-networks"), 1024);
    eprintln!(
        "1024 reservations {reservations:?}, endpoints {endpoints:?}, networks {:?}",
        t.elapsed()
    );
}

/// An endpoint Docker created and never joined (its container never
/// started, and no DeleteEndpoint came) is reaped once its reservation
/// would have lapsed: its record, and its address free again. The same
/// reap runs at start (here), every minute, and when an address is refused.
#[tokio::test]
async fn an_endpoint_never_joined_is_reaped_once_its_time_is_up() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let (_agent, sock, _fake) = plugin(dir.path()).await;
        ok(
            &sock,
            "NetworkDriver.CreateNetwork",
            create_network("ens192", "172.16.10.1/24"),
        )
        .await;
        let ep = json!({"NetworkID": NET_ID, "EndpointID": EP_ID, "Interface": {"Address": "172.16.10.49/24", "AddressIPv6": "", "MacAddress": ""}, "Options": {}});
        ok(&sock, "NetworkDriver.CreateEndpoint", ep).await;
    }
    let set = dir.path().join("state/attachments");
    let file = std::fs::read_dir(&set)
        .expect("records")
        .next()
        .expect("one record")
        .expect("entry")
        .path();
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(&file).expect("read")).expect("json");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    record["recorded_at"] = json!(now - 400);
    std::fs::write(&file, record.to_string()).expect("age it");

    // The agent again, on the same state (its catalog is kept there).
    let state = dir.path().join("state");
    let agent = start_agent(fake_with_nic(), &Pki::new(), Some(&state)).await;
    // (The first agent's plugin task still holds the first socket.)
    let sock = serve_plugin(&agent, &dir.path().join("again"));
    ok(&sock, "Plugin.Activate", json!({})).await;
    assert_eq!(
        records(dir.path(), "attachments"),
        0,
        "the record outlived its time"
    );
    let reaped = testing::audit_records(&dir.path().join("state"), "DockerPlugin/Reap", 1).await;
    assert_eq!(reaped.len(), 1, "{reaped:?}");
    assert_eq!(reaped[0]["target"], format!("mac_net10/{EP_ID}"));
    assert_eq!(reaped[0]["result"], "released 172.16.10.49/24");
    let again = json!({"PoolID": "mac_net10/v4", "Address": "172.16.10.49"});
    let got = ok(&sock, "IpamDriver.RequestAddress", again).await;
    assert_eq!(got, json!({"Address": "172.16.10.49/24"}));
}
