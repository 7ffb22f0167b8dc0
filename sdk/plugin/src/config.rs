//! Parsing a binding's JSON configuration.

use serde::de::DeserializeOwned;

use crate::ConfigError;

/// Parses a binding's JSON configuration text into `C`.
///
/// Empty or whitespace-only text counts as `{}`. A deserialization error becomes a [`ConfigError`] whose message
/// is serde's (with line and column) and whose pointer, when the error concerns a value, is the JSON pointer of
/// that value (for an unknown field, of that field; for a missing field, of the object that lacks it), from the
/// path `serde_path_to_error` tracks.
pub fn parse_config<C: DeserializeOwned>(text: &str) -> Result<C, ConfigError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let invalid = |err: &serde_json::Error, pointer| ConfigError {
        message: format!("invalid configuration: {err}"),
        pointer,
    };
    let config = serde_path_to_error::deserialize(&mut deserializer).map_err(|err| {
        let pointer = match err.inner().classify() {
            serde_json::error::Category::Data => Some(json_pointer(err.path())),
            _ => None,
        };
        invalid(err.inner(), pointer)
    })?;
    // Trailing characters after the value.
    deserializer.end().map_err(|err| invalid(&err, None))?;
    Ok(config)
}

/// The JSON pointer (RFC 6901) of a deserialization path: `rules[1].max` is `/rules/1/max`.
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path {
        let token = match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.replace('~', "~0").replace('/', "~1"),
            // An externally tagged enum's variant is the key of the object that holds it.
            Segment::Enum { variant } => variant.replace('~', "~0").replace('/', "~1"),
            // A key that is not a string: nothing a pointer can name below it.
            Segment::Unknown => break,
        };
        pointer.push('/');
        pointer.push_str(&token);
    }
    pointer
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Rule {
        group: String,
        max: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Config {
        #[serde(default)]
        rules: Vec<Rule>,
        #[serde(default)]
        name: Option<String>,
    }

    #[test]
    fn empty_text_is_an_empty_object() {
        let c: Config = parse_config("  \n ").unwrap();
        assert!(c.rules.is_empty());
        let _: crate::NoConfig = parse_config("").unwrap();
        let _: crate::NoConfig = parse_config(r#"{"anything": [1, 2]}"#).unwrap();
    }

    #[test]
    fn pointer_to_a_bad_value() {
        let e = parse_config::<Config>(
            r#"{"rules": [{"group": "a", "max": 1}, {"group": "b", "max": "x"}]}"#,
        )
        .unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/rules/1/max"), "{e:?}");
        assert!(e.message.contains("invalid type"), "{}", e.message);
    }

    #[test]
    fn pointer_to_an_unknown_field() {
        let e = parse_config::<Config>("{\n  \"rules\": [],\n  \"nmae\": \"x\"\n}").unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/nmae"), "{e:?}");
        assert!(e.message.contains("unknown field `nmae`"), "{}", e.message);
    }

    #[test]
    fn pointer_to_an_object_missing_a_field() {
        let e = parse_config::<Config>(r#"{"rules": [{"group": "a"}]}"#).unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/rules/0"), "{e:?}");
        assert!(e.message.contains("missing field `max`"), "{}", e.message);
    }

    #[test]
    fn syntax_errors_have_no_pointer() {
        let e = parse_config::<Config>(r#"{"rules": [}"#).unwrap_err();
        assert_eq!(e.pointer, None);
    }

    #[test]
    fn trailing_characters_are_a_syntax_error() {
        let e = parse_config::<Config>(r#"{"rules": []} x"#).unwrap_err();
        assert_eq!(e.pointer, None);
        assert!(e.message.contains("trailing characters"), "{}", e.message);
    }

    #[test]
    fn pointer_escapes() {
        let e = parse_config::<
            std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<u8>>>,
        >(r#"{"a/b": {"c~d": [1, "two"]}}"#)
        .unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/a~1b/c~0d/1"), "{e:?}");
        let e = parse_config::<Config>(r#"{"name": 1}"#).unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/name"), "{e:?}");
        let e = parse_config::<Config>("1").unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some(""), "the whole document: {e:?}");
        let e = parse_config::<Config>("[1]").unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/0"), "{e:?}");
    }
}
