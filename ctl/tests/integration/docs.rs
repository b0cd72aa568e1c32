//! docs/cli.md and docs/man/linkherdctl*.1 are generated from the clap
//! definitions; this test regenerates them and fails when the committed
//! files differ (refresh: `LINKHERD_BLESS=1 cargo test -p linkherdctl --test integration docs::`).

use std::path::{Path, PathBuf};

use linkherdctl::cli::docs;

const REFRESH: &str = "LINKHERD_BLESS=1 cargo test -p linkherdctl --test integration docs::";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn cli_reference_is_current() {
    let md = docs::markdown();
    test_support::generated::check(&repo().join("docs/cli.md"), md.as_bytes(), REFRESH);
}

#[test]
fn man_pages_are_current() {
    let dir = repo().join("docs/man");
    let pages = docs::man_pages().expect("render man pages");
    let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"linkherdctl.1"), "{names:?}");
    assert!(names.contains(&"linkherdctl-plan.1"), "{names:?}");
    for (name, page) in &pages {
        test_support::generated::check(&dir.join(name), page, REFRESH);
    }
    // No page left behind for a command that is gone.
    let committed: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("linkherdctl") && n.ends_with(".1"))
                .collect()
        })
        .unwrap_or_default();
    for c in committed {
        assert!(
            names.contains(&c.as_str()),
            "docs/man/{c} is for no command; delete it"
        );
    }
}

#[test]
fn the_reference_lists_the_exit_codes_and_every_command() {
    let md = docs::markdown();
    assert!(md.contains("| 64 | usage:"), "{md}");
    assert!(md.contains("| 2 | plan/status: the fleet differs"), "{md}");
    for cmd in [
        "linkherdctl plan",
        "linkherdctl apply",
        "linkherdctl completion",
    ] {
        assert!(md.contains(&format!("## `{cmd}`")), "{cmd} missing");
    }
}
