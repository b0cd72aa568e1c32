//! Docker with linkherd's driver next to Docker's own macvlan driver, on
//! one engine (Debian's dockerd, started here in the host namespace with
//! its own roots) and one parent, in the same run: `docker run -d` and
//! `docker rm -f` of N containers on each network, and `docker network
//! connect` and `disconnect` of each network to N running containers of
//! the other (a second interface). The
//! agent's `handover.*` phases are reported with the linkherd rows. N is at
//! most [`MAX_CONTAINERS`]: a container start costs Docker far more than
//! its network does.

use std::{path::Path, time::Instant};

use anyhow::{Context, ensure};
use linkherd_lab::docker::{Dockerd, busybox_rootfs};
use linkherd_proto::pb;
use tonic::transport::Channel;

use crate::{Bench, cni::set_catalog, phases::Phases, report::Report};

pub(crate) const MAX_CONTAINERS: usize = 50;
const IMAGE: &str = "lh-bench-busybox";

fn catalog() -> pb::CatalogNetwork {
    pb::CatalogNetwork {
        name: "benchd".into(),
        parent: "up0".into(),
        mode: pb::MacvlanMode::Bridge.into(),
        v4: Some(pb::CatalogPool {
            subnet: "10.131.0.0/16".into(),
            gateway: "10.131.0.1".into(),
            blocks: vec!["10.131.16.0/20".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn docker(d: &Dockerd, args: &[&str]) -> anyhow::Result<()> {
    let out = d.docker(args);
    ensure!(
        out.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// `docker ARGS-with-{i}` for each of `n` containers, timed as one row.
fn timed(
    d: &Dockerd,
    report: &mut Report,
    what: &str,
    n: usize,
    args: &[&str],
) -> anyhow::Result<()> {
    let started = Instant::now();
    for i in 0..n {
        let name = format!("lhb{i}");
        let a: Vec<&str> = args
            .iter()
            .map(|a| if *a == "{i}" { name.as_str() } else { a })
            .collect();
        docker(d, &a)?;
    }
    report.row_n(what, n, started.elapsed());
    Ok(())
}

/// The two networks on `up0`: linkherd's `benchd` and Docker's `benchm`.
fn networks(d: &Dockerd) -> anyhow::Result<()> {
    let linkherd = "network create -d linkherd --ipam-driver linkherd --subnet=10.131.0.0/16 \
                    --gateway=10.131.0.1 -o parent=up0 benchd";
    let macvlan = "network create -d macvlan --subnet=10.132.0.0/16 --gateway=10.132.0.1 \
                   -o parent=up0 benchm";
    for cmd in [linkherd, macvlan] {
        docker(d, &cmd.split_whitespace().collect::<Vec<_>>())?;
    }
    Ok(())
}

/// Every row, for both drivers; the linkherd rows with the agent's phases.
fn measure(d: &Dockerd, n: usize, phases: &Phases) -> anyhow::Result<Report> {
    let mut rows = Report::new(n);
    let run = |net| {
        [
            "run",
            "-d",
            "--name",
            "{i}",
            "--network",
            net,
            IMAGE,
            "sleep",
            "3600",
        ]
    };
    let drivers = [
        ("benchd", "linkherd", "benchm"),
        ("benchm", "Docker's macvlan", "benchd"),
    ];
    for (net, who, other) in drivers {
        let with_phases = |rows: &mut Report| {
            if net == "benchd" {
                rows.phases(phases.take(n));
            }
        };
        phases.take(n);
        timed(
            d,
            &mut rows,
            &format!("docker run -d ({who} driver)"),
            n,
            &run(net),
        )?;
        with_phases(&mut rows);
        let rm = ["rm", "-f", "{i}"];
        timed(
            d,
            &mut rows,
            &format!("docker rm -f ({who} driver)"),
            n,
            &rm,
        )?;
        // A second interface for running containers of the other driver.
        timed(d, &mut Report::new(n), "", n, &run(other))?;
        phases.take(n);
        let connect = ["network", "connect", net, "{i}"];
        timed(
            d,
            &mut rows,
            &format!("docker network connect ({who} driver)"),
            n,
            &connect,
        )?;
        with_phases(&mut rows);
        let disconnect = ["network", "disconnect", net, "{i}"];
        let what = format!("docker network disconnect ({who} driver)");
        timed(d, &mut rows, &what, n, &disconnect)?;
        timed(d, &mut Report::new(n), "", n, &rm)?;
    }
    Ok(rows)
}

pub(crate) async fn rows(
    ch: &Channel,
    plugins: &Path,
    b: &Bench,
    report: &mut Report,
) -> anyhow::Result<()> {
    if !Path::new("/usr/sbin/dockerd").exists() {
        report.note("(dockerd not installed: apt-get install docker.io)");
        return Ok(());
    }
    set_catalog(ch, "benchd", vec![catalog()]).await?;
    let dir = tempfile::tempdir()?;
    let (host, plugins_dir, root) = (b.host.clone(), plugins.to_owned(), dir.path().to_owned());
    let n = report.count.min(MAX_CONTAINERS);
    let phases = b.phases.clone();
    // dockerd and its client block; the agent answers on the runtime meanwhile.
    let rows = tokio::task::spawn_blocking(move || {
        let d = Dockerd::start_in(&host, &plugins_dir, &root.join("engine")).context("dockerd")?;
        d.import(&busybox_rootfs(&root)?, IMAGE)?;
        networks(&d)?;
        measure(&d, n, &phases)
    })
    .await??;
    report.extend(rows);
    set_catalog(ch, "benchd", Vec::new()).await
}
