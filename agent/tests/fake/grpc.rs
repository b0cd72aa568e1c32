//! The whole gRPC stack in-process over the fake kernel: mTLS with generated
//! certificates, role checks, validation, promiscuous leases, Watch, health,
//! the audit log and the unix socket.

use linkherd_agent::testing;

use std::{sync::Arc, time::Duration};

use linkherd_agent::net::{NetOps, fake::FakeKernel};
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    field_violations,
    model::{IfName, Role},
    pb::{
        self, host_service_client::HostServiceClient,
        interface_service_client::InterfaceServiceClient, watch_interfaces_response::Event,
    },
};
use tonic::Code;

fn fake_with_nic() -> Arc<FakeKernel> {
    let fake = Arc::new(FakeKernel::new());
    fake.add_veth("ens192", "peer0").expect("veth");
    fake
}

async fn iface(fake: &FakeKernel, name: &str) -> linkherd_proto::model::Interface {
    fake.link(&IfName::parse("name", name).expect("name"))
        .await
        .expect("link")
}

fn promisc(name: &str, enabled: bool, lease_seconds: u32) -> pb::SetPromiscuousRequest {
    pb::SetPromiscuousRequest {
        name: name.into(),
        enabled,
        lease_seconds,
    }
}

#[tokio::test]
async fn roles_are_enforced_per_rpc() {
    let pki = Pki::new();
    let fake = fake_with_nic();
    let agent = start_agent(fake.clone(), &pki, None).await;

    for role in [Role::Viewer, Role::Operator] {
        let mut c =
            InterfaceServiceClient::new(agent.channel(&pki, Some(role)).await.expect("connect"));
        let list = c
            .list(pb::ListInterfacesRequest {})
            .await
            .expect("viewer may list");
        assert!(
            list.into_inner()
                .interfaces
                .iter()
                .any(|i| i.name == "ens192")
        );
        let err = c
            .set_promiscuous(promisc("ens192", true, 0))
            .await
            .expect_err("denied");
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(
            err.message(),
            format!(
                "{role} has role {role}, but linkherd.v1.InterfaceService/SetPromiscuous needs role admin"
            )
        );
        let err = c
            .set_mtu(pb::SetMtuRequest {
                name: "ens192".into(),
                mtu: 1400,
            })
            .await
            .expect_err("denied");
        assert_eq!(err.code(), Code::PermissionDenied);
    }
    // Nothing changed in the kernel.
    let nic = iface(&fake, "ens192").await;
    assert_eq!(
        (nic.promiscuous, nic.promiscuity, nic.mtu),
        (false, 0, 1500)
    );

    let mut host = HostServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    let info = host
        .get_info(pb::GetInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    let caller = info.caller.expect("caller");
    assert_eq!(
        (caller.identity.as_str(), caller.role()),
        ("viewer", pb::Role::Viewer)
    );
    assert_eq!(caller.transport, "mtls");
    assert_eq!(info.hostname, "test-host");
    let caps = info.capabilities.expect("caps");
    assert!(!caps.vlan);
    assert!(caps.notes[0].contains("kernel lacks 802.1Q VLAN support (module 8021q)"));
}

#[tokio::test]
async fn clients_without_a_trusted_certificate_are_refused() {
    let pki = Pki::new();
    let agent = start_agent(fake_with_nic(), &pki, None).await;

    // No client certificate: the TLS handshake is refused.
    let res = match agent.channel(&pki, None).await {
        Err(e) => Err(e.to_string()),
        Ok(ch) => InterfaceServiceClient::new(ch)
            .list(pb::ListInterfacesRequest {})
            .await
            .map(|_| ())
            .map_err(|s| format!("{s:?}")),
    };
    let err = res.expect_err("no client certificate must be refused");
    assert!(
        err.contains("CertificateRequired") || err.contains("transport error"),
        "{err}"
    );

    // A certificate from another CA.
    let other = Pki::new();
    let ch = tonic::transport::Endpoint::from_shared(format!("https://{}", agent.addr))
        .expect("endpoint")
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(
                    std::fs::read(pki.path("ca.pem")).expect("ca"),
                ))
                .identity(tonic::transport::Identity::from_pem(
                    std::fs::read(other.path("client-admin.pem")).expect("cert"),
                    std::fs::read(other.path("client-admin-key.pem")).expect("key"),
                )),
        )
        .expect("tls");
    let res = match ch.connect().await {
        Err(e) => Err(e.to_string()),
        Ok(ch) => InterfaceServiceClient::new(ch)
            .list(pb::ListInterfacesRequest {})
            .await
            .map(|_| ())
            .map_err(|s| s.to_string()),
    };
    // Either the handshake fails or the first call does; it never succeeds.
    assert!(res.is_err(), "a certificate from another CA was accepted");
}

