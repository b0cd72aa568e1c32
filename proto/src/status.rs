//! Validation errors on the wire: INVALID_ARGUMENT with a human message and a
//! `google.rpc.BadRequest` detail naming each field, so generic gRPC tooling
//! and `linkherdctl` can both point at the exact field.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

use crate::model::ValidationError;

/// INVALID_ARGUMENT carrying the field violation.
pub fn validation_status(err: &ValidationError) -> Status {
    let details = ErrorDetails::with_bad_request(vec![FieldViolation {
        field: err.field.clone(),
        description: format!("{:?}: {}; {}", err.value, err.problem, err.fix),
        reason: "INVALID_FIELD".into(),
        localized_message: None,
    }]);
    Status::with_error_details(Code::InvalidArgument, err.to_string(), details)
}

/// The `(field, description)` pairs of a status's BadRequest detail, if any.
pub fn field_violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_details_bad_request()
        .map(|br| {
            br.field_violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect()
        })
        .unwrap_or_default()
}

impl From<ValidationError> for Status {
    fn from(err: ValidationError) -> Self {
        validation_status(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_message_and_field_violation() {
        let err = ValidationError::new(
            "mtu",
            "70000",
            "is above the device maximum 65535",
            "use 68..=65535",
        );
        let status = Status::from(err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "invalid mtu \"70000\": is above the device maximum 65535; use 68..=65535"
        );
        assert_eq!(
            field_violations(&status),
            vec![(
                "mtu".to_owned(),
                "\"70000\": is above the device maximum 65535; use 68..=65535".to_owned()
            )]
        );
    }
}
