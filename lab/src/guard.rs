//! A guard that takes a lab down when the test that made it ends, passed
//! or failed.

use std::path::PathBuf;

/// Takes the lab in this directory down when dropped.
#[derive(Debug)]
pub struct LabGuard(pub PathBuf);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = crate::down(&self.0) {
            eprintln!("lab down failed: {e}");
        }
    }
}
