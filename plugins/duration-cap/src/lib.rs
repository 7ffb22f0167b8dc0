//! idfed policy plugin `duration-cap`: lowers the credential duration to a cap chosen by the caller's groups.
//! Never denies. See README.md for the configuration.

use idfed_sdk::{ConfigError, Decision, PluginError, Policy, Request};
use serde::Deserialize;

/// The plugin.
pub struct DurationCap;

/// The shortest duration STS issues, in seconds; caps below it are refused.
pub const STS_MIN_DURATION_SECONDS: u32 = 900;

/// The configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Tried in order: the first rule whose group the caller belongs to sets the cap.
    pub rules: Vec<Rule>,
    /// The cap when no rule applies; none means no cap.
    pub default_max_duration_seconds: Option<u32>,
}

/// One rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The group (exact name) this rule applies to.
    pub group: String,
    /// The longest duration for members, in seconds (at least 900).
    pub max_duration_seconds: u32,
}

/// The cap for this request, if any: the first matching rule's, else the default.
pub fn cap_for(config: &Config, request: &Request) -> Option<u32> {
    config
        .rules
        .iter()
        .find(|r| request.caller_in_group(&r.group))
        .map(|r| r.max_duration_seconds)
        .or(config.default_max_duration_seconds)
}

impl Policy for DurationCap {
    type Config = Config;

    fn check_config(config: &Config) -> Result<(), ConfigError> {
        for (i, rule) in config.rules.iter().enumerate() {
            if rule.group.is_empty() {
                return Err(ConfigError::at(
                    format!("/rules/{i}/group"),
                    "group must not be empty",
                ));
            }
            if rule.max_duration_seconds < STS_MIN_DURATION_SECONDS {
                return Err(ConfigError::at(
                    format!("/rules/{i}/max_duration_seconds"),
                    format!(
                        "max_duration_seconds is {}, below the STS minimum of {STS_MIN_DURATION_SECONDS}",
                        rule.max_duration_seconds
                    ),
                ));
            }
        }
        if let Some(d) = config.default_max_duration_seconds
            && d < STS_MIN_DURATION_SECONDS
        {
            return Err(ConfigError::at(
                "/default_max_duration_seconds",
                format!(
                    "default_max_duration_seconds is {d}, below the STS minimum of {STS_MIN_DURATION_SECONDS}"
                ),
            ));
        }
        Ok(())
    }

    fn evaluate(config: &Config, request: &Request) -> Result<Decision, PluginError> {
        let mut grant = request.grant();
        if let Some(cap) = cap_for(config, request)
            && grant.duration_seconds > cap
        {
            idfed_sdk::log!(
                info,
                "duration lowered from {} to {cap} seconds",
                grant.duration_seconds
            );
            grant.duration_seconds = cap;
        }
        Ok(Decision::allow(grant))
    }
}

idfed_sdk::export_policy!(DurationCap);

#[cfg(test)]
mod tests {
    use super::*;
    use idfed_sdk::testing::sample_request;

    const CONFIG: &str = r#"{"rules": [{"group": "contractors", "max_duration_seconds": 3600},
        {"group": "developers", "max_duration_seconds": 7200}], "default_max_duration_seconds": 28800}"#;

    fn duration(config: &str, groups: &[&str], asked: u32) -> u32 {
        let mut r = sample_request();
        r.caller.groups = groups.iter().map(|g| g.to_string()).collect();
        r.duration_seconds = asked;
        let d = idfed_sdk::evaluate::<DurationCap>(config, &r).unwrap();
        let g = d.as_grant().expect("never denies");
        assert_eq!(
            (&g.policy, &g.tags, &g.policy_arns),
            (&r.policy, &r.tags, &r.policy_arns)
        );
        g.duration_seconds
    }

    #[test]
    fn first_matching_rule_wins() {
        assert_eq!(
            duration(CONFIG, &["developers", "contractors"], 43200),
            3600
        );
        assert_eq!(duration(CONFIG, &["developers"], 43200), 7200);
        assert_eq!(duration(CONFIG, &["others"], 43200), 28800);
        assert_eq!(
            duration(CONFIG, &["contractors"], 1800),
            1800,
            "never lengthens"
        );
        assert_eq!(duration(CONFIG, &[], 3600), 3600);
    }

    #[test]
    fn no_default_means_no_cap() {
        assert_eq!(
            duration(
                r#"{"rules": [{"group": "c", "max_duration_seconds": 900}]}"#,
                &["x"],
                43200
            ),
            43200
        );
        assert_eq!(duration("", &["x"], 43200), 43200);
    }

    #[test]
    fn config_validation() {
        let check = |c: &str| idfed_sdk::validate_config::<DurationCap>(c);
        assert!(check(CONFIG).is_ok());
        let e = check(r#"{"rules": [{"group": "c", "max_duration_seconds": 899}]}"#).unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/rules/0/max_duration_seconds"));
        assert!(
            e.message.contains("below the STS minimum of 900"),
            "{}",
            e.message
        );
        let e = check(r#"{"default_max_duration_seconds": 60}"#).unwrap_err();
        assert_eq!(e.pointer.as_deref(), Some("/default_max_duration_seconds"));
        assert_eq!(
            check(r#"{"rules": [{"group": ""}]}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/rules/0")
        );
        assert_eq!(
            check(r#"{"rules": [{"group": "", "max_duration_seconds": 900}]}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/rules/0/group")
        );
        assert!(check(r#"{"rules": [{"group": "a", "max_duration_seconds": -1}]}"#).is_err());
    }
}
