//! T1: the local admin socket and the state directory cannot be taken over
//! by a local user, whatever the umask (issue 11, problem 13). One test in
//! its own binary: it changes the process's umask.

use linkherd_agent::testing;

use std::{os::unix::fs::PermissionsExt, sync::Arc};

use linkherd_agent::{
    app::{Agent, AgentOptions},
    net::fake::FakeKernel,
    transport::unix::bind_unix,
};
use linkherd_proto::pb::{self, host_service_client::HostServiceClient};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o7777
}

#[tokio::test]
async fn socket_and_state_are_private_under_umask_000_and_a_live_socket_is_kept() {
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let tmp = tempfile::tempdir().expect("tmp");
    let state = tmp.path().join("state");
    let agent = Agent::new(
        Arc::new(FakeKernel::new()),
        AgentOptions {
            state_dir: Some(state.clone()),
            ..AgentOptions::default()
        },
    )
    .await
    .expect("agent");
    assert_eq!(mode(&state), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(&state).expect("state dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
            files += 1;
        }
    }
    assert!(files >= 1, "the audit log at least");

    // The socket's directory does not exist yet: created 0700.
    let sock = tmp.path().join("run/linkherd/agent.sock");
    let listener = bind_unix(&sock).expect("bind");
    assert_eq!(mode(sock.parent().expect("dir")), 0o700);
    assert_eq!(mode(&sock), 0o600);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        agent
            .serve_unix(listener, async {
                let _ = rx.await;
            })
            .await
            .expect("serve")
    });

    // A second agent given the same socket refuses, and the first still
    // answers on it.
    let err = bind_unix(&sock).expect_err("in use");
    assert!(
        err.to_string()
            .contains("is in use: another agent serves on it"),
        "{err}"
    );
    let info = HostServiceClient::new(testing::unix_channel(&sock).await)
        .get_info(pb::GetInfoRequest {})
        .await
        .expect("the first agent still serves")
        .into_inner();
    assert_eq!(info.caller.expect("caller").transport, "unix");

    // A directory others may write to is refused.
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).expect("dir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let err = bind_unix(&open.join("agent.sock")).expect_err("world-writable");
    assert!(
        err.to_string().contains("is writable by others (mode 777)"),
        "{err}"
    );
    assert!(!open.join("agent.sock").exists());
    let _ = tx.send(());
}
