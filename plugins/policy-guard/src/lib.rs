//! idfed policy plugin `policy-guard`: refuses, or rewrites with a `Deny`, session policies that could allow
//! listed actions. See README.md for the configuration and what it cannot see.

use idfed_sdk::iam::{self, PolicyDocument, STS_POLICY_MAX_CHARS};
use idfed_sdk::{ConfigError, Decision, PluginError, Policy, PrincipalType, Request};
use serde::Deserialize;

/// The plugin.
pub struct PolicyGuard;

/// What to do with a policy that could allow a guarded action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Refuse the request.
    #[default]
    Deny,
    /// Append a `Deny` statement for the guarded actions and allow.
    Rewrite,
}

/// The configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `deny` (default) or `rewrite`.
    pub mode: Mode,
    /// The guarded actions or action patterns; default `["iam:*", "organizations:*"]`.
    pub actions: Vec<String>,
    /// Refuse requests that carry managed policy ARNs, which the plugin cannot inspect; default false.
    pub refuse_policy_arns: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Deny,
            actions: vec!["iam:*".into(), "organizations:*".into()],
            refuse_policy_arns: false,
        }
    }
}

fn valid_action_pattern(a: &str) -> bool {
    !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '*' | '?' | '-' | '_'))
        && (a.contains(':') || a.chars().all(|c| c == '*'))
}

fn with_prefix(reason: String) -> Decision {
    Decision::deny(format!("policy-guard: {reason}"))
}

/// Decides on a request (the whole plugin logic).
pub fn decide(config: &Config, request: &Request) -> Decision {
    let principal = request.connector.principal_type;
    if principal == PrincipalType::IamUser {
        // GetSessionToken takes no session policy: nothing to guard.
        return Decision::allow_unchanged(request);
    }
    let has_arns = !request.policy_arns.is_empty();
    if has_arns && config.refuse_policy_arns {
        return with_prefix(
            "managed policy ARNs cannot be inspected and are not accepted on this connector; send an inline session policy instead"
                .into(),
        );
    }
    let list = |actions: &[&str]| actions.join(", ");

    let Some(text) = &request.policy else {
        let all: Vec<&str> = config.actions.iter().map(String::as_str).collect();
        return match (principal, config.mode) {
            // Without any session policy a federated user gets no permissions; with policy ARNs only theirs.
            (PrincipalType::FederatedUser, Mode::Deny) => Decision::allow_unchanged(request),
            (PrincipalType::FederatedUser, Mode::Rewrite) if !has_arns => {
                Decision::allow_unchanged(request)
            }
            (_, Mode::Deny) if has_arns => Decision::allow_unchanged(request),
            (_, Mode::Deny) => with_prefix(format!(
                "without a session policy the role's full permissions apply, which could include {}; send a session policy that does not allow them",
                list(&all)
            )),
            (_, Mode::Rewrite) => {
                // With policy ARNs, an Allow-all inline policy would widen the session beyond them: deny only.
                let mut doc = if has_arns {
                    PolicyDocument::new()
                } else {
                    PolicyDocument::allow_all()
                };
                doc.add_deny(all.iter().copied(), ["*"]);
                rewritten(request, doc, &all)
            }
        };
    };

    let doc = match PolicyDocument::parse(text) {
        Ok(doc) => doc,
        Err(e) => return with_prefix(format!("the session policy cannot be checked: {e}")),
    };
    let offending: Vec<&str> = config
        .actions
        .iter()
        .map(String::as_str)
        .filter(|a| doc.allows_action(a))
        .collect();
    match config.mode {
        Mode::Deny if offending.is_empty() => Decision::allow_unchanged(request),
        Mode::Deny => with_prefix(format!(
            "the session policy could allow {}, which this connector does not permit",
            list(&offending)
        )),
        Mode::Rewrite => {
            // Policy ARNs cannot be inspected: deny every guarded action when they are present.
            let deny: Vec<&str> = if has_arns {
                config.actions.iter().map(String::as_str).collect()
            } else {
                offending
            };
            if deny.is_empty() {
                return Decision::allow_unchanged(request);
            }
            let mut doc = doc;
            doc.add_deny(deny.iter().copied(), ["*"]);
            rewritten(request, doc, &deny)
        }
    }
}

