//! The generated host bindings for the `idfed:policy@0.2.0` world (`wit/since_v0.2.0/`), and the conversion
//! of the host's own request into them.

use std::time::SystemTime;

use super::super::request::{
    self as host, MAX_JUSTIFICATION_BYTES, MAX_TICKET_BYTES, PolicyRequest,
};

wasmtime::component::bindgen!({
    path: "../wit/since_v0.2.0",
    world: "policy-plugin",
    exports: { default: async },
});

pub use self::idfed::policy::types;

/// The contract's version.
pub const VERSION: &str = "0.2.0";
/// The package with its version.
pub const PACKAGE: &str = "idfed:policy@0.2.0";
/// The interface a plugin of this version exports.
pub const POLICY_EXPORT: &str = "idfed:policy/policy@0.2.0";

pub fn timestamp(time: SystemTime) -> types::Timestamp {
    let (seconds, nanoseconds) = super::since_epoch(time);
    types::Timestamp {
        seconds,
        nanoseconds,
    }
}

fn principal_type(p: host::PrincipalType) -> types::PrincipalType {
    match p {
        host::PrincipalType::FederatedUser => types::PrincipalType::FederatedUser,
        host::PrincipalType::IamUser => types::PrincipalType::IamUser,
        host::PrincipalType::AssumedRole => types::PrincipalType::AssumedRole,
    }
}

fn tags(tags: &[host::SessionTag]) -> Vec<types::SessionTag> {
    tags.iter()
        .map(|t| types::SessionTag {
            key: t.key.clone(),
            value: t.value.clone(),
        })
        .collect()
}

/// At most `max` bytes of `text`, cut at a character boundary: the cap 0.2.0 documents.
fn capped(text: &Option<String>, max: usize) -> Option<String> {
    text.as_deref()
        .map(|t| t[..t.floor_char_boundary(max)].to_owned())
}

fn workload(w: &host::WorkloadIdentity) -> types::WorkloadIdentity {
    types::WorkloadIdentity {
        issuer: w.issuer.clone(),
        subject: w.subject.clone(),
        claims: w
            .claims
            .iter()
            .map(|c| types::Claim {
                name: c.name.clone(),
                value: c.value.clone(),
            })
            .collect(),
    }
}

fn purpose(p: &host::Purpose) -> types::Purpose {
    match p {
        host::Purpose::Credentials => types::Purpose::Credentials,
        host::Purpose::ConsoleSignIn => types::Purpose::ConsoleSignIn,
        host::Purpose::ServiceToken(service) => types::Purpose::ServiceToken(service.clone()),
    }
}

impl From<&PolicyRequest> for types::Request {
    fn from(r: &PolicyRequest) -> Self {
        types::Request {
            request_id: r.request_id.clone(),
            caller: types::Caller {
                user_name: r.caller.user_name.clone(),
                groups: r.caller.groups.clone(),
                is_admin: r.caller.is_admin,
                is_system_scope: r.caller.is_system_scope,
                source_ip: r.caller.source_ip.clone(),
                user_agent: r.caller.user_agent.clone(),
                workload: r.caller.workload.as_ref().map(workload),
            },
            connector: types::Connector {
                name: r.connector.name.clone(),
                principal_type: principal_type(r.connector.principal_type),
                account_name: r.connector.account_name.clone(),
                role_arn: r.connector.role_arn.clone(),
                default_duration_seconds: r.connector.default_duration_seconds,
                max_duration_seconds: r.connector.max_duration_seconds,
            },
            requested_duration_seconds: r.requested_duration_seconds,
            duration_seconds: r.duration_seconds,
            policy: r.policy.clone(),
            policy_arns: r.policy_arns.clone(),
            tags: tags(&r.tags),
            time: timestamp(r.time),
            justification: capped(&r.justification, MAX_JUSTIFICATION_BYTES),
            ticket: capped(&r.ticket, MAX_TICKET_BYTES),
            purpose: purpose(&r.purpose),
            approval: r.approval.as_ref().map(|a| types::Approval {
                approver: a.approver.clone(),
                approved_at: timestamp(a.approved_at),
                comment: a.comment.clone(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn justification_and_ticket_are_cut_at_their_caps_on_a_character_boundary() {
        let long = Some("é".repeat(MAX_JUSTIFICATION_BYTES));
        let cut = capped(&long, MAX_JUSTIFICATION_BYTES).unwrap();
        assert_eq!(cut.len(), MAX_JUSTIFICATION_BYTES);
        let odd = capped(&Some("aé".repeat(100)), 4).unwrap();
        assert_eq!(odd, "aéa");
        assert_eq!(capped(&None, 4), None);
        assert_eq!(
            capped(&Some("OPS-1".into()), MAX_TICKET_BYTES).unwrap(),
            "OPS-1"
        );
    }

    #[test]
    fn the_version_constants_agree() {
        assert_eq!(PACKAGE, format!("idfed:policy@{VERSION}"));
        assert_eq!(POLICY_EXPORT, format!("idfed:policy/policy@{VERSION}"));
        assert_eq!(
            super::super::v0_1::PACKAGE,
            format!("idfed:policy@{}", super::super::v0_1::VERSION)
        );
        assert_eq!(
            super::super::v0_1::POLICY_EXPORT,
            format!("idfed:policy/policy@{}", super::super::v0_1::VERSION)
        );
    }
}
