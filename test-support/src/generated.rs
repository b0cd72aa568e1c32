//! Files generated from the code (CLI reference, man pages, schemas) are
//! committed, and a test keeps them current: it fails when the committed
//! file differs from what the code generates now, and says how to refresh.

use std::path::Path;

/// Compares `path` with `generated`. With `LINKHERD_BLESS=1` it writes the
/// file instead (how a developer refreshes it); otherwise a difference fails
/// the test naming the file and the command that refreshes it.
pub fn check(path: &Path, generated: &[u8], refresh: &str) {
    if std::env::var("LINKHERD_BLESS").as_deref() == Ok("1") {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create directory");
        }
        std::fs::write(path, generated).expect("write generated file");
        return;
    }
    let committed = std::fs::read(path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is not what the code generates now; refresh it with `{refresh}`",
        path.display()
    );
}
