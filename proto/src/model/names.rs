use std::fmt;

use serde::Serialize;

use super::ValidationError;

/// The name of a macvlan network or endpoint (`mac_net10`, `b1`): 1–64
/// characters from `A-Z a-z 0-9 _ . -`. The same rule everywhere keeps the
/// names safe inside interface aliases, file names and log lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ObjName(String);

impl ObjName {
    pub fn parse(field: &str, value: &str) -> Result<Self, ValidationError> {
        let ok = !value.is_empty()
            && value.len() <= 64
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(Self(value.to_owned()))
        } else if value.is_empty() {
            Err(ValidationError::new(
                field,
                value,
                "a name is required",
                "give a name such as mac_net10",
            ))
        } else {
            Err(ValidationError::new(
                field,
                value,
                "is not a valid name",
                "use 1-64 characters from A-Z, a-z, 0-9, '_', '.' and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Read back through [`ObjName::parse`]: a stored name is checked again.
impl<'de> serde::Deserialize<'de> for ObjName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse("name", &s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for ObjName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(ObjName::parse("network", "mac_net10").is_ok());
        assert!(ObjName::parse("network", "b1").is_ok());
        let err = ObjName::parse("network", "a b").expect_err("space");
        assert_eq!((err.field.as_str(), err.value.as_str()), ("network", "a b"));
        assert!(ObjName::parse("network", &"x".repeat(65)).is_err());
        assert_eq!(
            ObjName::parse("name", "").expect_err("empty").problem,
            "a name is required"
        );
    }
}
