//! Issue 25: linkherdctl never prints a control character it got from an
//! agent. The real binary against an in-process agent whose kernel holds a
//! link alias with a terminal escape, a carriage return and a bell (as a
//! tenant can write into its own namespace): every output escapes them.

use std::{process::Command, sync::Arc};

use linkherd_agent::{
    net::{NetOps, fake::FakeKernel},
    testing::{Pki, start_agent},
};
use linkherd_proto::model::IfName;

const HOSTILE: &str = "ghost\u{1b}[2J\rX\u{7}";

#[tokio::test(flavor = "multi_thread")]
async fn control_characters_from_an_agent_are_escaped_in_every_format() {
    let fake = Arc::new(FakeKernel::new());
    fake.add_veth("ens192", "sw0").expect("nic");
    let nic = fake
        .link(&IfName::parse("name", "ens192").expect("name"))
        .await
        .expect("nic");
    fake.set_alias(nic.index, HOSTILE).await.expect("alias");
    let pki = Pki::new();
    let agent = start_agent(fake, &pki, None).await;
    let url = format!("https://{}", agent.addr);
    for format in ["table", "json", "yaml"] {
        let out = Command::new(env!("CARGO_BIN_EXE_linkherdctl"))
            .args(["--agent", &url, "-o", format, "if", "get", "ens192"])
            .arg("--ca")
            .arg(pki.path("ca.pem"))
            .arg("--cert")
            .arg(pki.path("client-viewer.pem"))
            .arg("--key")
            .arg(pki.path("client-viewer-key.pem"))
            .env_remove("LINKHERD_CTL_CONFIG")
            .output()
            .expect("run linkherdctl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("ghost"),
            "{format}: the alias is not shown: {stdout}"
        );
        let raw: Vec<char> = stdout
            .chars()
            .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
            .collect();
        assert!(raw.is_empty(), "{format}: printed raw {raw:?}: {stdout:?}");
    }
}
