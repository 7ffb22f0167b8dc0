//! Percent-encoding of one URL component: a path segment, a query name or value.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters (`A–Z a–z 0–9 - . _ ~`) is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` percent-encoded as one URL component (a space is `%20`, never `+`; a `/` is `%2F`).
pub fn component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::component;

    #[test]
    fn only_unreserved_characters_stay() {
        assert_eq!(component("user01"), "user01");
        assert_eq!(component("A-z_0.9~"), "A-z_0.9~");
        assert_eq!(component("a b+c&d=e/f?é"), "a%20b%2Bc%26d%3De%2Ff%3F%C3%A9");
        assert_eq!(component("../x%2F"), "..%2Fx%252F");
    }
}
