use std::fmt;

/// Bad input, described so that a person can fix it: which field, which value,
/// what is wrong with it, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    /// Path of the offending field, e.g. `name` or `endpoint.mac`.
    pub field: String,
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl ValidationError {
    /// `value` is kept only up to [`super::bounds::MAX_ECHO`] bytes: an
    /// error must never repeat a huge input whole (into the reply's
    /// metadata, the log or the audit).
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            value: super::bounds::echo(&value.into()),
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The same error reported under a longer field path (`interface.name`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {:?}: {}; {}",
            self.field, self.value, self.problem, self.fix
        )
    }
}
