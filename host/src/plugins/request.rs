//! The host's side of the plugin contract: the request a plugin sees and the decision it returns, as plain
//! Rust types with a JSON form (used by `idfed plugin eval` and by the vend pipeline).

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

pub use idfed_api::PrincipalType;
pub use idfed_api::admin::SessionTag;

/// Who is asking for credentials.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Caller {
    /// The user's name, or none for a system-scope call.
    #[serde(default)]
    pub user_name: Option<String>,
    /// All the user's groups, nested ones included.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether the caller is an administrator.
    #[serde(default)]
    pub is_admin: bool,
    /// Whether the call was made with a system-scope API key.
    #[serde(default)]
    pub is_system_scope: bool,
    /// The caller's address as idfed saw it.
    #[serde(default)]
    pub source_ip: Option<String>,
    /// The caller's `User-Agent`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// For a system-scope caller that came with a workload's OIDC token: who the token says it is.
    #[serde(default)]
    pub workload: Option<WorkloadIdentity>,
}

/// A workload (a CI job…) that called with an OIDC token idfed verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadIdentity {
    /// The issuer's name as configured (`[[workload.issuers]] name`).
    pub issuer: String,
    /// The token's `sub`.
    pub subject: String,
    /// The token's claims kept by idfed, by name.
    #[serde(default)]
    pub claims: Vec<Claim>,
}

/// One claim of a workload's token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The claim's name.
    pub name: String,
    /// Its value as JSON text (`"org/app"`, with the quotes, for a string).
    pub value: String,
}

/// What the credentials of a request are for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Credentials handed to the caller.
    #[default]
    Credentials,
    /// A console sign-in URL made from them.
    ConsoleSignIn,
    /// Another service's token obtained with them: `ecr`, `codeartifact`.
    ServiceToken(String),
}

impl Purpose {
    /// As people read it: `credentials`, `console-sign-in`, `service-token:<service>`.
    pub fn to_text(&self) -> String {
        match self {
            Purpose::Credentials => "credentials".into(),
            Purpose::ConsoleSignIn => "console-sign-in".into(),
            Purpose::ServiceToken(service) => format!("service-token:{service}"),
        }
    }
}

/// Who approved a request, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// The approver's user name.
    pub approver: String,
    /// When they approved (RFC 3339 in JSON).
    #[serde(with = "rfc3339")]
    pub approved_at: SystemTime,
    /// Their comment, if any.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The most bytes of a justification passed to plugins (0.2.0 documents it).
pub const MAX_JUSTIFICATION_BYTES: usize = 1024;
/// The most bytes of a ticket reference passed to plugins (0.2.0 documents it).
pub const MAX_TICKET_BYTES: usize = 128;

/// The connector a request is made to, as plugins see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorInfo {
    /// The connector's unique name.
    pub name: String,
    /// How credentials are obtained.
    pub principal_type: PrincipalType,
    /// The account entry whose keys the connector uses.
    pub account_name: String,
    /// The role assumed, for assumed-role connectors.
    #[serde(default)]
    pub role_arn: Option<String>,
    /// The connector's default duration in seconds.
    #[serde(default)]
    pub default_duration_seconds: Option<u32>,
    /// The connector's maximum duration in seconds.
    #[serde(default)]
    pub max_duration_seconds: Option<u32>,
}

/// One credential request, as the plugin chain sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// A unique id for correlating logs and the audit record.
    #[serde(default)]
    pub request_id: String,
    /// Who is asking.
    pub caller: Caller,
    /// Which connector.
    pub connector: ConnectorInfo,
    /// The duration the caller asked for, if any.
    #[serde(default)]
    pub requested_duration_seconds: Option<u32>,
    /// The duration that will be requested from STS; a grant may only lower it.
    pub duration_seconds: u32,
    /// The inline session policy (IAM policy JSON), if any.
    #[serde(default)]
    pub policy: Option<String>,
    /// Managed policy ARNs sent as session policies.
    #[serde(default)]
    pub policy_arns: Vec<String>,
    /// Session tags sent to STS.
    #[serde(default)]
    pub tags: Vec<SessionTag>,
    /// When the request was received (RFC 3339 in JSON; now, when omitted).
    #[serde(default = "SystemTime::now", with = "rfc3339")]
    pub time: SystemTime,
    /// The caller's justification, if they gave one (at most [`MAX_JUSTIFICATION_BYTES`] reach a plugin).
    #[serde(default)]
    pub justification: Option<String>,
    /// The caller's ticket reference, if any (at most [`MAX_TICKET_BYTES`] reach a plugin).
    #[serde(default)]
    pub ticket: Option<String>,
    /// What the credentials are for (credentials, when omitted).
    #[serde(default)]
    pub purpose: Purpose,
    /// Who approved the request, on one repeated after an approval.
    #[serde(default)]
    pub approval: Option<Approval>,
}

impl PolicyRequest {
    /// The grant that passes this request on unchanged.
    pub fn unchanged_grant(&self) -> Grant {
        Grant {
            policy: self.policy.clone(),
            policy_arns: self.policy_arns.clone(),
            tags: self.tags.clone(),
            duration_seconds: self.duration_seconds,
        }
    }

