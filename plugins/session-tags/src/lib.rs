//! idfed policy plugin `session-tags`: adds STS session tags naming the caller, their team and fixed values,
//! without changing or removing tags already set. See README.md for the configuration.

use std::collections::BTreeMap;

use idfed_sdk::{ConfigError, Decision, Grant, PluginError, Policy, Request, SessionTag};
use serde::Deserialize;

/// The plugin.
pub struct SessionTags;

/// The most session tags STS accepts.
pub const MAX_TAGS: usize = 50;
/// The longest tag key, in characters.
pub const MAX_KEY_CHARS: usize = 128;
/// The longest tag value, in characters.
pub const MAX_VALUE_CHARS: usize = 256;

/// The configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The tag holding the caller's user name; default `idfed-user`; `null` for none.
    pub user_tag: Option<String>,
    /// The tag holding the caller's team; default none.
    pub team_tag: Option<String>,
    /// A group name pattern with one `*`: the first group matching it names the team (the part the `*`
    /// matched); default `team-*`.
    pub team_group_pattern: String,
    /// Fixed tags added to every session; default none.
    #[serde(rename = "static")]
    pub static_tags: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            user_tag: Some("idfed-user".into()),
            team_tag: None,
            team_group_pattern: "team-*".into(),
            static_tags: BTreeMap::new(),
        }
    }
}

/// Whether STS accepts this character in a tag key or value (the ASCII part of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`).
pub fn tag_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
}

/// A value STS accepts: other characters become `_` and the value is cut to 256 characters.
pub fn sanitize_value(value: &str) -> String {
    value
        .chars()
        .map(|c| if tag_char_ok(c) { c } else { '_' })
        .take(MAX_VALUE_CHARS)
        .collect()
}

fn check_key(key: &str, pointer: &str) -> Result<(), ConfigError> {
    let n = key.chars().count();
    if n == 0 || n > MAX_KEY_CHARS {
        return Err(ConfigError::at(
            pointer,
            format!("tag key {key:?} must have 1 to {MAX_KEY_CHARS} characters"),
        ));
    }
    if !key.chars().all(tag_char_ok) {
        return Err(ConfigError::at(
            pointer,
            format!("tag key {key:?} may only hold letters, digits, spaces and _ . : / = + - @"),
        ));
    }
    if key.len() >= 4 && key[..4].eq_ignore_ascii_case("aws:") {
        return Err(ConfigError::at(
            pointer,
            format!("tag key {key:?} uses the reserved prefix aws:"),
        ));
    }
    Ok(())
}

/// The team named by the first group matching `pattern` (the text its `*` matched), if any.
pub fn team_from_groups<'a>(pattern: &str, groups: &'a [String]) -> Option<&'a str> {
    let (prefix, suffix) = pattern.split_once('*')?;
    groups.iter().find_map(|g| {
        let team = g.strip_prefix(prefix)?.strip_suffix(suffix)?;
        (!team.is_empty() && g.len() >= prefix.len() + suffix.len()).then_some(team)
    })
}

/// Adds a tag unless its key is taken (case-insensitively, as STS compares) or the grant holds 50 tags.
fn add_tag(grant: &mut Grant, key: &str, value: &str) {
    if grant.has_tag(key) {
        idfed_sdk::log!(
            warn,
            "session tag {key:?} is already set; leaving it unchanged"
        );
        return;
    }
    if grant.tags.len() >= MAX_TAGS {
        idfed_sdk::log!(
            warn,
            "session tag {key:?} not added: the session already has {MAX_TAGS} tags"
        );
        return;
    }
    let clean = sanitize_value(value);
    if clean != value {
        idfed_sdk::log!(debug, "session tag {key:?}: value adjusted to STS's rules");
    }
    grant.tags.push(SessionTag::new(key, clean));
}

/// Decides on a request (the whole plugin logic).
pub fn decide(config: &Config, request: &Request) -> Decision {
    if !request.connector.principal_type.takes_session_tags() {
        idfed_sdk::log!(
            warn,
            "connector {:?} is an iam-user connector, which takes no session tags; no tags added",
            request.connector.name
        );
        return Decision::allow_unchanged(request);
    }
    let mut grant = request.grant();
    if let (Some(key), Some(user)) = (&config.user_tag, &request.caller.user_name) {
        add_tag(&mut grant, key, user);
    }
    if let Some(key) = &config.team_tag
        && let Some(team) = team_from_groups(&config.team_group_pattern, &request.caller.groups)
    {
        add_tag(&mut grant, key, team);
    }
    for (key, value) in &config.static_tags {
        add_tag(&mut grant, key, value);
    }
    Decision::allow(grant)
}

impl Policy for SessionTags {
    type Config = Config;

    fn check_config(config: &Config) -> Result<(), ConfigError> {
        let mut keys: Vec<(String, String)> = Vec::new();
        if let Some(k) = &config.user_tag {
            check_key(k, "/user_tag")?;
            keys.push((k.to_ascii_lowercase(), "/user_tag".into()));
        }
        if let Some(k) = &config.team_tag {
            check_key(k, "/team_tag")?;
            keys.push((k.to_ascii_lowercase(), "/team_tag".into()));
            if config.team_group_pattern.matches('*').count() != 1 {
                return Err(ConfigError::at(
                    "/team_group_pattern",
                    "team_group_pattern must contain exactly one *",
                ));
            }
        }
        if config.static_tags.len() > MAX_TAGS {
            return Err(ConfigError::at(
                "/static",
                format!("at most {MAX_TAGS} static tags"),
            ));
        }
        for (k, v) in &config.static_tags {
            let pointer = format!("/static/{}", k.replace('~', "~0").replace('/', "~1"));
            check_key(k, &pointer)?;
            if v.chars().count() > MAX_VALUE_CHARS || !v.chars().all(tag_char_ok) {
                return Err(ConfigError::at(
                    &pointer,
                    format!(
                        "tag value {v:?} must have at most {MAX_VALUE_CHARS} letters, digits, spaces and _ . : / = + - @"
                    ),
                ));
            }
            keys.push((k.to_ascii_lowercase(), pointer));
        }
        keys.sort();
        if let Some(w) = keys.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(ConfigError::at(
                &w[1].1,
                format!(
                    "tag key {:?} is configured twice (keys compare without case)",
                    w[1].0
                ),
            ));
        }
        Ok(())
    }

    fn evaluate(config: &Config, request: &Request) -> Result<Decision, PluginError> {
        Ok(decide(config, request))
    }
}

