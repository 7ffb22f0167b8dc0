//! idfed policy plugin `rate-limit`: at most `max_requests` credential requests per caller per fixed window,
//! counted in the binding's KV store. See README.md for the configuration.

use idfed_sdk::{ConfigError, Decision, PluginError, Policy, Request, kv};
use serde::Deserialize;

/// The plugin.
pub struct RateLimit;

/// The configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How many requests a caller may make per window (at least 1); default 10.
    pub max_requests: u32,
    /// The window's length in seconds (at least 1); default 3600.
    pub window_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_requests: 10,
            window_seconds: 3600,
        }
    }
}

/// The counter's key: `user:<name>` for a user, `system` for a system-scope call.
pub fn counter_key(request: &Request) -> String {
    match &request.caller.user_name {
        Some(name) if !request.caller.is_system_scope => format!("user:{name}"),
        _ => "system".to_string(),
    }
}

/// The key holding when the counter's window began (Unix seconds, decimal): `start:` and the counter key.
pub fn start_key(counter_key: &str) -> String {
    format!("start:{counter_key}")
}

impl Policy for RateLimit {
    type Config = Config;

    fn check_config(config: &Config) -> Result<(), ConfigError> {
        if config.max_requests == 0 {
            return Err(ConfigError::at(
                "/max_requests",
                "max_requests must be at least 1",
            ));
        }
        if config.window_seconds == 0 {
            return Err(ConfigError::at(
                "/window_seconds",
                "window_seconds must be at least 1",
            ));
        }
        Ok(())
    }

    fn evaluate(config: &Config, request: &Request) -> Result<Decision, PluginError> {
        let key = counter_key(request);
        let now = request.time.seconds;
        let count = kv::increment(&key, 1, Some(config.window_seconds)).map_err(|e| {
            PluginError::internal(format!("rate-limit: counting {key} failed: {e:?}"))
        })?;
        if count == 1
            && let Err(e) = kv::set(
                &start_key(&key),
                now.to_string(),
                Some(config.window_seconds),
            )
        {
            idfed_sdk::log!(
                warn,
                "rate-limit: could not record the window start of {key}: {e:?}"
            );
        }
        if count <= i64::from(config.max_requests) {
            return Ok(Decision::allow_unchanged(request));
        }
        let retry = match kv::get_string(&start_key(&key)) {
            Ok(Some(start)) => match start.parse::<u64>() {
                Ok(start) => {
                    let wait = (start + u64::from(config.window_seconds))
                        .saturating_sub(now)
                        .max(1);
                    format!("try again in {wait} seconds")
                }
                Err(_) => format!("try again within {} seconds", config.window_seconds),
            },
            _ => format!("try again within {} seconds", config.window_seconds),
        };
        Ok(Decision::deny(format!(
            "rate limit reached: at most {} credential requests per {} seconds; {retry}",
            config.max_requests, config.window_seconds
        )))
    }
}

idfed_sdk::export_policy!(RateLimit);

#[cfg(test)]
mod tests {
    use super::*;
    use idfed_sdk::testing::{self, sample_request};
    use idfed_sdk::{KvError, Timestamp};

    fn eval(config: &str, r: &Request) -> Result<Decision, PluginError> {
        testing::set_now(r.time);
        idfed_sdk::evaluate::<RateLimit>(config, r)
    }

    #[test]
    fn counts_per_caller_over_a_fixed_window() {
        testing::reset();
        let config = r#"{"max_requests": 2, "window_seconds": 60}"#;
        let mut r = sample_request();
        let t0 = r.time.seconds;
        assert!(eval(config, &r).unwrap().is_allow());
        r.time = Timestamp::from_seconds(t0 + 10);
        assert!(eval(config, &r).unwrap().is_allow());
        r.time = Timestamp::from_seconds(t0 + 15);
        let d = eval(config, &r).unwrap();
        assert_eq!(
            d.deny_reason().unwrap(),
            "rate limit reached: at most 2 credential requests per 60 seconds; try again in 45 seconds"
        );
        // Another user has their own counter.
        let mut bob = r.clone();
        bob.caller.user_name = Some("bob".into());
        assert!(eval(config, &bob).unwrap().is_allow());
        // The window ends 60 seconds after its first request.
        r.time = Timestamp::from_seconds(t0 + 60);
        assert!(eval(config, &r).unwrap().is_allow());
    }

    #[test]
    fn system_scope_calls_share_one_counter() {
        testing::reset();
        let mut r = sample_request();
        r.caller.user_name = None;
        r.caller.is_system_scope = true;
        assert_eq!(counter_key(&r), "system");
        assert!(eval(r#"{"max_requests": 1}"#, &r).unwrap().is_allow());
        let d = eval(r#"{"max_requests": 1}"#, &r).unwrap();
        assert!(
            d.deny_reason()
                .unwrap()
                .starts_with("rate limit reached: at most 1 credential requests per 3600 seconds")
        );
        assert_eq!(counter_key(&sample_request()), "user:alice");
    }

    #[test]
    fn kv_failure_fails_closed() {
        testing::reset();
        testing::fail_kv(Some(KvError::Unavailable("disk gone".into())));
        let e = eval("", &sample_request()).unwrap_err();
        assert!(
            matches!(e, PluginError::Internal(ref m) if m.contains("user:alice")),
            "{e:?}"
        );
    }

    #[test]
    fn config_validation() {
        let check = |c: &str| idfed_sdk::validate_config::<RateLimit>(c);
        assert!(check("").is_ok());
        assert_eq!(
            check(r#"{"max_requests": 0}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/max_requests")
        );
        assert_eq!(
            check(r#"{"window_seconds": 0}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/window_seconds")
        );
        assert_eq!(
            check(r#"{"window_seconds": -5}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/window_seconds")
        );
    }
}
