//! A full state directory (root: a 64 KiB tmpfs, filled): a step whose undo
//! cannot be written is not made. Apply, MacvlanService.Create and a leased
//! SetPromiscuous fail naming the file and "No space left on device", and
//! the fake kernel is as it was; with space again the same Apply succeeds.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use linkherd_agent::net::{NetOps, fake::FakeKernel};
use linkherd_agent::testing::{Pki, start_agent};
use linkherd_proto::{
    model::Role,
    pb::{
        self, host_service_client::HostServiceClient,
        interface_service_client::InterfaceServiceClient,
        macvlan_service_client::MacvlanServiceClient, netns_target::Target,
    },
};
use tonic::Code;

/// A tmpfs mounted on a temporary directory, unmounted when dropped (also
/// when the test fails).
struct TinyTmpfs {
    dir: tempfile::TempDir,
}

impl TinyTmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        nix::mount::mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .expect("mount tmpfs");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the tmpfs has no space left; returns it.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let chunk = [0u8; 4096];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        // The last page can be short: fill it byte by byte.
        while f.write(&[0]).is_ok_and(|n| n == 1) {}
        path
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(self.dir.path(), nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("cannot unmount {}: {e}", self.dir.path().display());
        }
    }
}

fn endpoint(name: &str, ip: &str) -> pb::MacvlanEndpoint {
    pb::MacvlanEndpoint {
        network: "mac_net".into(),
        name: name.into(),
        parent: "ens192".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        netns: Some(pb::NetnsTarget {
            target: Some(Target::Name(name.into())),
        }),
        addresses: vec![ip.into()],
        ..Default::default()
    }
}

fn apply(eps: Vec<pb::MacvlanEndpoint>) -> pb::ApplyRequest {
    pb::ApplyRequest {
        desired: Some(pb::DesiredState {
            endpoints: eps,
            ..Default::default()
        }),
        confirm_timeout_seconds: 60,
        ..Default::default()
    }
}

/// The files (not directories) under `dir`, recursively, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("ls") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// What the fake kernel has: host links and named namespaces.
async fn kernel(fake: &FakeKernel) -> (Vec<String>, Vec<String>) {
    let links = fake
        .links()
        .await
        .expect("links")
        .into_iter()
        .map(|l| format!("{} {:?} promisc={}", l.name, l.alias, l.promiscuous))
        .collect();
    let mut ns = fake.netns_names().await.expect("netns");
    ns.sort();
    (links, ns)
}

#[tokio::test]
async fn a_full_state_directory_fails_the_request_and_changes_nothing() {
    if !test_support::have_root("the full-tmpfs state directory test (mount)") {
        return;
    }
    let tmpfs = TinyTmpfs::mount("64k");
    let state = tmpfs.path().join("state");
    let fake = Arc::new(FakeKernel::with_vlan_support());
    fake.add_veth("ens192", "sw").expect("nic");
    let pki = Pki::new();
    let agent = start_agent(fake.clone(), &pki, Some(&state)).await;
    let ch = agent.channel(&pki, Some(Role::Admin)).await.expect("admin");
    let mut host = HostServiceClient::new(ch.clone());
    let mut mv = MacvlanServiceClient::new(ch.clone());
    let mut ifs = InterfaceServiceClient::new(ch);

    let filler = tmpfs.fill();
    let before = kernel(&fake).await;
    let files_before = files(&state);

    // Apply: the step's undo cannot be written, so the step is not made.
    let err = host
        .apply(apply(vec![endpoint("b1", "10.0.100.10/24")]))
        .await
        .expect_err("apply on a full disk");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    let prefix = format!(
        "endpoint mac_net/b1 failed: state directory full or read-only: cannot write {}/txn/txn-",
        state.display()
    );
    assert!(err.message().starts_with(&prefix), "{}", err.message());
    assert!(
        err.message().contains(
            "+000001.json: No space left on device (os error 28); free space in it (or make \
             it writable) and retry; everything done before it was rolled back"
        ),
        "{}",
        err.message()
    );
    assert_eq!(kernel(&fake).await, before, "the kernel changed");
    assert_eq!(files(&state), files_before, "a file was left behind");

    // MacvlanService.Create: the registry record cannot be written.
    let err = mv
        .create(pb::CreateMacvlanRequest {
            endpoint: Some(endpoint("b2", "10.0.100.12/24")),
            create_netns: true,
        })
        .await
        .expect_err("create on a full disk");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    let record = state.join("endpoints/mac_net+b2.json");
    assert!(
        err.message().contains(&format!(
            "cannot write {}: No space left on device (os error 28)",
            record.display()
        )),
        "{}",
        err.message()
    );
    assert_eq!(kernel(&fake).await, before, "the kernel changed");
    assert_eq!(files(&state), files_before, "a file was left behind");

    // A leased promiscuous mode: the lease journal cannot be written.
    let err = ifs
        .set_promiscuous(pb::SetPromiscuousRequest {
            name: "ens192".into(),
            enabled: true,
            lease_seconds: 30,
        })
        .await
        .expect_err("lease on a full disk");
    assert_eq!(err.code(), Code::FailedPrecondition, "{}", err.message());
    assert!(
        err.message().contains(&format!(
            "cannot write {}: No space left on device (os error 28)",
            state.join("promisc-leases.json").display()
        )),
        "{}",
        err.message()
    );
    assert_eq!(kernel(&fake).await, before, "the kernel changed");
    assert_eq!(files(&state), files_before, "a file was left behind");

    // With space again the same request goes through and is journaled.
    std::fs::remove_file(filler).expect("free space");
    let applied = host
        .apply(apply(vec![endpoint("b1", "10.0.100.10/24")]))
        .await
        .expect("apply with space")
        .into_inner();
    assert_ne!(kernel(&fake).await, before);
    let journal = files(&state.join("txn"));
    assert_eq!(
        journal,
        [state.join(format!("txn/{}+000001.json", applied.txn_id))]
    );
    host.rollback(pb::RollbackRequest {
        txn_id: applied.txn_id,
    })
    .await
    .expect("rollback");
    assert_eq!(kernel(&fake).await, before);
    drop(agent);
}