idfed_sdk::export_policy!(SessionTags);

#[cfg(test)]
mod tests {
    use super::*;
    use idfed_sdk::PrincipalType;
    use idfed_sdk::testing::{self, sample_request};

    const CONFIG: &str = r#"{"user_tag": "idfed-user", "team_tag": "team", "team_group_pattern": "team-*", "static": {"cost-center": "1234"}}"#;

    fn tags(config: &str, r: &Request) -> Vec<(String, String)> {
        let d = idfed_sdk::evaluate::<SessionTags>(config, r).unwrap();
        d.as_grant()
            .unwrap()
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn adds_user_team_and_static_tags() {
        let r = sample_request();
        assert_eq!(
            tags(CONFIG, &r),
            pairs(&[
                ("idfed-user", "alice"),
                ("team", "payments"),
                ("cost-center", "1234")
            ])
        );
        assert_eq!(tags("", &r), pairs(&[("idfed-user", "alice")]));
        assert_eq!(tags(r#"{"user_tag": null}"#, &r), pairs(&[]));
    }

    #[test]
    fn keeps_existing_tags_and_warns() {
        testing::reset();
        let mut r = sample_request();
        r.tags = vec![SessionTag::new("Team", "ops")];
        assert_eq!(
            tags(CONFIG, &r),
            pairs(&[
                ("Team", "ops"),
                ("idfed-user", "alice"),
                ("cost-center", "1234")
            ])
        );
        let logs = testing::take_logs();
        assert!(
            logs.iter()
                .any(|(_, m)| m == "session tag \"team\" is already set; leaving it unchanged"),
            "{logs:?}"
        );
    }

    #[test]
    fn respects_sts_limits() {
        let mut r = sample_request();
        r.caller.user_name = Some(format!("{}ü", "a".repeat(300)));
        let t = tags("", &r);
        assert_eq!(t[0].1.chars().count(), 256);
        let mut r = sample_request();
        r.caller.user_name = Some("a b/c@d.e+f=g:h_i-j!k".into());
        assert_eq!(tags("", &r)[0].1, "a b/c@d.e+f=g:h_i-j_k");
        let mut r = sample_request();
        r.tags = (0..49)
            .map(|i| SessionTag::new(format!("k{i}"), "v"))
            .collect();
        let t = tags(CONFIG, &r);
        assert_eq!(t.len(), 50);
        assert_eq!(t[49], ("idfed-user".to_string(), "alice".to_string()));
    }

    #[test]
    fn team_pattern() {
        let groups = [
            "devs".to_string(),
            "team-".to_string(),
            "team-core".to_string(),
            "team-x".to_string(),
        ];
        assert_eq!(team_from_groups("team-*", &groups), Some("core"));
        assert_eq!(
            team_from_groups("*-admins", &["web-admins".to_string()]),
            Some("web")
        );
        assert_eq!(team_from_groups("team-*", &["devs".to_string()]), None);
        let mut r = sample_request();
        r.caller.groups = vec!["devs".into()];
        assert_eq!(
            tags(r#"{"team_tag": "team", "user_tag": null}"#, &r),
            pairs(&[])
        );
    }

    #[test]
    fn iam_user_connectors_get_no_tags() {
        testing::reset();
        let mut r = sample_request();
        r.connector.principal_type = PrincipalType::IamUser;
        let d = idfed_sdk::evaluate::<SessionTags>(CONFIG, &r).unwrap();
        assert_eq!(d, Decision::allow_unchanged(&r));
        assert!(testing::take_logs()[0].1.contains("takes no session tags"));
        r.connector.principal_type = PrincipalType::FederatedUser;
        assert_eq!(tags(CONFIG, &r).len(), 3);
    }

    #[test]
    fn config_validation() {
        let check = |c: &str| idfed_sdk::validate_config::<SessionTags>(c);
        assert!(check(CONFIG).is_ok());
        assert!(check("").is_ok());
        assert_eq!(
            check(r#"{"user_tag": ""}"#).unwrap_err().pointer.as_deref(),
            Some("/user_tag")
        );
        assert_eq!(
            check(r#"{"team_tag": "aws:team"}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/team_tag")
        );
        assert_eq!(
            check(r#"{"team_tag": "t", "team_group_pattern": "team"}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/team_group_pattern")
        );
        assert_eq!(
            check(r#"{"static": {"a/b": "x!"}}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/static/a~1b")
        );
        assert_eq!(
            check(r#"{"static": {"IDFED-USER": "x"}}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/user_tag")
        );
        let long = format!(r#"{{"static": {{"k": "{}"}}}}"#, "v".repeat(257));
        assert_eq!(
            check(&long).unwrap_err().pointer.as_deref(),
            Some("/static/k")
        );
    }
}
