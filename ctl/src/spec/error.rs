//! Errors in a fleet spec, each pointing at the place to fix: the field's
//! path (`networks.mac_net10.endpoints.b3.ip`), its line and column, the
//! value, what is wrong and what to do instead.

use std::fmt;

use serde_saphyr::Location;

/// One problem in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    /// Dotted path of the field, e.g. `networks.mac_net10.gateway`.
    pub path: String,
    /// 1-based line and column of the value in the file, when known.
    pub line: Option<u64>,
    pub column: Option<u64>,
    /// What is wrong, including the offending value.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl SpecIssue {
    pub(crate) fn at(
        path: impl Into<String>,
        loc: Option<Location>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        let known = loc.filter(|l| l.line() > 0);
        Self {
            path: path.into(),
            line: known.map(|l| l.line()),
            column: known.map(|l| l.column()),
            problem: problem.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(l), Some(c)) = (self.line, self.column) {
            write!(f, "{l}:{c}: ")?;
        }
        write!(f, "{}: {}", self.path, self.problem)?;
        if !self.fix.is_empty() {
            write!(f, "; {}", self.fix)?;
        }
        Ok(())
    }
}

/// Why a spec was refused. All problems are reported at once, so that one
/// edit fixes them all instead of one per run.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {}", render(.issues))]
    Invalid {
        file: String,
        issues: Vec<SpecIssue>,
    },
}

fn render(issues: &[SpecIssue]) -> String {
    match issues {
        [one] => one.to_string(),
        many => {
            let mut s = format!("{} problems:", many.len());
            for i in many {
                s.push_str("\n  ");
                s.push_str(&i.to_string());
            }
            s
        }
    }
}

impl SpecError {
    /// The individual problems (empty for a read error).
    pub fn issues(&self) -> &[SpecIssue] {
        match self {
            SpecError::Read { .. } => &[],
            SpecError::Invalid { issues, .. } => issues,
        }
    }
}