    /// This request as the next plugin in a chain sees it, after `grant`.
    pub fn with_grant(&self, grant: &Grant) -> PolicyRequest {
        PolicyRequest {
            policy: grant.policy.clone(),
            policy_arns: grant.policy_arns.clone(),
            tags: grant.tags.clone(),
            duration_seconds: grant.duration_seconds,
            ..self.clone()
        }
    }
}

/// What an allowing plugin hands on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The inline session policy to send.
    pub policy: Option<String>,
    /// The managed policy ARNs to send.
    pub policy_arns: Vec<String>,
    /// The session tags to send.
    pub tags: Vec<SessionTag>,
    /// The duration to request, in seconds.
    pub duration_seconds: u32,
}

/// A plugin's verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Go on with this grant.
    Allow {
        /// What the plugin hands on.
        grant: Grant,
    },
    /// Refuse, with a reason meant for the caller.
    Deny {
        /// Shown to the caller.
        reason: String,
    },
    /// Refuse until a member of `group` (not the requester) approves (contract 0.2.0).
    NeedsApproval {
        /// The group whose members may approve.
        group: String,
        /// Why, shown to the requester and the approvers.
        reason: String,
        /// The longest duration an approval may grant, in seconds.
        max_duration_seconds: Option<u32>,
    },
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(*time))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text).map_err(|e| {
            D::Error::custom(format!(
                "`time` must be an RFC 3339 UTC time such as 2026-11-30T09:00:00Z: {e}"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_json_round_trips_and_defaults_what_is_optional() {
        let text = r#"{
            "caller": {"user_name": "alice", "groups": ["dev"]},
            "connector": {"name": "dev", "principal_type": "assumed-role", "account_name": "main",
                          "role_arn": "arn:aws:iam::123456789012:role/dev"},
            "duration_seconds": 3600,
            "time": "2026-11-30T09:15:00Z"
        }"#;
        let request: PolicyRequest = serde_json::from_str(text).unwrap();
        assert_eq!(request.connector.principal_type, PrincipalType::AssumedRole);
        assert_eq!(request.caller.user_name.as_deref(), Some("alice"));
        assert!(request.policy_arns.is_empty());
        let again: PolicyRequest =
            serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(again, request);
        assert_eq!(
            again
                .time
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_796_030_100
        );
    }

    #[test]
    fn unknown_fields_and_bad_times_are_refused_with_the_field_named() {
        let err = serde_json::from_str::<PolicyRequest>(
            r#"{"caller": {}, "connector": {"name": "d", "principal_type": "iam-user", "account_name": "a"},
                "duration_seconds": 900, "durration": 5}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("durration"), "{err}");
        let err = serde_json::from_str::<PolicyRequest>(
            r#"{"caller": {}, "connector": {"name": "d", "principal_type": "iam-user", "account_name": "a"},
                "duration_seconds": 900, "time": "yesterday"}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("RFC 3339"), "{err}");
    }

    #[test]
    fn the_0_2_fields_default_and_round_trip() {
        let text = r#"{
            "caller": {"is_system_scope": true, "workload": {"issuer": "ci", "subject": "repo:org/app",
                       "claims": [{"name": "ref", "value": "\"refs/heads/main\""}]}},
            "connector": {"name": "d", "principal_type": "iam-user", "account_name": "a"},
            "duration_seconds": 900, "time": "2026-11-30T09:15:00Z",
            "justification": "incident 42", "ticket": "OPS-1",
            "purpose": {"service_token": "ecr"},
            "approval": {"approver": "bob", "approved_at": "2026-11-30T09:00:00Z"}
        }"#;
        let request: PolicyRequest = serde_json::from_str(text).unwrap();
        assert_eq!(request.purpose, Purpose::ServiceToken("ecr".into()));
        assert_eq!(
            request.caller.workload.as_ref().unwrap().claims[0].name,
            "ref"
        );
        assert_eq!(request.approval.as_ref().unwrap().approver, "bob");
        let again: PolicyRequest =
            serde_json::from_str(&serde_json::to_string(&request).unwrap()).unwrap();
        assert_eq!(again, request);
        let plain: PolicyRequest = serde_json::from_str(
            r#"{"caller": {}, "connector": {"name": "d", "principal_type": "iam-user", "account_name": "a"},
                "duration_seconds": 900}"#,
        )
        .unwrap();
        assert_eq!(plain.purpose, Purpose::Credentials);
        assert_eq!(
            (plain.justification, plain.ticket, plain.approval),
            (None, None, None)
        );
        assert_eq!(
            serde_json::to_string(&Purpose::ConsoleSignIn).unwrap(),
            r#""console_sign_in""#
        );
    }

    #[test]
    fn decisions_serialize_with_a_tag() {
        let deny = Decision::Deny {
            reason: "no".into(),
        };
        assert_eq!(
            serde_json::to_string(&deny).unwrap(),
            r#"{"decision":"deny","reason":"no"}"#
        );
    }
}
