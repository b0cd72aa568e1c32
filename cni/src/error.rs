//! CNI errors: the specification's codes, a message that names the
//! problem, and details that say what to do.

/// The specification's well-known error codes used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    IncompatibleVersion = 1,
    UnsupportedField = 2,
    UnknownContainer = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgainLater = 11,
    /// STATUS: the plugin cannot serve ADDs at all.
    NotAvailable = 50,
    /// STATUS: the plugin can serve ADDs, but containers will not reach
    /// everything.
    LimitedConnectivity = 51,
    /// Above 99: the plugin's own (the agent refused the request).
    Refused = 100,
}

/// An error as the runtime gets it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg} ({details}) [code {code}]")]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    pub details: String,
}

/// At most this many bytes of a message or details: an error never
/// repeats a huge input whole.
pub const MAX_TEXT: usize = 1024;

fn bounded(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code: code as u32,
            msg: bounded(msg.into()),
            details: bounded(details.into()),
        }
    }

    /// The error JSON, in spec `version` (e.g. "1.0.0").
    pub fn to_json(&self, version: &str) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": version,
            "code": self.code,
            "msg": self.msg,
            "details": self.details,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_the_specifications_json_and_stays_bounded() {
        let e = CniError::new(Code::TryAgainLater, "x".repeat(5000), "start the agent");
        let j = e.to_json("1.0.0");
        assert_eq!(j["cniVersion"], "1.0.0");
        assert_eq!(j["code"], 11);
        assert_eq!(j["details"], "start the agent");
        assert_eq!(
            j["msg"].as_str().map(str::len),
            Some(MAX_TEXT + '…'.len_utf8())
        );
    }
}
