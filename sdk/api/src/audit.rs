//! The audit log's records (`GET /admin/audit`): the same types the server's hash chain stores, so an
//! answer is the record as chained.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What happened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct AuditEvent {
    /// The request's id (also in the service's logs and the caller's response).
    pub request_id: String,
    /// What was asked: `vend`, `admin.connector.update`…
    pub action: String,
    /// Who: the user name, `system:<key name>`, or the workload's name (`<issuer>:…`).
    pub caller: Option<String>,
    /// `user`, `system`, `workload` or `admin`.
    pub caller_kind: Option<String>,
    /// The caller's address as idfed saw it.
    pub source_ip: Option<String>,
    /// The caller's `User-Agent` (cut to 1 KiB).
    pub user_agent: Option<String>,
    /// The connector's id.
    pub connector_id: Option<String>,
    /// The connector's name.
    pub connector: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// The stable error code when refused or failed (`forbidden`, `plugin_timeout`, `sts_access_denied`…).
    pub code: Option<String>,
    /// The plugin binding that denied or faulted.
    pub binding: Option<String>,
    /// That binding's plugin (its digest).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// The deny reason or error message (cut to 1 KiB); never a secret.
    pub reason: Option<String>,
    /// The duration granted.
    pub duration_seconds: Option<u32>,
    /// Whether the duration was capped below what was asked.
    pub capped: bool,
    /// SHA-256 of the session policy sent, not the policy.
    pub policy_sha256: Option<String>,
    /// The access key id of the credentials issued; never the secret.
    pub access_key_id: Option<String>,
    /// Whether the credentials handed out were issued before, for an identical request (the connector's
    /// credential cache, or an identical request at the same time): `access_key_id` names the earlier issue.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// The caller's justification, as given (vends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub justification: Option<String>,
    /// The caller's ticket reference, as given (vends only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
}

/// How a request or change ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Credentials were issued.
    #[default]
    Issued,
    /// Refused by authorization or validation.
    Refused,
    /// A policy plugin denied it.
    PluginDenied,
    /// A policy plugin faulted (so it was denied).
    PluginFault,
    /// STS or idfed itself failed.
    Failed,
    /// An admin change was made.
    Changed,
}

/// A record of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Its place in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it was appended (whole microseconds), RFC 3339 in JSON.
    #[serde(with = "rfc3339")]
    #[schema(value_type = String)]
    pub time: SystemTime,
    /// What happened.
    pub event: AuditEvent,
    /// The previous record's hash (hex); 64 zeros for the first record ever.
    pub prev_hash: String,
    /// This record's hash (hex), as stored.
    pub hash: String,
}

/// Audit records, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecords {
    /// The records.
    pub records: Vec<AuditRecord>,
}

/// `#[serde(with = "idfed_api::audit::rfc3339")]`: a `SystemTime` as RFC 3339 UTC with microseconds, as
/// audit records write their times.
pub mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// `time` as audit records write it.
    pub fn format(time: SystemTime) -> String {
        humantime::format_rfc3339_micros(time.max(SystemTime::UNIX_EPOCH)).to_string()
    }

    /// Writes `time` (never before the epoch).
    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        let time = (*time).max(SystemTime::UNIX_EPOCH);
        serializer.collect_str(&humantime::format_rfc3339_micros(time))
    }

    /// Reads an RFC 3339 UTC time.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_rfc3339_weak(&text)
            .map_err(|e| D::Error::custom(format!("not an RFC 3339 UTC time: {e}")))
    }
}

/// Which records `GET /admin/audit` answers: every field narrows; none, the newest records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditQuery {
    /// Only this caller's records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this connector's records (id or name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Only the denials and faults of this plugin (its digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<String>,
    /// Only records of this outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Records from this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Records until this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// At most this many records (1 to 1000; the server's default if left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// The query's fields as `(name, value)` pairs, for a URL's query string.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let outcome = self.outcome.map(|o| {
            serde_json::to_value(o)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        });
        [
            ("user", self.user.clone()),
            ("connector", self.connector.clone()),
            ("plugin", self.plugin.clone()),
            ("outcome", outcome),
            ("since", self.since.clone()),
            ("until", self.until.clone()),
            ("limit", self.limit.map(|n| n.to_string())),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name, v)))
        .collect()
    }
}
