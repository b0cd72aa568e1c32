//! The CNI spec versions this plugin speaks, and which one to answer in.

use std::fmt;

use crate::error::{CniError, Code};

/// A spec version the plugin supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    /// Every supported version, oldest first (what VERSION reports).
    pub const ALL: [CniVersion; 3] = [CniVersion::V0_4_0, CniVersion::V1_0_0, CniVersion::V1_1_0];
    /// The newest, for answers that come before any configuration is read.
    pub const NEWEST: CniVersion = CniVersion::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// The version to answer a configuration in: the newest of its
    /// `cniVersions` (1.1.0's list) this plugin speaks, else its
    /// `cniVersion`; refused (code 1) when it speaks none of them.
    pub fn negotiate(version: &str, versions: &[String]) -> Result<Self, CniError> {
        if let Some(v) = versions.iter().filter_map(|v| Self::parse(v)).max() {
            return Ok(v);
        }
        Self::parse(version).ok_or_else(|| {
            let asked = if versions.is_empty() {
                version.to_owned()
            } else {
                versions.join(", ")
            };
            CniError::new(
                Code::IncompatibleVersion,
                format!("CNI version {asked} is not supported"),
                format!("use cniVersion {}", supported()),
            )
        })
    }

    /// Whether `verb` exists in this version (STATUS and GC came in 1.1.0).
    pub fn has_status_and_gc(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

/// "0.4.0, 1.0.0 or 1.1.0".
pub fn supported() -> String {
    let v: Vec<&str> = CniVersion::ALL.iter().map(|v| v.as_str()).collect();
    format!("{} or {}", v[..v.len() - 1].join(", "), v[v.len() - 1])
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// VERSION's answer.
pub fn version_json() -> serde_json::Value {
    serde_json::json!({
        "cniVersion": CniVersion::NEWEST.as_str(),
        "supportedVersions": CniVersion::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_common_version_is_chosen_and_an_unknown_one_refused() {
        assert_eq!(CniVersion::negotiate("1.0.0", &[]), Ok(CniVersion::V1_0_0));
        let list = ["0.4.0".to_owned(), "1.1.0".to_owned(), "2.0.0".to_owned()];
        assert_eq!(
            CniVersion::negotiate("1.0.0", &list),
            Ok(CniVersion::V1_1_0)
        );
        let err = CniVersion::negotiate("0.3.1", &[]).expect_err("too old");
        assert_eq!(err.code, 1);
        assert_eq!(err.msg, "CNI version 0.3.1 is not supported");
        assert_eq!(err.details, "use cniVersion 0.4.0, 1.0.0 or 1.1.0");
        assert_eq!(
            version_json(),
            serde_json::json!({"cniVersion": "1.1.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]})
        );
    }
}
