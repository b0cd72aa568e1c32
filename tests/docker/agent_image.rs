//! The agent's container image (deploy/image/Dockerfile), built from scratch
//! with the static agent by `docker build` on a Docker engine of the lab's
//! no1, and run for real as deploy/kubernetes/daemonset.yaml runs it — its
//! image name, arguments, capabilities, mounts (host paths under the test's
//! directory) and readiness probe, with the host's network: the probe's
//! `/healthz` answers SERVING without a certificate, and the agent answers
//! `host info` over mTLS with the lab's certificates.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use linkherd_lab::{
    LabState, bins,
    docker::Dockerd,
    fleet::{ctl_at, seed_lab, text},
};
use serde_json::Value;
use test_support::have_root;

/// The port the test's agent listens on beside the lab agent's 7443 on
/// no1's management address.
const PORT: u16 = 7543;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `docker build` of the Dockerfile with the static agent as its context.
fn build(d: &Dockerd, ctx: &Path, tag: &str) {
    std::fs::create_dir_all(ctx).expect("context");
    let agent = bins::guest_agent().expect("the static agent (scripts/build-guest-agent.sh)");
    std::fs::copy(&agent, ctx.join("linkherd-agent")).expect("copy the agent");
    std::fs::copy(
        repo().join("deploy/image/Dockerfile"),
        ctx.join("Dockerfile"),
    )
    .expect("copy");
    let out = d.docker(&["build", "-q", "-t", tag, &ctx.to_string_lossy()]);
    assert!(out.status.success(), "docker build: {}", text(&out.stderr));
    let inspect = d.docker(&["image", "inspect", tag]);
    let img: serde_json::Value = serde_json::from_slice(&inspect.stdout).expect("inspect json");
    assert_eq!(
        img[0]["Config"]["Entrypoint"],
        serde_json::json!(["/linkherd-agent"])
    );
    assert_eq!(
        img[0]["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(1),
        "from scratch: one layer, the binary"
    );
    let size = img[0]["Size"].as_u64().expect("size");
    let binary = std::fs::metadata(&agent).expect("agent").len();
    assert!(
        size <= binary + 64 * 1024,
        "image {size} B, agent {binary} B"
    );
}

/// The kubelet's probe: `url` from inside no1's namespace (the node's
/// loopback), with busybox's wget.
fn healthz(netns: &str, url: &str) -> Option<String> {
    let out = Command::new("ip")
        .args([
            "netns", "exec", netns, "busybox", "wget", "-q", "-O", "-", url,
        ])
        .output()
        .ok()?;
    out.status.success().then(|| text(&out.stdout))
}

/// The pod template's spec of deploy/kubernetes/daemonset.yaml.
fn daemonset() -> Value {
    let text =
        std::fs::read_to_string(repo().join("deploy/kubernetes/daemonset.yaml")).expect("yaml");
    let ds: Value = serde_saphyr::from_str(&text).expect("the DaemonSet parses");
    ds["spec"]["template"]["spec"].clone()
}

/// `docker run` of the pod's container: its capabilities, its env (the
/// node name is no1), its mounts (host paths under `host`, the Secret the
/// lab's certificates of no1), its args with `--listen` on `listen`
/// (0.0.0.0:7443 is the lab agent's here).
fn run_args(state: &LabState, pod: &Value, host: &Path, listen: &str) -> Vec<String> {
    let c = &pod["containers"][0];
    let mut run: Vec<String> = ["run", "-d", "--name", "lh-agent-image", "--network", "host"]
        .map(String::from)
        .to_vec();
    for cap in c["securityContext"]["capabilities"]["add"]
        .as_array()
        .expect("caps")
    {
        run.extend(["--cap-add".into(), cap.as_str().expect("cap").to_owned()]);
    }
    run.extend(["-e".into(), "LINKHERD_NAME=no1".into()]);
    let pki = host.join("secret");
    std::fs::create_dir_all(&pki).expect("pki");
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("agent-no1.pem", "agent.pem"),
        ("agent-no1-key.pem", "agent-key.pem"),
    ] {
        std::fs::copy(state.pki().join(from), pki.join(to)).expect("certificate");
    }
    let volumes = pod["volumes"].as_array().expect("volumes");
    for m in c["volumeMounts"].as_array().expect("mounts") {
        let v = volumes
            .iter()
            .find(|v| v["name"] == m["name"])
            .expect("volume of the mount");
        let src = match v["hostPath"]["path"].as_str() {
            Some(p) => host.join(p.trim_start_matches('/')),
            None => pki.clone(),
        };
        std::fs::create_dir_all(&src).expect("host path");
        let ro = if m["readOnly"] == true { ":ro" } else { "" };
        run.extend([
            "-v".into(),
            format!(
                "{}:{}{ro}",
                src.display(),
                m["mountPath"].as_str().expect("path")
            ),
        ]);
    }
    run.push(c["image"].as_str().expect("image").to_owned());
    for a in c["args"].as_array().expect("args") {
        let a = a.as_str().expect("arg");
        run.push(match a.strip_prefix("--listen=") {
            Some(_) => format!("--listen={listen}"),
            None => a.to_owned(),
        });
    }
    run
}

#[tokio::test(flavor = "multi_thread")]
async fn the_agent_image_runs_with_host_networking_and_answers_over_mtls() {
    let _one = crate::ONE_AT_A_TIME.lock().await;
    if !have_root("the agent image") {
        return;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("agent-image");
    let (state, _guard) = seed_lab(&dir).await;
    let d = Dockerd::start(&state, "no1", &dir.join("engine")).expect("dockerd");
    let h = state.host("no1").expect("no1").clone();
    let pod = daemonset();
    let c = &pod["containers"][0];
    let tag = format!("linkherd/agent:{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(
        c["image"],
        tag.as_str(),
        "the DaemonSet names the image built here"
    );
    build(&d, &dir.join("context"), &tag);
    let run = run_args(
        &state,
        &pod,
        &dir.join("host"),
        &format!("{}:{PORT}", h.mgmt_ip),
    );
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let out = d.docker(&run);
    assert!(out.status.success(), "docker run: {}", text(&out.stderr));

    let probe = &c["readinessProbe"]["httpGet"];
    let url = format!(
        "http://{}:{}{}",
        probe["host"].as_str().expect("host"),
        probe["port"],
        probe["path"].as_str().expect("path")
    );
    let mut health = None;
    for _ in 0..100 {
        health = healthz(&h.netns, &url);
        if health.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = || text(&d.docker(&["logs", "lh-agent-image"]).stderr);
    assert_eq!(health.as_deref(), Some("SERVING\n"), "{}", logs());
    assert!(
        dir.join("host/run/docker/plugins/linkherd.sock").exists(),
        "the Docker plugin socket on the host path: {}",
        logs()
    );

    let pki = state.pki();
    let url = format!("https://{}:{PORT}", h.mgmt_ip);
    let out = ctl_at(&url, &pki, &["host", "info", "-o", "json"]);
    assert!(out.status.success(), "{}\n{}", text(&out.stderr), logs());
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(info["caller"]["transport"], "mtls", "{info}");
    assert_eq!(info["caller"]["role"], "admin", "{info}");
    assert_eq!(info["agent_version"], env!("CARGO_PKG_VERSION"), "{info}");
    assert_eq!(info["capabilities"]["macvlan"], true, "{info}");
}
