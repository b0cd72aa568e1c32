//! Whether a test that needs root may run, or must skip — loudly.

/// True when this process is root. Without root a root test is skipped with
/// a line on stderr — unless `LINKHERD_REQUIRE_ROOT=1` (as CI sets), where
/// skipping would hide a failure, so it panics instead.
pub fn have_root(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("LINKHERD_REQUIRE_ROOT").as_deref() != Ok("1"),
        "{what} needs root (CAP_NET_ADMIN), and LINKHERD_REQUIRE_ROOT=1 forbids skipping"
    );
    eprintln!("SKIPPED {what}: needs root (CAP_NET_ADMIN); run as root to include it");
    false
}