fn rewritten(request: &Request, doc: PolicyDocument, denied: &[&str]) -> Decision {
    let json = doc.to_json();
    let length = json.chars().count();
    if length > STS_POLICY_MAX_CHARS {
        return with_prefix(format!(
            "the session policy could allow {}, and denying them would make it {length} characters, more than the {STS_POLICY_MAX_CHARS} STS accepts",
            denied.join(", ")
        ));
    }
    if let Err(e) = iam::check_sts_limits(&json) {
        return with_prefix(format!(
            "the rewritten session policy is not acceptable to STS: {e}"
        ));
    }
    idfed_sdk::log!(
        info,
        "added a Deny for {} to the session policy",
        denied.join(", ")
    );
    let mut grant = request.grant();
    grant.policy = Some(json);
    Decision::allow(grant)
}

impl Policy for PolicyGuard {
    type Config = Config;

    fn check_config(config: &Config) -> Result<(), ConfigError> {
        if config.actions.is_empty() {
            return Err(ConfigError::at(
                "/actions",
                "actions must list at least one action pattern",
            ));
        }
        for (i, a) in config.actions.iter().enumerate() {
            if !valid_action_pattern(a) {
                return Err(ConfigError::at(
                    format!("/actions/{i}"),
                    format!(
                        "{a:?} is not an action pattern such as \"iam:*\", \"s3:Delete*\" or \"*\""
                    ),
                ));
            }
        }
        Ok(())
    }

    fn evaluate(config: &Config, request: &Request) -> Result<Decision, PluginError> {
        Ok(decide(config, request))
    }
}

