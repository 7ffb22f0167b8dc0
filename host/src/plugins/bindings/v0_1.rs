//! The generated host bindings for the frozen `idfed:policy@0.1.0` world (`wit/since_v0.1.0/`), and the
//! conversion of the host's own request into them: what 0.1.0 lacks (justification, ticket, purpose,
//! approval, the workload's claims) is left out.

use std::time::SystemTime;

use super::super::request::{self as host, PolicyRequest};

wasmtime::component::bindgen!({
    path: "../wit/since_v0.1.0",
    world: "policy-plugin",
    exports: { default: async },
});

pub use self::idfed::policy::types;

/// The contract's version.
pub const VERSION: &str = "0.1.0";
/// The package with its version.
pub const PACKAGE: &str = "idfed:policy@0.1.0";
/// The interface a plugin of this version exports.
pub const POLICY_EXPORT: &str = "idfed:policy/policy@0.1.0";

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
        }
    }
}
