//! The fuzz suites' proptest configuration, in one place.

use proptest::test_runner::Config;

/// `default` cases per property, or `PROPTEST_CASES` when set (for the
/// longer runs ctl/tests/corpus/README.md describes).
pub fn config(default: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        ..Config::default()
    }
}