#[tokio::test]
async fn a_certificate_without_a_role_is_denied_with_the_fix() {
    let pki = Pki::new();
    let agent = start_agent(fake_with_nic(), &pki, None).await;
    pki.0.issue_client("norole", None);
    let ch = tonic::transport::Endpoint::from_shared(format!("https://{}", agent.addr))
        .expect("endpoint")
        .tls_config(
            pki.client_tls(None)
                .identity(tonic::transport::Identity::from_pem(
                    pki.0.read("client-norole.pem"),
                    pki.0.read("client-norole-key.pem"),
                )),
        )
        .expect("tls")
        .connect()
        .await
        .expect("handshake succeeds: the CA is trusted");
    let err = InterfaceServiceClient::new(ch)
        .list(pb::ListInterfacesRequest {})
        .await
        .expect_err("no role");
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message().contains("carries no linkherd role"),
        "{}",
        err.message()
    );
    assert!(
        err.message()
            .contains("linkherdctl certs issue --client norole"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn bad_input_names_the_field_and_changes_nothing() {
    let pki = Pki::new();
    let fake = fake_with_nic();
    let agent = start_agent(fake.clone(), &pki, None).await;
    let mut c = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );

    for bad in ["", "1234567890123456", "a/b", "a b", ".", ".."] {
        let err = c
            .get(pb::GetInterfaceRequest { name: bad.into() })
            .await
            .expect_err(bad);
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
        let v = field_violations(&err);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].0, "name");
        assert!(
            err.message()
                .starts_with(&format!("invalid name {bad:?}: ")),
            "{}",
            err.message()
        );
    }
    let err = c
        .get(pb::GetInterfaceRequest {
            name: "eth9".into(),
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "interface \"eth9\" not found");

    let err = c
        .set_mtu(pb::SetMtuRequest {
            name: "ens192".into(),
            mtu: 70_000,
        })
        .await
        .expect_err("mtu");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "invalid mtu \"70000\": is outside the MTU range of ens192 (68..=65535); choose an MTU in 68..=65535"
    );
    let err = c
        .set_promiscuous(promisc("ens192", true, 90_000))
        .await
        .expect_err("lease");
    assert_eq!(field_violations(&err)[0].0, "lease_seconds");
    let err = c
        .set_up(pb::SetUpRequest {
            name: "eth9".into(),
            up: true,
        })
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), Code::NotFound);

    let nic = iface(&fake, "ens192").await;
    assert_eq!(
        (nic.mtu, nic.promiscuous, nic.admin_up),
        (1500, false, false)
    );
}

#[tokio::test]
async fn set_calls_are_idempotent_and_report_the_kernel_state() {
    let pki = Pki::new();
    let fake = fake_with_nic();
    let agent = start_agent(fake.clone(), &pki, None).await;
    let mut c = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );

    let r = c
        .set_promiscuous(promisc("ens192", true, 0))
        .await
        .expect("on")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Changed);
    let i = r.interface.expect("iface");
    assert_eq!((i.promiscuous, i.promiscuity), (true, 1));
    let r = c
        .set_promiscuous(promisc("ens192", true, 0))
        .await
        .expect("again")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Unchanged);
    assert_eq!(r.interface.expect("iface").promiscuity, 1);
    assert_eq!(iface(&fake, "ens192").await.promiscuity, 1);

    let r = c
        .set_up(pb::SetUpRequest {
            name: "ens192".into(),
            up: true,
        })
        .await
        .expect("up")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Changed);
    assert_eq!(
        r.interface.expect("iface").admin_state(),
        pb::AdminState::Up
    );
    let r = c
        .set_up(pb::SetUpRequest {
            name: "ens192".into(),
            up: true,
        })
        .await
        .expect("up")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Unchanged);

    let r = c
        .set_mtu(pb::SetMtuRequest {
            name: "ens192".into(),
            mtu: 9000,
        })
        .await
        .expect("mtu")
        .into_inner();
    assert_eq!(
        (r.outcome(), r.interface.expect("i").mtu),
        (pb::Outcome::Changed, 9000)
    );
    assert_eq!(iface(&fake, "ens192").await.mtu, 9000);
}

