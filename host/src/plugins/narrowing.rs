//! The host's check that a plugin's grant narrows the request it was given and never widens it.
//!
//! Plugins are trusted to narrow, not to widen: whatever a plugin returns, the credentials idfed vends can
//! only be as powerful as the request before the chain, or less. The rules, per field:
//! - duration: may only go down (and not to 0);
//! - session tags: tags may be added (that is what tagging plugins are for), never changed or removed;
//!   `iam-user` connectors take none;
//! - policy ARNs: may only be removed;
//! - inline policy: every `Allow` statement must be covered by an `Allow` statement the request already had
//!   (see `idfed_sdk::iam::PolicyDocument::is_within`); `Deny` statements may be added. When the request
//!   had no session policy at all, an `assumed-role` request may take any policy (any session policy
//!   narrows a role), a `federated-user` request only `Deny` statements (it had no permissions), and
//!   `iam-user` none. An `assumed-role` request that had session policies must keep at least one, since
//!   removing them all would hand out the role's full permissions.
//!
//! Besides, a grant must be one STS can take (every rule of [`crate::sts::validate`] that applies to a
//! grant: counts, lengths and characters of tags and ARNs, policy size and characters, duration range):
//! one it cannot is the plugin's fault (`plugin_invalid_grant`), not the caller's.

use std::collections::{HashMap, HashSet};

use idfed_sdk::iam::{self, PolicyDocument};

use super::fault::PluginFault;
use super::request::{Grant, PolicyRequest, PrincipalType, SessionTag};
use crate::sts::validate::{self, ValidationError};

/// Checks `grant` against the request it answers; `Err` is the fault to report. `tag_keys` are the keys
/// of the session tags the grant may add (compared ignoring case).
pub fn check_grant(
    request: &PolicyRequest,
    grant: &Grant,
    tag_keys: &[String],
) -> Result<(), PluginFault> {
    check_sts_rules(request.connector.principal_type, grant)?;
    check_duration(request, grant)?;
    check_tags(request, grant, tag_keys)?;
    check_policies(request, grant)
}

/// Checks the tag keys a binding lets its plugin add: each a key STS takes, none twice (ignoring case).
pub fn check_tag_keys(keys: &[String]) -> Result<(), String> {
    let tags: Vec<SessionTag> = keys
        .iter()
        .map(|key| SessionTag {
            key: key.clone(),
            value: String::new(),
        })
        .collect();
    validate::check_tags(&tags).map_err(|e| {
        let field = match e.field.strip_prefix("tags") {
            Some(rest) => format!("tag_keys{}", rest.trim_end_matches(".key")),
            None => e.field,
        };
        format!(
            "{field}: {}",
            e.rule
                .replace("session tags may be sent", "tag keys may be listed")
        )
    })
}

fn invalid(e: ValidationError) -> PluginFault {
    PluginFault::InvalidGrant(format!("STS would refuse it: {e}"))
}

/// The rules of STS's own that a grant must meet, whatever it was given.
fn check_sts_rules(principal: PrincipalType, grant: &Grant) -> Result<(), PluginFault> {
    validate::check_duration(principal, grant.duration_seconds).map_err(invalid)?;
    validate::check_tags(&grant.tags).map_err(invalid)?;
    validate::check_policy_arns(&grant.policy_arns).map_err(invalid)?;
    validate::check_session_policy_size(grant.policy.as_deref(), &grant.policy_arns)
        .map_err(invalid)
}

fn check_duration(request: &PolicyRequest, grant: &Grant) -> Result<(), PluginFault> {
    if grant.duration_seconds > request.duration_seconds {
        return Err(PluginFault::WidenedGrant(format!(
            "duration of {} s is longer than the {} s it was given",
            grant.duration_seconds, request.duration_seconds
        )));
    }
    Ok(())
}

