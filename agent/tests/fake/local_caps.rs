//! T1: the local listeners have a connection cap too (issue 11, "caps on
//! every listener"). Before, a local client opening connections without
//! end on the unix socket took every descriptor the agent had.

use std::{sync::Arc, time::Duration};

use linkherd_agent::{
    app::{Agent, AgentOptions, Limits},
    net::fake::FakeKernel,
    transport::unix::bind_unix,
};
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};

/// A GetInfo over a new connection: whether it was answered.
async fn answered(sock: &std::path::Path) -> bool {
    let path = sock.to_owned();
    let call = async move {
        let ch = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
                }
            }))
            .await
            .ok()?;
        let mut c = HostServiceClient::new(ch);
        c.get_info(pb::GetInfoRequest {}).await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), call).await,
        Ok(Some(_))
    )
}

#[tokio::test]
async fn unix_connections_over_the_cap_are_closed_and_places_come_back() {
    let tmp = tempfile::tempdir().expect("tmp");
    let agent = Agent::new(
        Arc::new(FakeKernel::new()),
        AgentOptions {
            limits: Limits {
                local_connections: 4,
                ..Limits::default()
            },
            ..AgentOptions::default()
        },
    )
    .await
    .expect("agent");
    let sock = tmp.path().join("run/agent.sock");
    let listener = bind_unix(&sock).expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        agent.serve_unix(listener, stop).await.expect("serve")
    });
    assert!(answered(&sock).await, "a first client is served");

    // Four idle connections take every place.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(
            tokio::net::UnixStream::connect(&sock)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !answered(&sock).await,
        "a fifth connection was served over the cap of 4"
    );

    // Their places come back when they go.
    drop(idle);
    let mut served = false;
    for _ in 0..50 {
        if answered(&sock).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        served,
        "no place came back after the idle connections closed"
    );
    let _ = tx.send(());
}
