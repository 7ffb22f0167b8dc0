//! The admin API (`/admin/…`): accounts, connectors, plugin bindings, system-scope API keys, plugins, the
//! directory's groups and policy examples. Administrators only.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::connectors::PrincipalType;

/// What answers show in place of a secret; sent back, it keeps the stored one.
pub const REDACTED: &str = "***";

/// An AWS account entry, as answers show it (its secret as [`REDACTED`]) and as administrators write it
/// (`PUT /admin/accounts/{name}`: the secret in the clear, or [`REDACTED`] or left out to keep the stored
/// one). No `Debug`: a written one holds a secret.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountBody {
    /// Unique name: 1-64 characters of `A-Za-z0-9._-` (on a `PUT`, the path's if left out).
    #[serde(default)]
    pub name: String,
    /// Free text for administrators.
    #[serde(default)]
    pub description: String,
    /// Whose credentials.
    pub source: AccountSource,
    /// The STS region (e.g. `eu-west-1`); `us-east-1` when none.
    #[serde(default)]
    pub region: Option<String>,
    /// An STS endpoint URL other than AWS's (a VPC endpoint, or a test STS).
    #[serde(default)]
    pub sts_endpoint: Option<String>,
}

/// Where an account's credentials come from.
#[derive(Clone, Serialize, Deserialize, ToSchema, zeroize::ZeroizeOnDrop)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AccountSource {
    /// An IAM user's long-term access key.
    IamUser {
        /// The access key id (`AKIA…`).
        access_key_id: String,
        /// The secret access key: write-only ([`REDACTED`] in answers).
        #[serde(default)]
        secret_access_key: Option<String>,
    },
    /// The host's own AWS credentials (environment, instance profile, IRSA…).
    HostCredentials,
}

/// The AWS accounts.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountList {
    /// The accounts, by name (secrets as [`REDACTED`]).
    pub accounts: Vec<AccountBody>,
}

/// An STS session tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionTag {
    /// The tag key.
    pub key: String,
    /// The tag value.
    pub value: String,
}

/// How a connector obtains credentials, with what each way needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Principal {
    /// `GetFederationToken`, the federated user named after the caller.
    FederatedUser,
    /// `GetSessionToken`.
    IamUser,
    /// `AssumeRole`.
    AssumedRole {
        /// The role to assume.
        role_arn: String,
        /// The external id the role's trust policy requires, if any.
        #[serde(default)]
        external_id: Option<String>,
        /// Session tags sent with every AssumeRole.
        #[serde(default)]
        session_tags: Vec<SessionTag>,
        /// Send the caller's name as `SourceIdentity` (shown in CloudTrail, kept through role chaining).
        #[serde(default)]
        source_identity: bool,
    },
}

impl Principal {
    /// The principal type.
    pub fn principal_type(&self) -> PrincipalType {
        match self {
            Principal::FederatedUser => PrincipalType::FederatedUser,
            Principal::IamUser => PrincipalType::IamUser,
            Principal::AssumedRole { .. } => PrincipalType::AssumedRole,
        }
    }

    /// The role ARN, for assumed-role connectors.
    pub fn role_arn(&self) -> Option<&str> {
        match self {
            Principal::AssumedRole { role_arn, .. } => Some(role_arn),
            _ => None,
        }
    }
}

/// A binding's limits; left out, the server's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    /// How long one call may take, in CPU time and in wall-clock time, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
    /// The most linear memory the plugin may grow to, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<usize>,
}

/// A plugin bound to a connector, as answers show it and as a connector's `PUT` may give it back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingBody {
    /// The binding's id: names it in faults and the audit log, and keys its private store.
    pub id: String,
    /// The plugin component's SHA-256 (hex).
    pub plugin: String,
    /// The configuration (JSON; a string holding JSON is read as that JSON).
    #[serde(default = "empty_object")]
    pub config: Value,
    /// Limits other than the defaults.
    #[serde(default)]
    pub limits: Option<LimitsBody>,
    /// The session tag keys the plugin may add.
    #[serde(default)]
    pub tag_keys: Vec<String>,
    /// Where in the chain (answers to `POST …/bindings` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub position: Option<usize>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// A new binding of a stored plugin to a connector (`POST /admin/connectors/{c}/bindings`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingInput {
    /// The plugin's digest.
    pub plugin: String,
    /// The plugin's configuration (`{}` if left out), checked by its `validate-config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Value>,
    /// Where in the chain (the end if left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<usize>,
    /// Limits other than the defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsBody>,
    /// The session tag keys the plugin may add to a request (none if left out). Tags are what ABAC
    /// policies (`aws:PrincipalTag/…`) grant on, so a plugin adding any other key is a fault
    /// (`plugin_widened_grant`). Each must be a key STS takes; compared ignoring case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(max_items = 50)]
    pub tag_keys: Vec<String>,
}

/// A connector's plugin chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BindingList {
    /// The connector's name.
    pub connector: String,
    /// The connector's id.
    pub connector_id: Uuid,
    /// The bindings, in chain order.
    pub bindings: Vec<BindingBody>,
}