fn check_tags(
    request: &PolicyRequest,
    grant: &Grant,
    tag_keys: &[String],
) -> Result<(), PluginFault> {
    if request.connector.principal_type == PrincipalType::IamUser && !grant.tags.is_empty() {
        return Err(PluginFault::InvalidGrant(
            "iam-user connectors take no session tags".into(),
        ));
    }
    let mut granted = HashMap::with_capacity(grant.tags.len());
    for tag in &grant.tags {
        if granted
            .insert(tag.key.to_lowercase(), tag.value.as_str())
            .is_some()
        {
            return Err(PluginFault::InvalidGrant(format!(
                "session tag `{}` appears twice",
                tag.key
            )));
        }
    }
    let had: HashSet<String> = request.tags.iter().map(|t| t.key.to_lowercase()).collect();
    let may_add: HashSet<String> = tag_keys.iter().map(|k| k.to_lowercase()).collect();
    if let Some(added) = grant.tags.iter().find(|t| {
        let key = t.key.to_lowercase();
        !had.contains(&key) && !may_add.contains(&key)
    }) {
        return Err(PluginFault::WidenedGrant(format!(
            "adds session tag {:?}, a key this binding may not add ({})",
            added.key,
            if tag_keys.is_empty() {
                "it may add none".to_owned()
            } else {
                format!("it may add {}", tag_keys.join(", "))
            }
        )));
    }
    for tag in &request.tags {
        match granted.get(&tag.key.to_lowercase()) {
            Some(value) if *value == tag.value => {}
            Some(_) => {
                return Err(PluginFault::WidenedGrant(format!(
                    "changes session tag `{}`",
                    tag.key
                )));
            }
            None => {
                return Err(PluginFault::WidenedGrant(format!(
                    "removes session tag `{}`",
                    tag.key
                )));
            }
        }
    }
    Ok(())
}

