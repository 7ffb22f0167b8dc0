//! Convenience methods on the contract's types.

use crate::{
    ApprovalRequirement, ConfigError, Decision, Denial, Grant, PluginError, PrincipalType, Purpose,
    Request, SessionTag, Timestamp,
};

impl Grant {
    /// The grant that hands the request on unchanged: its policy, policy ARNs, tags and duration.
    pub fn from_request(request: &Request) -> Grant {
        Grant {
            policy: request.policy.clone(),
            policy_arns: request.policy_arns.clone(),
            tags: request.tags.clone(),
            duration_seconds: request.duration_seconds,
        }
    }

    /// Whether the grant has a session tag with this key (compared case-insensitively, as STS and the host do).
    pub fn has_tag(&self, key: &str) -> bool {
        let key = key.to_lowercase();
        self.tags.iter().any(|t| t.key.to_lowercase() == key)
    }
}

impl Request {
    /// The grant that hands this request on unchanged; narrow it and pass it to [`Decision::allow`].
    pub fn grant(&self) -> Grant {
        Grant::from_request(self)
    }

    /// Whether the caller belongs to this group (exact, case-sensitive match).
    pub fn caller_in_group(&self, group: &str) -> bool {
        self.caller.groups.iter().any(|g| g == group)
    }

    /// Whether the caller belongs to any of these groups.
    pub fn caller_in_any_group<S: AsRef<str>>(&self, groups: &[S]) -> bool {
        groups.iter().any(|g| self.caller_in_group(g.as_ref()))
    }

    /// Whether the request was approved (it carries an [`Approval`](crate::Approval)).
    pub fn is_approved(&self) -> bool {
        self.approval.is_some()
    }

    /// The value, as JSON text, of the workload caller's token claim `name`; none for a caller that is
    /// not a workload or a claim its token lacks.
    pub fn workload_claim(&self, name: &str) -> Option<&str> {
        let workload = self.caller.workload.as_ref()?;
        workload
            .claims
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value.as_str())
    }
}

impl Purpose {
    /// The purpose as text: `credentials`, `console-sign-in`, or `service-token:<service>`.
    pub fn to_text(&self) -> String {
        match self {
            Purpose::Credentials => "credentials".into(),
            Purpose::ConsoleSignIn => "console-sign-in".into(),
            Purpose::ServiceToken(service) => format!("service-token:{service}"),
        }
    }
}

impl Decision {
    /// Allows the request with this grant.
    pub fn allow(grant: Grant) -> Decision {
        Decision::Allow(grant)
    }

    /// Allows the request as it is.
    pub fn allow_unchanged(request: &Request) -> Decision {
        Decision::Allow(Grant::from_request(request))
    }

    /// Denies the request. The reason is shown to the caller as it is: it must hold nothing secret.
    pub fn deny(reason: impl Into<String>) -> Decision {
        Decision::Deny(Denial {
            reason: reason.into(),
        })
    }

    /// Refuses the request until a member of `group` (someone other than the requester) approves it. The
    /// reason is shown to the requester and to the approvers as it is: it must hold nothing secret. Once
    /// approved, the plugin sees the request again with [`Request::approval`] set.
    pub fn needs_approval(group: impl Into<String>, reason: impl Into<String>) -> Decision {
        Decision::NeedsApproval(ApprovalRequirement {
            group: group.into(),
            reason: reason.into(),
            max_duration_seconds: None,
        })
    }

    /// As [`needs_approval`](Decision::needs_approval), and an approval may grant at most
    /// `max_duration_seconds`.
    pub fn needs_approval_for(
        group: impl Into<String>,
        reason: impl Into<String>,
        max_duration_seconds: u32,
    ) -> Decision {
        Decision::NeedsApproval(ApprovalRequirement {
            group: group.into(),
            reason: reason.into(),
            max_duration_seconds: Some(max_duration_seconds),
        })
    }

    /// Whether this is an allow.
    pub fn is_allow(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }

    /// The grant, if this is an allow.
    pub fn as_grant(&self) -> Option<&Grant> {
        match self {
            Decision::Allow(g) => Some(g),
            Decision::Deny(_) | Decision::NeedsApproval(_) => None,
        }
    }

