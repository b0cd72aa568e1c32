//! T2: an agent whose kernel calls are refused (EPERM) answers
//! FAILED_PRECONDITION with the fix — never PERMISSION_DENIED, which means a
//! caller's role was refused.
//!
//! Capabilities are per thread on Linux, and the agent's netlink thread
//! inherits them from the thread that starts it; so this test starts the
//! netlink backend on a thread that dropped CAP_NET_ADMIN from its effective
//! set, and asks it to change a link the test made.

use linkherd_agent::{error::Error, net::NetOps, net::rtnl::Rtnl};
use test_support::{TestNetns, have_root};
use tonic::{Code, Status};

const CAP_NET_ADMIN: u32 = 12;
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Clears `cap` from this thread's effective set (it stays permitted).
fn drop_effective(cap: u32) {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data words, as
    // capget(2) documents; pid 0 is the calling thread.
    let got = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(got, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << cap);
    // SAFETY: as above.
    let set = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(set, 0, "capset: {}", std::io::Error::last_os_error());
}

#[test]
fn a_kernel_refusal_is_a_failed_precondition_with_the_fix() {
    if !have_root("a_kernel_refusal_is_a_failed_precondition_with_the_fix") {
        return;
    }
    let ns = TestNetns::new("eperm");
    ns.ip(&[
        "link", "add", "ep-a", "type", "veth", "peer", "name", "ep-b",
    ]);
    let path = ns.path();
    let status = std::thread::spawn(move || {
        drop_effective(CAP_NET_ADMIN);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let net = Rtnl::in_netns(path).expect("netlink in the namespace");
            let name = linkherd_proto::model::IfName::parse("name", "ep-a").expect("name");
            let link = net.link(&name).await.expect("reading needs no privilege");
            let err = net.set_up(link.index, true).await.expect_err("refused");
            Status::from(Error::from(err))
        })
    })
    .join()
    .expect("test thread");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("CAP_NET_ADMIN"),
        "the message names the fix: {}",
        status.message()
    );
    // Nothing changed: the link is still down.
    let link = ns.link_json("ep-a");
    assert_eq!(link["operstate"], "DOWN", "{link}");
    assert!(
        !link["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP"),
        "{link}"
    );
}