fn check_policies(request: &PolicyRequest, grant: &Grant) -> Result<(), PluginFault> {
    if let Some(arn) = grant
        .policy_arns
        .iter()
        .find(|arn| !request.policy_arns.contains(arn))
    {
        return Err(PluginFault::WidenedGrant(format!("adds policy ARN {arn}")));
    }
    let principal = request.connector.principal_type;
    if principal == PrincipalType::IamUser && grant.policy.is_some() {
        return Err(PluginFault::InvalidGrant(
            "iam-user connectors take no session policy".into(),
        ));
    }
    let had_session_policy = request.policy.is_some() || !request.policy_arns.is_empty();
    let keeps_session_policy = grant.policy.is_some() || !grant.policy_arns.is_empty();
    if principal == PrincipalType::AssumedRole && had_session_policy && !keeps_session_policy {
        return Err(PluginFault::WidenedGrant(
            "removes every session policy, which would hand out the role's full permissions".into(),
        ));
    }
    let Some(text) = &grant.policy else {
        return Ok(());
    };
    if grant.policy == request.policy {
        return Ok(());
    }
    iam::check_sts_limits(text)
        .map_err(|e| PluginFault::InvalidGrant(format!("inline policy: {e}")))?;
    if principal == PrincipalType::AssumedRole && !had_session_policy {
        return Ok(());
    }
    let candidate = PolicyDocument::parse(text)
        .map_err(|e| PluginFault::InvalidGrant(format!("inline policy: {e}")))?;
    let baseline = match &request.policy {
        Some(before) => PolicyDocument::parse(before).map_err(|e| {
            PluginFault::InvalidGrant(format!("the request's own inline policy: {e}"))
        })?,
        None => PolicyDocument::parse(r#"{"Version":"2012-10-17","Statement":[]}"#)
            .expect("an empty policy parses"),
    };
    candidate
        .is_within(&baseline)
        .map_err(|why| PluginFault::WidenedGrant(format!("inline policy: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::request::{Caller, ConnectorInfo, SessionTag};

    const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::data/*"}]}"#;

    fn request(principal_type: PrincipalType, policy: Option<&str>) -> PolicyRequest {
        PolicyRequest {
            request_id: "r".into(),
            caller: Caller::default(),
            connector: ConnectorInfo {
                name: "c".into(),
                principal_type,
                account_name: "a".into(),
                role_arn: None,
                default_duration_seconds: None,
                max_duration_seconds: None,
            },
            requested_duration_seconds: None,
            duration_seconds: 3600,
            policy: policy.map(str::to_owned),
            policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
            tags: vec![SessionTag {
                key: "team".into(),
                value: "blue".into(),
            }],
            time: std::time::SystemTime::UNIX_EPOCH,
            justification: None,
            ticket: None,
            purpose: Default::default(),
            approval: None,
        }
    }

    fn code(request: &PolicyRequest, grant: &Grant) -> &'static str {
        check_grant(request, grant, &["user".to_owned()])
            .err()
            .map_or("ok", |f| f.code())
    }

    #[test]
    fn an_unchanged_grant_and_a_shorter_one_pass() {
        let r = request(PrincipalType::FederatedUser, Some(S3_READ));
        assert_eq!(code(&r, &r.unchanged_grant()), "ok");
        let shorter = Grant {
            duration_seconds: 900,
            ..r.unchanged_grant()
        };
        assert_eq!(code(&r, &shorter), "ok");
    }

    #[test]
    fn longer_or_zero_durations_are_faults() {
        let r = request(PrincipalType::FederatedUser, Some(S3_READ));
        assert_eq!(
            code(
                &r,
                &Grant {
                    duration_seconds: 3601,
                    ..r.unchanged_grant()
                }
            ),
            "plugin_widened_grant"
        );
        assert_eq!(
            code(
                &r,
                &Grant {
                    duration_seconds: 0,
                    ..r.unchanged_grant()
                }
            ),
            "plugin_invalid_grant"
        );
    }

    #[test]
    fn tags_may_be_added_but_not_changed_or_removed() {
        let r = request(PrincipalType::AssumedRole, Some(S3_READ));
        let mut added = r.unchanged_grant();
        added.tags.push(SessionTag {
            key: "user".into(),
            value: "alice".into(),
        });
        assert_eq!(code(&r, &added), "ok");
        let mut changed = r.unchanged_grant();
        changed.tags[0].value = "red".into();
        assert_eq!(code(&r, &changed), "plugin_widened_grant");
        let removed = Grant {
            tags: vec![],
            ..r.unchanged_grant()
        };
        assert_eq!(code(&r, &removed), "plugin_widened_grant");
        let mut twice = r.unchanged_grant();
        twice.tags.push(SessionTag {
            key: "TEAM".into(),
            value: "blue".into(),
        });
        assert_eq!(code(&r, &twice), "plugin_invalid_grant");
    }

    #[test]
    fn policy_arns_may_only_be_removed() {
        let r = request(PrincipalType::FederatedUser, Some(S3_READ));
        assert_eq!(
            code(
                &r,
                &Grant {
                    policy_arns: vec![],
                    ..r.unchanged_grant()
                }
            ),
            "ok"
        );
        let mut more = r.unchanged_grant();
        more.policy_arns
            .push("arn:aws:iam::aws:policy/AdministratorAccess".into());
        assert_eq!(code(&r, &more), "plugin_widened_grant");
    }

    #[test]
    fn inline_policies_may_narrow_or_add_denies_but_not_widen() {
        let r = request(PrincipalType::FederatedUser, Some(S3_READ));
        let narrower = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/reports/*"}]}"#;
        assert_eq!(
            code(
                &r,
                &Grant {
                    policy: Some(narrower.into()),
                    ..r.unchanged_grant()
                }
            ),
            "ok"
        );
        let with_deny = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"arn:aws:s3:::data/*"},{"Effect":"Deny","Action":"*","Resource":"*"}]}"#;
        assert_eq!(
            code(
                &r,
                &Grant {
                    policy: Some(with_deny.into()),
                    ..r.unchanged_grant()
                }
            ),
            "ok"
        );
        let wider = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::data/*"}]}"#;
        assert_eq!(
            code(
                &r,
                &Grant {
                    policy: Some(wider.into()),
                    ..r.unchanged_grant()
                }
            ),
            "plugin_widened_grant"
        );
        assert_eq!(
            code(
                &r,
                &Grant {
                    policy: Some("{not json".into()),
                    ..r.unchanged_grant()
                }
            ),
            "plugin_invalid_grant"
        );
    }

    #[test]
    fn what_no_session_policy_means_depends_on_the_principal_type() {
        let any = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
        let mut role = request(PrincipalType::AssumedRole, None);
        role.policy_arns.clear();
        assert_eq!(
            code(
                &role,
                &Grant {
                    policy: Some(any.into()),
                    ..role.unchanged_grant()
                }
            ),
            "ok"
        );
        let mut federated = request(PrincipalType::FederatedUser, None);
        federated.policy_arns.clear();
        assert_eq!(
            code(
                &federated,
                &Grant {
                    policy: Some(any.into()),
                    ..federated.unchanged_grant()
                }
            ),
            "plugin_widened_grant"
        );
        let mut iam_user = request(PrincipalType::IamUser, None);
        iam_user.policy_arns.clear();
        iam_user.tags.clear();
        assert_eq!(
            code(
                &iam_user,
                &Grant {
                    policy: Some(any.into()),
                    ..iam_user.unchanged_grant()
                }
            ),
            "plugin_invalid_grant"
        );
    }

    #[test]
    fn dropping_every_session_policy_of_a_role_widens_it() {
        let r = request(PrincipalType::AssumedRole, Some(S3_READ));
        let bare = Grant {
            policy: None,
            policy_arns: vec![],
            ..r.unchanged_grant()
        };
        assert_eq!(code(&r, &bare), "plugin_widened_grant");
        let f = request(PrincipalType::FederatedUser, Some(S3_READ));
        assert_eq!(
            code(
                &f,
                &Grant {
                    policy: None,
                    policy_arns: vec![],
                    ..f.unchanged_grant()
                }
            ),
            "ok"
        );
    }

    #[test]
    fn only_the_binding_s_tag_keys_may_be_added() {
        let r = request(PrincipalType::AssumedRole, Some(S3_READ));
        let add = |key: &str| {
            let mut grant = r.unchanged_grant();
            grant.tags.push(SessionTag {
                key: key.into(),
                value: "true".into(),
            });
            grant
        };
        // `code` lets the binding add `user` only.
        assert_eq!(code(&r, &add("user")), "ok");
        assert_eq!(code(&r, &add("USER")), "ok", "keys compare ignoring case");
        assert_eq!(code(&r, &add("idfed-admin")), "plugin_widened_grant");
        // A Cyrillic "у" is not a Latin "u".
        assert_eq!(code(&r, &add("\u{0443}ser")), "plugin_widened_grant");
        let none = check_grant(&r, &add("user"), &[]).unwrap_err();
        assert_eq!(none.code(), "plugin_widened_grant");
        assert!(none.to_string().contains("may add none"), "{none}");
    }

    #[test]
    fn grants_sts_cannot_take_are_invalid() {
        let r = request(PrincipalType::AssumedRole, Some(S3_READ));
        let with = |change: &dyn Fn(&mut Grant)| {
            let mut grant = r.unchanged_grant();
            change(&mut grant);
            code(&r, &grant)
        };
        assert_eq!(with(&|g| g.duration_seconds = 1), "plugin_invalid_grant");
        assert_eq!(with(&|g| g.duration_seconds = 899), "plugin_invalid_grant");
        assert_eq!(with(&|g| g.duration_seconds = 900), "ok");
        assert_eq!(
            with(&|g| g.policy_arns = vec![r.policy_arns[0].clone(); 2]),
            "plugin_invalid_grant",
            "a duplicate ARN"
        );
        assert_eq!(
            with(&|g| g.policy_arns = vec!["not-an-arn".into()]),
            "plugin_invalid_grant"
        );
        assert_eq!(
            with(&|g| {
                for i in 0..50 {
                    g.tags.push(SessionTag {
                        key: format!("user{i}"),
                        value: "v".into(),
                    });
                }
            }),
            "plugin_invalid_grant",
            "51 tags"
        );
        assert_eq!(
            with(&|g| g.tags.push(SessionTag {
                key: "user".into(),
                value: "<script>".into(),
            })),
            "plugin_invalid_grant",
            "a value STS refuses"
        );
        assert_eq!(
            with(&|g| g.tags.push(SessionTag {
                key: "user".into(),
                value: "v".repeat(257),
            })),
            "plugin_invalid_grant"
        );
    }

    #[test]
    fn binding_tag_keys_are_checked_as_sts_tag_keys() {
        assert!(check_tag_keys(&["team".into(), "cost-center".into()]).is_ok());
        assert!(check_tag_keys(&[]).is_ok());
        let twice = check_tag_keys(&["team".into(), "TEAM".into()]).unwrap_err();
        assert!(twice.starts_with("tag_keys[1]"), "{twice}");
        assert!(check_tag_keys(&["aws:team".into()]).is_err());
        assert!(check_tag_keys(&["bad key!".into()]).is_err());
        assert!(check_tag_keys(&[String::new()]).is_err());
    }
}