/// A connector as administrators see it (everything: a connector holds no secret) and write it: on a
/// `POST` the server assigns the id and there are no bindings (bind plugins through `/bindings`); on a
/// `PUT` the bindings are kept unless given; `principal_type` and `revision` are the server's, ignored
/// when written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectorDetail {
    /// The id (the server's on a create).
    #[serde(default)]
    pub id: Option<Uuid>,
    /// Unique name: 1-64 characters of `A-Za-z0-9._-`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The account's name.
    pub account: String,
    /// How credentials are obtained (answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub principal_type: Option<PrincipalType>,
    /// How credentials are obtained.
    pub principal: Principal,
    /// The inline IAM policy sent as a session policy (federated-user and assumed-role only).
    #[serde(default)]
    pub policy: Option<String>,
    /// Managed policy ARNs sent as session policies (at most 10).
    #[serde(default)]
    pub policy_arns: Vec<String>,
    /// The duration when the caller asks for none; the AWS default when none.
    #[serde(default)]
    pub default_duration_seconds: Option<u32>,
    /// The longest duration granted; the AWS maximum when none.
    #[serde(default)]
    pub max_duration_seconds: Option<u32>,
    /// The groups whose members may use it. Empty: administrators only.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Whether system-scope callers (API keys, workloads) may vend from it.
    #[serde(default)]
    pub system_scope: bool,
    /// A disabled connector vends nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Hand out credentials already issued to the same caller for the same final request while they have
    /// enough life left (default off; see the README's "Credential cache").
    #[serde(default)]
    pub credential_cache: bool,
    /// The plugin chain, in order.
    #[serde(default)]
    pub bindings: Option<Vec<BindingBody>>,
    /// A fingerprint of the stored connector, for `If-Match` (answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revision: Option<String>,
}

fn yes() -> bool {
    true
}

/// The connectors, as administrators see them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ConnectorDetailList {
    /// The connectors, by name.
    pub connectors: Vec<ConnectorDetail>,
}

/// What a cache flush ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FlushedBody {
    /// The connector's name.
    pub connector: String,
    /// How many cached credential sets were ended (none when the connector's cache is off).
    pub flushed: usize,
}

/// A new system-scope API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    /// A name for people (and for STS session names: e.g. `ci-deploy`).
    pub name: String,
    /// The connectors (ids or names) the key may use.
    pub connectors: Vec<String>,
    /// When the key expires (RFC 3339); never if left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// A connector an API key may use, by id and (while it exists) name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct KeyConnector {
    /// The connector's id.
    pub id: Uuid,
    /// Its name; `null` once the connector is gone.
    pub name: Option<String>,
}

/// An API key as the admin API shows it: never the key nor its hash (but `key`, once, in the answer that
/// creates it; zeroed when dropped; no `Debug`).
#[derive(Serialize, Deserialize, ToSchema, zeroize::ZeroizeOnDrop)]
pub struct ApiKeyBody {
    /// The key's id (its public prefix carries it).
    #[zeroize(skip)]
    pub id: Uuid,
    /// Its name (also the STS session name of what it vends).
    #[zeroize(skip)]
    pub name: String,
    /// The system-scope connectors it may use.
    #[zeroize(skip)]
    pub connectors: Vec<KeyConnector>,
    /// When it was made (RFC 3339).
    #[zeroize(skip)]
    pub created: String,
    /// When it stops working (RFC 3339), if ever.
    #[zeroize(skip)]
    pub expires: Option<String>,
    /// Whether it has expired.
    #[zeroize(skip)]
    pub expired: bool,
    /// When it was last used (RFC 3339; updated at most once a minute), if ever.
    #[zeroize(skip)]
    pub last_used: Option<String>,
    /// The whole key: only in the answer that creates it, never again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub key: Option<String>,
}

/// The API keys.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ApiKeyList {
    /// The keys, by name.
    pub api_keys: Vec<ApiKeyBody>,
}

/// Where a plugin is bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginUse {
    /// The connector's name.
    pub connector: String,
    /// The connector's id.
    pub connector_id: Uuid,
    /// The binding's id.
    pub binding: String,
}

/// A stored plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginBody {
    /// The component's SHA-256 (hex).
    pub digest: String,
    /// Its name, if it was uploaded with one.
    pub name: Option<String>,
    /// Its size in bytes.
    pub size: u64,
    /// When it was stored (RFC 3339); only in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub stored: Option<String>,
    /// Where it is bound; only in lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub bindings: Option<Vec<PluginUse>>,
}

/// The stored plugins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PluginList {
    /// The plugins.
    pub plugins: Vec<PluginBody>,
}

/// The directory's groups, for choosing who may use a connector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    /// The directory's groups, sorted (at most 5,000).
    pub groups: Vec<String>,
    /// The groups whose members are administrators.
    pub admin_groups: Vec<String>,
    /// Whether the directory has more groups than listed.
    pub truncated: bool,
}

/// An example session policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyExample {
    /// A short name.
    pub name: String,
    /// What it allows, and what to replace.
    pub description: String,
    /// The policy document (JSON).
    pub policy: String,
}

/// The examples.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyExampleList {
    /// The examples, by name.
    pub examples: Vec<PolicyExample>,
}
