use std::{fmt, str::FromStr};

use serde::{Serialize, Serializer};

use super::ValidationError;

/// Longest interface name the kernel accepts: IFNAMSIZ (16) minus the NUL.
pub const MAX_IFNAME_LEN: usize = 15;

/// A Linux interface name that the kernel will accept (`dev_valid_name`):
/// 1–15 bytes, not `.` or `..`, no `/`, `:` or whitespace.
///
/// Checking this before talking to the kernel turns a bare `EINVAL` into an
/// error that says what is wrong with the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    /// Validates `value` as the interface name given in request field `field`.
    pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
        let bad = |problem: &str, fix: &str| ValidationError::new(field, value, problem, fix);
        if value.is_empty() {
            return Err(bad(
                "an interface name is required",
                "give the interface name, e.g. eth0",
            ));
        }
        if value.len() > MAX_IFNAME_LEN {
            return Err(bad(
                &format!(
                    "is {} bytes long; Linux interface names are at most {MAX_IFNAME_LEN} bytes",
                    value.len()
                ),
                "use a shorter name",
            ));
        }
        if value == "." || value == ".." {
            return Err(bad(
                "\".\" and \"..\" are not valid interface names",
                "use a real interface name",
            ));
        }
        if let Some(c) = value
            .chars()
            .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
        {
            return Err(bad(
                &format!("contains {c:?}, which Linux does not allow in interface names"),
                "use only letters, digits, '.', '-' and '_'",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For names built from parts already known to be valid and short
    /// enough; the caller guarantees the kernel's rules.
    pub(crate) fn from_valid(name: String) -> Self {
        debug_assert!(Self::parse("name", &name).is_ok(), "{name:?}");
        Self(name)
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for IfName {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse("name", s)
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Serialize for IfName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Read back through [`IfName::parse`]: a stored name is checked again.
impl<'de> serde::Deserialize<'de> for IfName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse("name", &s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kernel_valid_names() {
        for ok in [
            "eth0",
            "ens192",
            "ens192.10",
            "a",
            "mac_net10-b1",
            "123456789012345",
        ] {
            assert_eq!(
                IfName::parse("name", ok).map(|n| n.to_string()),
                Ok(ok.to_owned())
            );
        }
    }

    #[test]
    fn rejects_each_invalid_form_with_field_value_and_reason() {
        let cases = [
            ("", "an interface name is required"),
            (
                "1234567890123456",
                "is 16 bytes long; Linux interface names are at most 15 bytes",
            ),
            (".", "\".\" and \"..\" are not valid interface names"),
            ("..", "\".\" and \"..\" are not valid interface names"),
            (
                "a/b",
                "contains '/', which Linux does not allow in interface names",
            ),
            (
                "a b",
                "contains ' ', which Linux does not allow in interface names",
            ),
            (
                "a\tb",
                "contains '\\t', which Linux does not allow in interface names",
            ),
            (
                "eth0:1",
                "contains ':', which Linux does not allow in interface names",
            ),
        ];
        for (value, problem) in cases {
            let err = IfName::parse("interface", value).expect_err(value);
            assert_eq!(err.field, "interface");
            // Echoed with its control characters escaped.
            let shown = if value == "a\tb" { "a\\tb" } else { value };
            assert_eq!(err.value, shown);
            assert_eq!(err.problem, problem, "for {value:?}");
        }
    }

    #[test]
    fn length_limit_counts_bytes_not_chars() {
        // 8 two-byte characters = 16 bytes.
        let err = IfName::parse("name", "éééééééé").expect_err("16 bytes");
        assert!(
            err.problem.starts_with("is 16 bytes long"),
            "{}",
            err.problem
        );
    }
}
