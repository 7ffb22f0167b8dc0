//! idfed's domain: accounts (whose keys vend), connectors (what may be vended, to whom, how), plugin
//! bindings, system-scope API keys and the caller of a vend. Stored by `store`, validated by `sts::validate`,
//! used by `vend`.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::plugins::{Limits, PrincipalType, SessionTag};
use crate::secret::Secret;

/// A connector's id.
pub type ConnectorId = Uuid;

/// An AWS account entry: where a connector's long-term credentials come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Unique name: 1-64 characters of `A-Za-z0-9._-`.
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

/// Where an account's credentials come from, as stored: secrets sealed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AccountSource {
    /// An IAM user's long-term access key; the secret is sealed at rest.
    IamUser {
        /// The access key id (`AKIA…`); not a secret.
        access_key_id: String,
        /// The secret access key, sealed under the master key.
        secret_access_key: SealedSecret,
    },
    /// The host's own AWS credentials (environment, instance profile, IRSA…), from aws-config's default chain.
    HostCredentials,
}

/// An account as an administrator writes it: the secret in the clear, or omitted to keep the stored one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountInput {
    /// See [`Account::name`].
    pub name: String,
    /// See [`Account::description`].
    #[serde(default)]
    pub description: String,
    /// Whose credentials.
    pub source: AccountSourceInput,
    /// See [`Account::region`].
    #[serde(default)]
    pub region: Option<String>,
    /// See [`Account::sts_endpoint`].
    #[serde(default)]
    pub sts_endpoint: Option<String>,
}

/// Where an account's credentials come from, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AccountSourceInput {
    /// An IAM user's access key.
    IamUser {
        /// The access key id.
        access_key_id: String,
        /// The secret access key; `None` on an update keeps the stored one.
        #[serde(default)]
        secret_access_key: Option<Secret>,
    },
    /// The host's own credentials.
    HostCredentials,
}

/// A secret sealed with an AEAD under the master key: what is stored, never the secret itself.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSecret {
    /// Which master key sealed it (the key's fingerprint).
    pub key_id: String,
    /// The nonce, base64.
    pub nonce: String,
    /// The ciphertext with its tag, base64.
    pub ciphertext: String,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret(key {})", self.key_id)
    }
}

/// An account's credentials, opened for one STS call.
#[derive(Clone, Debug)]
pub enum AccountCredentials {
    /// An IAM user's access key.
    Static {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: Secret,
    },
    /// The host's own credentials.
    HostChain,
}

pub use idfed_api::admin::Principal;

/// A plugin bound to a connector, at a position in its chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingSpec {
    /// The binding's id (a UUID): names it in faults and the audit log, and keys its private store.
    pub id: String,
    /// The plugin component's SHA-256 (hex), as stored.
    pub plugin: String,
    /// The configuration (JSON), accepted by the plugin's `validate-config`.
    pub config: String,
    /// Limits other than the defaults.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// The session tag keys the plugin may add (any other added tag is `plugin_widened_grant`).
    #[serde(default)]
    pub tag_keys: Vec<String>,
}

impl BindingSpec {
    /// How the runtime binds it.
    pub fn options(&self) -> crate::plugins::BindOptions {
        crate::plugins::BindOptions {
            limits: self.limits,
            tag_keys: self.tag_keys.clone(),
        }
    }
}

/// A connector: a name people ask for, bound to an account and a way of getting credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connector {
    /// The id.
    pub id: ConnectorId,
    /// Unique name: 1-64 characters of `A-Za-z0-9._-`.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The account's name.
    pub account: String,
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
    /// Whether system-scope API keys (task runners, CI) may vend from it.
    #[serde(default)]
    pub system_scope: bool,
    /// A disabled connector vends nothing.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether credentials issued may be handed out again to the same caller for the same final request
    /// while they have enough life left (see `vend::cache`); concurrent identical requests then share one
    /// STS call. Off by default: every vend is its own STS call.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credential_cache: bool,
    /// The plugin chain, in order.
    #[serde(default)]
    pub bindings: Vec<BindingSpec>,
}

fn yes() -> bool {
    true
}

impl Connector {
    /// A fingerprint of everything stored about the connector (32 hex digits): it changes with every
    /// change, so an edit can say which state it was based on (`If-Match`).
    pub fn revision(&self) -> String {
        use sha2::{Digest, Sha256};
        let stored = serde_json::to_vec(self).unwrap_or_default();
        hex::encode(&Sha256::digest(&stored)[..16])
    }
}

/// A system-scope API key, as stored: only a hash of the key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The id (the key's public prefix carries it).
    pub id: Uuid,
    /// A name for people (and for STS session names: e.g. `ci-deploy`).
    pub name: String,
    /// SHA-256 of the key's secret part, hex.
    pub hash: String,
    /// The system-scope connectors it may vend from.
    pub connectors: Vec<ConnectorId>,
    /// When it was made.
    pub created: SystemTime,
    /// When it stops working, if ever.
    #[serde(default)]
    pub expires: Option<SystemTime>,
    /// When it was last used.
    #[serde(default)]
    pub last_used: Option<SystemTime>,
}

/// Who is asking for credentials, once authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// A person, from the directory.
    User {
        /// The user name.
        name: String,
        /// All their groups, nested ones included.
        groups: Vec<String>,
        /// Whether they are an administrator.
        is_admin: bool,
    },
    /// A program holding a system-scope API key.
    System {
        /// The key's id.
        key_id: Uuid,
        /// The key's name.
        key_name: String,
        /// The connectors the key names.
        connectors: Vec<ConnectorId>,
    },
    /// A CI job or other workload, by an OIDC token from a configured issuer (see
    /// `auth::workload`); system scope, like an API key.
    Workload(crate::auth::workload::Workload),
}

/// The caller of a vend: who, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// Who.
    pub identity: Identity,
    /// Their address as idfed saw it.
    pub source_ip: Option<String>,
    /// Their `User-Agent`.
    pub user_agent: Option<String>,
}

impl Caller {
    /// The name for logs and the audit log: the user's, `system:<key name>`, or the workload's
    /// (`<issuer name>:…`, e.g. `ci:org/app@refs/heads/main`).
    pub fn display_name(&self) -> String {
        match &self.identity {
            Identity::User { name, .. } => name.clone(),
            Identity::System { key_name, .. } => format!("system:{key_name}"),
            Identity::Workload(workload) => workload.name.clone(),
        }
    }

    /// What kind of caller it is, as the audit log says: `user`, `system` or `workload`.
    pub fn kind(&self) -> &'static str {
        match &self.identity {
            Identity::User { .. } => "user",
            Identity::System { .. } => "system",
            Identity::Workload(_) => "workload",
        }
    }
}
