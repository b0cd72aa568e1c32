//! Every bound on what a caller may send, in one place, so validation,
//! the documentation (docs/security.md, "Bounds") and the tests agree.
//!
//! Counts are checked before their elements are parsed, so an oversized
//! list costs nothing; duplicate checks use sets, so validation is
//! O(n log n) in the size of a request.

use super::ValidationError;

/// Addresses of one endpoint or host access.
pub const MAX_ADDRESSES: usize = 256;
/// Source MACs of one source-mode macvlan. The kernel takes them in one
/// netlink attribute of at most 64 KiB (12 bytes each: at most 5460).
pub const MAX_SOURCE_MACS: usize = 1024;
/// Routes of one host access.
pub const MAX_ROUTES: usize = 1024;
/// VLANs (wanted or absent) in one desired state: all 802.1Q ids.
pub const MAX_DESIRED_VLANS: usize = 4094;
/// Endpoints in one desired state.
pub const MAX_DESIRED_ENDPOINTS: usize = 4096;
/// Host accesses and networks spoken for in one desired state.
pub const MAX_DESIRED_NETWORKS: usize = 1024;
/// A named network namespace (with the agent's prefix it stays under the
/// file-name limit of 255 bytes).
pub const MAX_NETNS_NAME: usize = 128;
/// A namespace path.
pub const MAX_PATH: usize = 1024;
/// A value echoed back in an error, a log line or the audit log is cut to
/// this many bytes (with its length said), so a huge value is never
/// repeated whole.
pub const MAX_ECHO: usize = 80;

/// Refuses a list longer than `max`, naming the field, its length and the
/// bound.
pub fn check_count(field: &str, len: usize, max: usize, what: &str) -> Result<(), ValidationError> {
    if len <= max {
        return Ok(());
    }
    Err(ValidationError::new(
        field,
        format!("{len} {what}"),
        format!("is more than {max} {what}"),
        format!("send at most {max}"),
    ))
}

/// `value`, or its first [`MAX_ECHO`] bytes (cut on a character boundary)
/// and its length; control characters escaped (`\u{1b}`, `\r`), so an
/// echoed value can never drive the terminal that shows it.
pub fn echo(value: &str) -> String {
    cut(&escape_controls(value), MAX_ECHO, value.len())
}

/// `text`, or its first `max` bytes (cut on a character boundary) and
/// `len`, the length of what it shows.
pub fn cut(text: &str, max: usize, len: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({len} bytes)", &text[..end])
}

/// `value` with every control character (C0, DEL, C1) written as its Rust
/// escape, everything else as it is.
pub fn escape_controls(value: &str) -> String {
    if !value.chars().any(char::is_control) {
        return value.to_owned();
    }
    value
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_never_echoed() {
        assert_eq!(echo("b1\u{1b}[2J\r"), "b1\\u{1b}[2J\\r");
        assert_eq!(escape_controls("tab\there\u{9b}"), "tab\\there\\u{9b}");
        assert_eq!(escape_controls("mac_net10 ✓"), "mac_net10 ✓");
        let long = format!("{}\u{1b}", "a".repeat(200));
        assert!(echo(&long).ends_with("… (201 bytes)"), "{}", echo(&long));
    }

    #[test]
    fn a_long_value_is_cut_and_its_length_said() {
        assert_eq!(echo("b1"), "b1");
        let long = "é".repeat(1_500_000);
        let cut = echo(&long);
        assert!(cut.len() < 100, "{}", cut.len());
        assert!(cut.ends_with("… (3000000 bytes)"), "{cut}");
    }

    #[test]
    fn a_count_over_its_bound_names_field_and_bound() {
        assert!(check_count("endpoint.addresses", 256, MAX_ADDRESSES, "addresses").is_ok());
        let err =
            check_count("endpoint.addresses", 257, MAX_ADDRESSES, "addresses").expect_err("over");
        assert_eq!(err.field, "endpoint.addresses");
        assert_eq!(
            err.to_string(),
            "invalid endpoint.addresses \"257 addresses\": is more than 256 addresses; send at most 256"
        );
    }
}