idfed_sdk::export_policy!(PolicyGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use idfed_sdk::testing::sample_request;

    const S3: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    const ADMIN: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","iam:Create*"],"Resource":"*"}]}"#;

    fn req(principal: PrincipalType, policy: Option<&str>) -> Request {
        let mut r = sample_request();
        r.connector.principal_type = principal;
        r.policy = policy.map(String::from);
        r
    }

    fn eval(config: &str, r: &Request) -> Decision {
        idfed_sdk::evaluate::<PolicyGuard>(config, r).unwrap()
    }

    #[test]
    fn deny_mode() {
        let r = req(PrincipalType::AssumedRole, Some(S3));
        assert_eq!(eval("", &r), Decision::allow_unchanged(&r));
        let d = eval("", &req(PrincipalType::AssumedRole, Some(ADMIN)));
        assert_eq!(
            d.deny_reason().unwrap(),
            "policy-guard: the session policy could allow iam:*, which this connector does not permit"
        );
        let all = r#"{"actions": ["iam:*", "organizations:*", "*"]}"#;
        let d = eval(all, &req(PrincipalType::FederatedUser, Some(S3)));
        assert_eq!(
            d.deny_reason().unwrap(),
            "policy-guard: the session policy could allow *, which this connector does not permit"
        );
    }

    #[test]
    fn no_inline_policy() {
        let role = req(PrincipalType::AssumedRole, None);
        assert_eq!(
            eval("", &role).deny_reason().unwrap(),
            "policy-guard: without a session policy the role's full permissions apply, which could include iam:*, organizations:*; send a session policy that does not allow them"
        );
        let d = eval(r#"{"mode": "rewrite"}"#, &role);
        assert_eq!(
            d.as_grant().unwrap().policy.as_deref(),
            Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Effect":"Deny","Action":["iam:*","organizations:*"],"Resource":"*"}]}"#
            )
        );
        let fed = req(PrincipalType::FederatedUser, None);
        assert_eq!(eval("", &fed), Decision::allow_unchanged(&fed));
        assert_eq!(
            eval(r#"{"mode": "rewrite"}"#, &fed),
            Decision::allow_unchanged(&fed)
        );
        let iam_user = req(PrincipalType::IamUser, Some(ADMIN));
        assert_eq!(eval("", &iam_user), Decision::allow_unchanged(&iam_user));
    }

    #[test]
    fn rewrite_mode_appends_a_deny_that_narrows() {
        let r = req(PrincipalType::AssumedRole, Some(ADMIN));
        let d = eval(r#"{"mode": "rewrite"}"#, &r);
        let policy = d.as_grant().unwrap().policy.clone().unwrap();
        assert_eq!(
            policy,
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","iam:Create*"],"Resource":"*"},{"Effect":"Deny","Action":"iam:*","Resource":"*"}]}"#
        );
        let new = PolicyDocument::parse(&policy).unwrap();
        assert!(
            new.is_within(&PolicyDocument::parse(ADMIN).unwrap())
                .is_ok()
        );
        assert!(!new.allows_action("iam:CreateUser"));
        // A policy already guarded passes unchanged.
        let again = req(PrincipalType::AssumedRole, Some(&policy));
        assert_eq!(
            eval(r#"{"mode": "rewrite"}"#, &again),
            Decision::allow_unchanged(&again)
        );
        // The rewritten role-wide policy is within "allow all".
        let role = eval(
            r#"{"mode": "rewrite"}"#,
            &req(PrincipalType::AssumedRole, None),
        );
        let p = PolicyDocument::parse(role.as_grant().unwrap().policy.as_deref().unwrap()).unwrap();
        assert!(p.is_within(&PolicyDocument::allow_all()).is_ok());
    }

    #[test]
    fn rewrite_that_breaks_the_sts_limit_denies() {
        let resources: Vec<String> = (0..70)
            .map(|i| format!("\"arn:aws:s3:::bucket-{i:03}/*\""))
            .collect();
        let text = format!(
            r#"{{"Statement":[{{"Effect":"Allow","Action":"*","Resource":[{}]}}]}}"#,
            resources.join(",")
        );
        assert!(text.len() <= 2048 && text.len() > 2000, "{}", text.len());
        let d = eval(
            r#"{"mode": "rewrite"}"#,
            &req(PrincipalType::AssumedRole, Some(&text)),
        );
        let reason = d.deny_reason().unwrap();
        assert!(
            reason.starts_with("policy-guard: the session policy could allow iam:*, organizations:*, and denying them would make it ")
                && reason.ends_with(" characters, more than the 2048 STS accepts"),
            "{reason}"
        );
    }

    #[test]
    fn policy_arns() {
        let mut r = req(PrincipalType::AssumedRole, Some(S3));
        r.policy_arns = vec!["arn:aws:iam::aws:policy/AdministratorAccess".into()];
        assert_eq!(
            eval("", &r),
            Decision::allow_unchanged(&r),
            "ARNs cannot be inspected"
        );
        assert_eq!(
            eval(r#"{"refuse_policy_arns": true}"#, &r)
                .deny_reason()
                .unwrap(),
            "policy-guard: managed policy ARNs cannot be inspected and are not accepted on this connector; send an inline session policy instead"
        );
        // Rewrite mode denies every guarded action when ARNs are present.
        let d = eval(r#"{"mode": "rewrite"}"#, &r);
        let p = PolicyDocument::parse(d.as_grant().unwrap().policy.as_deref().unwrap()).unwrap();
        assert!(
            !p.allows_action("iam:*")
                && !p.allows_action("organizations:*")
                && p.allows_action("s3:*")
        );
        // Without an inline policy, only a Deny is added (an Allow-all would widen the ARNs).
        r.policy = None;
        let d = eval(r#"{"mode": "rewrite"}"#, &r);
        assert_eq!(
            d.as_grant().unwrap().policy.as_deref(),
            Some(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["iam:*","organizations:*"],"Resource":"*"}]}"#
            )
        );
        r.connector.principal_type = PrincipalType::FederatedUser;
        assert!(
            eval(r#"{"mode": "rewrite"}"#, &r)
                .as_grant()
                .unwrap()
                .policy
                .is_some()
        );
    }

    #[test]
    fn invalid_inline_policy_denies() {
        let d = eval("", &req(PrincipalType::AssumedRole, Some("{nope")));
        assert!(
            d.deny_reason()
                .unwrap()
                .starts_with("policy-guard: the session policy cannot be checked: ")
        );
    }

    #[test]
    fn config_validation() {
        let check = |c: &str| idfed_sdk::validate_config::<PolicyGuard>(c);
        assert!(check("").is_ok());
        assert!(check(r#"{"mode": "rewrite", "actions": ["iam:*", "*", "s3:Delete?bject"], "refuse_policy_arns": true}"#).is_ok());
        assert_eq!(
            check(r#"{"mode": "block"}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/mode")
        );
        assert_eq!(
            check(r#"{"actions": []}"#).unwrap_err().pointer.as_deref(),
            Some("/actions")
        );
        assert_eq!(
            check(r#"{"actions": ["iam:*", "iam"]}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/actions/1")
        );
        assert_eq!(
            check(r#"{"actions": ["iam:* "]}"#)
                .unwrap_err()
                .pointer
                .as_deref(),
            Some("/actions/0")
        );
    }
}
