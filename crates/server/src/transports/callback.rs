//! JavaScript callback names for JSONP and the forever iframe.
//!
//! A name is an identifier with dots for namespaces, `^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$`;
//! anything else is refused before any script is produced.

use crate::rejection::Rejection;

/// Longest callback name.
const MAX_LEN: usize = 64;

/// Validates `name`.
pub fn parse(name: &str) -> Result<&str, Rejection> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.'));
    if first_ok && rest_ok && name.len() <= MAX_LEN {
        Ok(name)
    } else {
        Err(Rejection::bad_request(
            "invalid_callback",
            "callback must match ^[A-Za-z_$][A-Za-z0-9_$.]{0,63}$ (a JavaScript identifier, dots allowed)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_identifiers_and_refuses_the_rest() {
        for ok in ["cb", "_x", "$", "a.b.c", "jQuery123_456", &"a".repeat(64)] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1a",
            ".a",
            "a-b",
            "a(b)",
            "a;alert(1)",
            "a b",
            "a\u{e9}",
            "</script>",
            &"a".repeat(65),
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