#[tokio::test]
async fn promisc_lease_reverts_and_renewal_keeps_the_original_state() {
    let pki = Pki::new();
    let fake = fake_with_nic();
    let state = tempfile::tempdir().expect("state");
    let agent = start_agent(fake.clone(), &pki, Some(state.path())).await;
    let mut c = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );

    let r = c
        .set_promiscuous(promisc("ens192", true, 30))
        .await
        .expect("on")
        .into_inner();
    let lease = r.interface.expect("iface").promisc_lease.expect("lease");
    assert!(!lease.revert_to);
    assert!((29..=30).contains(&lease.remaining_seconds), "{lease:?}");
    // Renewed with a short lease: still reverts to the original "off".
    let r = c
        .set_promiscuous(promisc("ens192", true, 1))
        .await
        .expect("renew")
        .into_inner();
    assert_eq!(r.outcome(), pb::Outcome::Unchanged);
    assert!(
        !r.interface
            .expect("iface")
            .promisc_lease
            .expect("lease")
            .revert_to
    );
    let journal =
        std::fs::read_to_string(state.path().join("promisc-leases.json")).expect("journal");
    assert!(journal.contains("\"name\": \"ens192\""), "{journal}");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while iface(&fake, "ens192").await.promiscuous {
        assert!(
            tokio::time::Instant::now() < deadline,
            "lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nic = iface(&fake, "ens192").await;
    assert_eq!(nic.promiscuity, 0);
    let got = c
        .get(pb::GetInterfaceRequest {
            name: "ens192".into(),
        })
        .await
        .expect("get")
        .into_inner();
    assert!(got.interface.expect("iface").promisc_lease.is_none());

    // Audit: who did it, and the agent's own revert.
    let audit = std::fs::read_to_string(state.path().join("audit.log")).expect("audit");
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines[0]["caller"], "admin");
    assert_eq!(lines[0]["action"], "InterfaceService/SetPromiscuous");
    assert_eq!(lines[0]["detail"], "promisc on lease 30s");
    assert_eq!(lines[0]["result"], "changed");
    let last = lines.last().expect("expiry line");
    assert_eq!(last["action"], "lease-expiry");
    assert_eq!(last["result"], "changed");

    // A permanent change cancels a lease.
    c.set_promiscuous(promisc("ens192", true, 1))
        .await
        .expect("lease");
    c.set_promiscuous(promisc("ens192", true, 0))
        .await
        .expect("permanent");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        iface(&fake, "ens192").await.promiscuous,
        "a cancelled lease reverted"
    );
}

