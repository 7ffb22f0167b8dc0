//! Parsing a binding's JSON configuration.

use serde::de::DeserializeOwned;

use crate::ConfigError;

/// Parses a binding's JSON configuration text into `C`.
///
/// Empty or whitespace-only text counts as `{}`. A deserialization error becomes a [`ConfigError`] whose message
/// is serde's (with line and column) and whose pointer, when the error concerns a value, is the JSON pointer of
/// that value (for an unknown field, of that field; for a missing field, of the object that lacks it).
pub fn parse_config<C: DeserializeOwned>(text: &str) -> Result<C, ConfigError> {
    let text = if text.trim().is_empty() { "{}" } else { text };
    serde_json::from_str(text).map_err(|err| {
        let pointer = match err.classify() {
            serde_json::error::Category::Data => Some(pointer_at(text, err.line(), err.column())),
            _ => None,
        };
        ConfigError {
            message: format!("invalid configuration: {err}"),
            pointer,
        }
    })
}

/// The JSON pointer of the value being read at 1-based `line` and `column` (a byte column, as serde_json counts).
fn pointer_at(text: &str, line: usize, column: usize) -> String {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            offset += column.min(l.len());
            break;
        }
        offset += l.len();
    }
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    pointer_of_prefix(&text[..end])
}

enum Frame {
    Object {
        key: Option<String>,
        expecting_key: bool,
    },
    Array {
        index: usize,
    },
}

/// Walks a prefix of a JSON document and returns the pointer of the innermost value it ends in or after.
fn pointer_of_prefix(prefix: &str) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut chars = prefix.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => stack.push(Frame::Object {
                key: None,
                expecting_key: true,
            }),
            '[' => stack.push(Frame::Array { index: 0 }),
            '}' | ']' => {
                stack.pop();
            }
            ',' => match stack.last_mut() {
                Some(Frame::Object { key, expecting_key }) => {
                    *key = None;
                    *expecting_key = true;
                }
                Some(Frame::Array { index }) => *index += 1,
                None => {}
            },
            ':' => {
                if let Some(Frame::Object { expecting_key, .. }) = stack.last_mut() {
                    *expecting_key = false;
                }
            }
            '"' => {
                let mut s = String::new();
                let mut escaped = false;
                for c in chars.by_ref() {
                    if escaped {
                        s.push(match c {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            other => other,
                        });
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        break;
                    } else {
                        s.push(c);
                    }
                }
                if let Some(Frame::Object {
                    key,
                    expecting_key: true,
                }) = stack.last_mut()
                {
                    *key = Some(s);
                }
            }
            _ => {}
        }
    }
    let mut pointer = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                pointer.push('/');
                pointer.push_str(&k.replace('~', "~0").replace('/', "~1"));
            }
            Frame::Object { key: None, .. } => break,
            Frame::Array { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
        }
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
    fn pointer_escapes() {
        assert_eq!(
            pointer_of_prefix(r#"{"a/b": {"c~d": [1, 2"#),
            "/a~1b/c~0d/1"
        );
        assert_eq!(pointer_of_prefix(r#"{"a": {"b": 1}"#), "/a");
    }
}