    /// The reason, if this is a deny.
    pub fn deny_reason(&self) -> Option<&str> {
        match self {
            Decision::Deny(d) => Some(&d.reason),
            Decision::Allow(_) | Decision::NeedsApproval(_) => None,
        }
    }

    /// What approval is needed, if this is a needs-approval.
    pub fn approval_requirement(&self) -> Option<&ApprovalRequirement> {
        match self {
            Decision::NeedsApproval(needs) => Some(needs),
            Decision::Allow(_) | Decision::Deny(_) => None,
        }
    }
}

impl PluginError {
    /// A failure inside the plugin (reported to administrators, not to the caller).
    pub fn internal(message: impl Into<String>) -> PluginError {
        PluginError::Internal(message.into())
    }

    /// The binding's configuration cannot be used.
    pub fn invalid_config(message: impl Into<String>) -> PluginError {
        PluginError::InvalidConfig(message.into())
    }
}

impl ConfigError {
    /// A configuration error about the document as a whole.
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
            pointer: None,
        }
    }

    /// A configuration error about the value at a JSON pointer such as `/rules/0/group`.
    pub fn at(pointer: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            message: message.into(),
            pointer: Some(pointer.into()),
        }
    }

    /// The message, followed by the pointer when there is one: `message (at /rules/0)`.
    pub fn to_text(&self) -> String {
        match &self.pointer {
            Some(p) if !p.is_empty() => format!("{} (at {p})", self.message),
            _ => self.message.clone(),
        }
    }
}

impl From<serde_json::Error> for ConfigError {
    fn from(err: serde_json::Error) -> ConfigError {
        ConfigError::new(err.to_string())
    }
}

impl SessionTag {
    /// A session tag.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> SessionTag {
        SessionTag {
            key: key.into(),
            value: value.into(),
        }
    }
}

impl PrincipalType {
    /// The WIT name: `federated-user`, `iam-user` or `assumed-role`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PrincipalType::FederatedUser => "federated-user",
            PrincipalType::IamUser => "iam-user",
            PrincipalType::AssumedRole => "assumed-role",
        }
    }

    /// Whether STS takes a session policy for this principal type (all but `iam-user`).
    pub fn takes_session_policy(&self) -> bool {
        !matches!(self, PrincipalType::IamUser)
    }

    /// Whether STS takes session tags for this principal type (all but `iam-user`).
    pub fn takes_session_tags(&self) -> bool {
        !matches!(self, PrincipalType::IamUser)
    }
}

impl Timestamp {
    /// A timestamp of whole seconds since the Unix epoch.
    pub fn from_seconds(seconds: u64) -> Timestamp {
        Timestamp {
            seconds,
            nanoseconds: 0,
        }
    }

    /// The timestamp as a [`std::time::SystemTime`].
    pub fn to_system_time(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::new(self.seconds, self.nanoseconds)
    }

    /// The timestamp from a [`std::time::SystemTime`] (times before the epoch become the epoch).
    pub fn from_system_time(time: std::time::SystemTime) -> Timestamp {
        let d = time
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            seconds: d.as_secs(),
            nanoseconds: d.subsec_nanos(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::sample_request;

    #[test]
    fn allow_unchanged_copies_the_request() {
        let r = sample_request();
        let d = Decision::allow_unchanged(&r);
        let g = d.as_grant().unwrap();
        assert_eq!(g.duration_seconds, r.duration_seconds);
        assert_eq!(g.policy, r.policy);
        assert_eq!(r.grant(), *g);
        assert!(d.is_allow());
        assert_eq!(Decision::deny("no").deny_reason(), Some("no"));
    }

    #[test]
    fn config_error_text() {
        assert_eq!(ConfigError::at("/a/0", "bad").to_text(), "bad (at /a/0)");
        assert_eq!(ConfigError::new("bad").to_text(), "bad");
    }

    #[test]
    fn timestamp_round_trip() {
        let t = Timestamp {
            seconds: 1_700_000_000,
            nanoseconds: 5,
        };
        assert_eq!(Timestamp::from_system_time(t.to_system_time()), t);
    }
}
