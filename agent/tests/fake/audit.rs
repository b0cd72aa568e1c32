//! T1: refused calls reach the audit log — who, which RPC, why (issue 11,
//! problem 9: they never did).

use linkherd_agent::testing;

use std::sync::Arc;

use linkherd_agent::net::fake::FakeKernel;
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    model::Role,
    pb::{self, vlan_service_client::VlanServiceClient},
};
use tonic::Code;

#[tokio::test]
async fn refusals_are_audited_with_who_what_and_why() {
    let dir = tempfile::tempdir().expect("state");
    let fake = Arc::new(FakeKernel::new());
    fake.add_veth("ens192", "peer0").expect("nic");
    let pki = Pki::new();
    let agent = start_agent(fake, &pki, Some(dir.path())).await;
    let create = || pb::CreateVlanRequest {
        parent: "ens192".into(),
        id: 10,
        ..Default::default()
    };
    let viewer = agent
        .channel(&pki, Some(Role::Viewer))
        .await
        .expect("viewer");
    let err = VlanServiceClient::new(viewer)
        .create(create())
        .await
        .expect_err("a viewer may not");
    assert_eq!(err.code(), Code::PermissionDenied);

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
        .expect("the CA is trusted");
    let err = VlanServiceClient::new(ch)
        .create(create())
        .await
        .expect_err("no role");
    assert_eq!(err.code(), Code::PermissionDenied);

    let lines = testing::audit_records(dir.path(), "VlanService/Create", 2).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["caller"], "viewer");
    assert_eq!(lines[0]["role"], "viewer");
    assert_eq!(lines[0]["transport"], "mtls");
    assert_eq!(lines[0]["result"], "refused");
    assert_eq!(
        lines[0]["detail"],
        "viewer has role viewer, but linkherd.v1.VlanService/Create needs role admin"
    );
    assert_eq!(lines[1]["caller"], "unidentified");
    assert_eq!(lines[1]["role"], "none");
    assert_eq!(lines[1]["result"], "refused");
    assert!(
        lines[1]["detail"]
            .as_str()
            .expect("detail")
            .contains("carries no linkherd role"),
        "{lines:?}"
    );
}