#[tokio::test]
async fn journaled_leases_survive_a_restart() {
    let pki = Pki::new();
    let fake = fake_with_nic();
    let nic = iface(&fake, "ens192").await;
    let peer = iface(&fake, "peer0").await;
    fake.set_promisc(nic.index, true).await.expect("on");
    fake.set_promisc(peer.index, true).await.expect("on");
    let state = tempfile::tempdir().expect("state");
    // One lease ended while the agent was down, one is still running.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    std::fs::write(
        state.path().join("promisc-leases.json"),
        serde_json::json!([
            {"index": nic.index, "name": "ens192", "revert_to": false, "deadline": now - 5},
            {"index": peer.index, "name": "peer0", "revert_to": false, "deadline": now + 600},
        ])
        .to_string(),
    )
    .expect("journal");
    let agent = start_agent(fake.clone(), &pki, Some(state.path())).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while iface(&fake, "ens192").await.promiscuous {
        assert!(
            tokio::time::Instant::now() < deadline,
            "expired lease not reverted on start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lease = agent
        .agent
        .context()
        .leases
        .lease_of(peer.index)
        .await
        .expect("re-armed");
    assert!(
        lease.remaining_seconds > 590 && !lease.revert_to,
        "{lease:?}"
    );
    assert!(iface(&fake, "peer0").await.promiscuous);
}

#[tokio::test]
async fn watch_streams_snapshot_sync_then_changes() {
    let pki = Pki::new();
    let fake = fake_with_nic();
    let agent = start_agent(fake.clone(), &pki, None).await;
    let mut viewer = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    let mut admin = InterfaceServiceClient::new(
        agent
            .channel(&pki, Some(Role::Admin))
            .await
            .expect("connect"),
    );
    let mut stream = viewer
        .watch(pb::WatchInterfacesRequest {})
        .await
        .expect("watch")
        .into_inner();
    let mut existing = Vec::new();
    loop {
        match testing::next_event(&mut stream).await {
            Event::Existing(i) => existing.push(i.name),
            Event::Synced(_) => break,
            other => panic!("before sync: {other:?}"),
        }
    }
    assert_eq!(existing, ["lo", "ens192", "peer0"]);

    fake.add_veth("mv-a", "mv-b").expect("veth");
    let added: Vec<String> = [
        testing::next_event(&mut stream).await,
        testing::next_event(&mut stream).await,
    ]
    .into_iter()
    .map(|e| match e {
        Event::Added(i) => i.name,
        other => panic!("expected added: {other:?}"),
    })
    .collect();
    assert_eq!(added, ["mv-a", "mv-b"]);

    admin
        .set_promiscuous(promisc("ens192", true, 0))
        .await
        .expect("promisc");
    match testing::next_event(&mut stream).await {
        Event::Changed(c) => {
            assert_eq!(c.interface.expect("iface").name, "ens192");
            assert_eq!(c.fields, ["flags", "promiscuous", "promiscuity"]);
        }
        other => panic!("expected changed: {other:?}"),
    }
    fake.add_addr("mv-a", "10.0.100.100/24".parse().expect("cidr"))
        .expect("addr");
    match testing::next_event(&mut stream).await {
        Event::Changed(c) => assert_eq!(c.fields, ["addresses"]),
        other => panic!("expected changed: {other:?}"),
    }
    fake.del_link_named("mv-a").expect("del");
    let removed: Vec<String> = [
        testing::next_event(&mut stream).await,
        testing::next_event(&mut stream).await,
    ]
    .into_iter()
    .map(|e| match e {
        Event::Removed(r) => r.name,
        other => panic!("expected removed: {other:?}"),
    })
    .collect();
    assert_eq!(removed, ["mv-a", "mv-b"]);
}

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let pki = Pki::new();
    let agent = start_agent(fake_with_nic(), &pki, None).await;
    let mut h = HealthClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    // Every service of the API, from the compiled descriptors: a new one
    // cannot ship without its health entry (ProbeService once did).
    use prost::Message;
    let fds = prost_types::FileDescriptorSet::decode(linkherd_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut services: Vec<String> = fds
        .file
        .iter()
        .filter(|f| f.package() == "linkherd.v1")
        .flat_map(|f| {
            f.service
                .iter()
                .map(|s| format!("linkherd.v1.{}", s.name()))
        })
        .collect();
    services.sort();
    assert_eq!(
        services,
        [
            "linkherd.v1.AttachmentService",
            "linkherd.v1.HostService",
            "linkherd.v1.InterfaceService",
            "linkherd.v1.MacvlanService",
            "linkherd.v1.NetworkService",
            "linkherd.v1.ProbeService",
            "linkherd.v1.VlanService"
        ]
    );
    for service in std::iter::once(String::new()).chain(services) {
        let r = h
            .check(HealthCheckRequest {
                service: service.clone(),
            })
            .await
            .expect("check")
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }
    let err = h
        .check(HealthCheckRequest {
            service: "linkherd.v1.Nope".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), Code::NotFound);
}

#[tokio::test]
async fn unix_socket_serves_root_as_admin() {
    let fake = fake_with_nic();
    let agent = linkherd_agent::app::Agent::new(fake, Default::default())
        .await
        .expect("agent");
    let dir = tempfile::tempdir().expect("dir");
    let sock = dir.path().join("agent.sock");
    let listener = linkherd_agent::transport::unix::bind_unix(&sock).expect("bind");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&sock).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        agent
            .serve_unix(listener, async {
                let _ = rx.await;
            })
            .await
            .expect("serve")
    });
    let mut host = HostServiceClient::new(testing::unix_channel(&sock).await);
    let info = host
        .get_info(pb::GetInfoRequest {})
        .await
        .expect("info")
        .into_inner();
    let caller = info.caller.expect("caller");
    assert_eq!(caller.transport, "unix");
    assert_eq!(caller.role(), pb::Role::Admin);
    assert_eq!(caller.identity, format!("uid:{}", nix::unistd::geteuid()));
    let _ = tx.send(());
}

#[tokio::test]
async fn reflection_lists_every_linkherd_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let pki = Pki::new();
    let agent = start_agent(fake_with_nic(), &pki, None).await;
    let mut c = ServerReflectionClient::new(
        agent
            .channel(&pki, Some(Role::Viewer))
            .await
            .expect("connect"),
    );
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = c
        .server_reflection_info(futures::stream::iter([req]))
        .await
        .expect("reflection")
        .into_inner();
    let resp = futures::StreamExt::next(&mut stream)
        .await
        .expect("one response")
        .expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection response: {resp:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for want in [
        "grpc.health.v1.Health",
        "linkherd.v1.HostService",
        "linkherd.v1.InterfaceService",
        "linkherd.v1.MacvlanService",
        "linkherd.v1.ProbeService",
        "linkherd.v1.VlanService",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}
