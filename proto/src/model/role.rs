use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// What a caller may do. Each role includes the ones before it, so checks are
/// a comparison: `caller.role >= required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads and Watch.
    Viewer,
    /// Viewer, plus connectivity probes.
    Operator,
    /// Operator, plus every change.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a role name that is not one of viewer, operator, admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: use viewer, operator or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Client certificates carry their role as a URI SAN `urn:linkherd:role:NAME`;
/// `linkherdctl certs issue` writes it and the agent reads it.
pub const ROLE_URI_PREFIX: &str = "urn:linkherd:role:";

impl Role {
    /// The URI SAN that grants this role.
    pub fn uri(self) -> String {
        format!("{ROLE_URI_PREFIX}{self}")
    }

    /// The role granted by a URI SAN, if it is a linkherd role URI.
    pub fn from_uri(uri: &str) -> Option<Role> {
        uri.strip_prefix(ROLE_URI_PREFIX)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }

    #[test]
    fn parses_names_and_rejects_others() {
        assert_eq!("operator".parse::<Role>(), Ok(Role::Operator));
        assert_eq!(
            "root".parse::<Role>().map_err(|e| e.to_string()),
            Err("unknown role \"root\": use viewer, operator or admin".to_owned())
        );
    }
}
