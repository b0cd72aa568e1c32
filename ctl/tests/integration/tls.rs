//! Connecting to a real in-process agent with the wrong credentials: each
//! failure carries the hint its TLS cause calls for, found from the rustls
//! (or hyper) error type, not from the message's words.

use std::sync::Arc;

use linkherd_agent::{app::AgentOptions, net::fake::FakeKernel, testing, transport::tls::TlsPem};
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};
use linkherdctl::client::{ConnectCause, ConnectError, RpcError, Target, TlsHint};
use test_support::Pki;

async fn agent(pki: &Pki) -> testing::InProcessAgent {
    let tls = TlsPem {
        cert: pki.read("agent-agent.pem"),
        key: pki.read("agent-agent-key.pem"),
        client_ca: pki.read("ca.pem"),
    };
    testing::start(Arc::new(FakeKernel::new()), AgentOptions::default(), tls)
        .await
        .expect("agent")
}

/// The hint of a failed connect, or of the first call when the handshake
/// only fails there (TLS 1.3 checks the client certificate after it).
async fn hint(target: Target) -> Option<TlsHint> {
    match target.connect().await {
        Err(ConnectError::Failed {
            cause: ConnectCause::Transport { hint, .. },
            ..
        }) => hint,
        Err(e) => panic!("not a transport failure: {e}"),
        Ok(ch) => {
            let err = HostServiceClient::new(ch)
                .get_info(pb::GetInfoRequest {})
                .await
                .expect_err("refused");
            let h = TlsHint::of(&err);
            // The printed error carries the same advice.
            if let Some(h) = h {
                assert!(RpcError::from(err).to_string().contains(h.advice()));
            }
            h
        }
    }
}

#[tokio::test]
async fn each_wrong_credential_gets_its_own_hint() {
    let pki = Pki::new();
    let a = agent(&pki).await;
    let url = format!("https://{}", a.addr);
    let other = Pki::new();

    // The agent's certificate is not signed by the CA we trust.
    let wrong_ca = Target::parse(
        &url,
        Some(other.path("ca.pem")),
        Some(pki.path("client-admin.pem")),
        Some(pki.path("client-admin-key.pem")),
    )
    .expect("target");
    assert_eq!(hint(wrong_ca).await, Some(TlsHint::AgentCertUntrusted));

    // Our client certificate is signed by a CA the agent does not trust.
    let untrusted = Target::parse(
        &url,
        Some(pki.path("ca.pem")),
        Some(other.path("client-admin.pem")),
        Some(other.path("client-admin-key.pem")),
    )
    .expect("target");
    let h = hint(untrusted).await;
    assert!(h == Some(TlsHint::ClientCertUntrusted), "{h:?}");

    // The agent is dialled by a name its certificate does not carry.
    let by_name = Target::parse(
        &format!("https://localhost:{}", a.addr.port()),
        Some(pki.path("ca.pem")),
        Some(pki.path("client-admin.pem")),
        Some(pki.path("client-admin-key.pem")),
    )
    .expect("target");
    assert_eq!(hint(by_name).await, Some(TlsHint::AgentCertWrongName));
}
