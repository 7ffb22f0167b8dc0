//! The vend pipeline, the job idfed exists for:
//! caller → authorize → build the request → plugin chain → validate → issue → audit → credentials.
//!
//! Every attempt is audited, whatever its outcome, and the audit record is written before credentials are
//! handed out: if the audit log cannot be written, nothing is vended (fail closed).

pub mod cache;
mod chain;
mod duration;
pub mod flushes;

use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::approvals::{self, ApprovalRecord, ApprovalRequestBody, Approvals, NewApproval};
use crate::audit::{AuditEvent, AuditLog, Outcome};
use crate::model::{Account, Caller, Connector, Identity, Principal, PrincipalType};
use crate::plugins::{
    self, Approval, ChainOutcome, ConnectorInfo, Grant, MAX_JUSTIFICATION_BYTES, MAX_TICKET_BYTES,
    PluginRuntime, PolicyRequest, Purpose,
};
use crate::store::Store;
use crate::sts::validate::{self, ValidationError};
use crate::sts::{
    AccountAccess, CredentialIssuer, IssueKind, IssueRequest, IssuedCredentials, StsError,
};

pub use cache::{CacheKey, CacheSettings, CacheStats, CredentialCache};
pub use duration::{DurationChoice, resolve_duration};

/// What a caller may ask for beyond the connector's defaults: only ever narrower.
#[derive(Clone, Debug, Default)]
pub struct VendOptions {
    /// The duration wanted, in seconds; capped at the connector's maximum.
    pub duration_seconds: Option<u32>,
    /// An inline session policy narrowing the connector's (it must allow nothing the connector's does not).
    pub policy: Option<String>,
    /// What the credentials are for, as plugins see it: credentials (the default), a console sign-in, or a
    /// service's token.
    pub purpose: Purpose,
    /// The caller's justification (at most [`MAX_JUSTIFICATION_BYTES`]), passed to plugins and audited.
    pub justification: Option<String>,
    /// The caller's ticket reference (at most [`MAX_TICKET_BYTES`]), passed to plugins and audited.
    pub ticket: Option<String>,
}

/// Credentials vended, with what was decided on the way.
#[derive(Debug)]
pub struct Vended {
    /// The request's id, as in the audit log.
    pub request_id: String,
    /// The connector's id.
    pub connector_id: Uuid,
    /// The connector's name.
    pub connector_name: String,
    /// The credentials.
    pub credentials: IssuedCredentials,
    /// The duration granted, in seconds; for cached credentials, the whole seconds they have left.
    pub duration_seconds: u32,
    /// Whether the duration was cut to the connector's maximum (or by a plugin).
    pub capped: bool,
    /// Whether the credentials were issued before, for an identical request (the connector's credential
    /// cache, or an identical request in flight at the same time).
    pub cached: bool,
}

/// Why nothing was vended. `code()` is stable; `Display` is for the caller (nothing internal, no secret).
#[derive(Debug, thiserror::Error)]
pub enum VendError {
    /// No such connector.
    #[error("no connector named {0:?}")]
    NotFound(String),
    /// The caller may not use this connector.
    #[error("you may not use connector {0:?}")]
    Forbidden(String),
    /// The connector is disabled.
    #[error("connector {0:?} is disabled")]
    Disabled(String),
    /// The request breaks a rule (checked before any call to AWS).
    #[error("invalid request: {0}")]
    Invalid(ValidationError),
    /// A plugin refused.
    #[error("refused by policy: {reason}")]
    PluginDenied {
        /// The binding that refused.
        binding: String,
        /// Its reason, meant for the caller.
        reason: String,
    },
    /// A plugin answered that the request needs an approval, where no approval can be asked for (the
    /// container-credentials endpoint, or a pipeline without approvals).
    #[error(
        "approval required: a member of group {group:?} must approve this request first; the policy says: {reason}"
    )]
    ApprovalRequired {
        /// The binding that asked for it.
        binding: String,
        /// The group whose members may approve.
        group: String,
        /// The plugin's reason, meant for the caller.
        reason: String,
    },
    /// A plugin answered that the request needs an approval: one is asked for (or was already pending),
    /// and the request is to be repeated once it is approved. Not an error to the caller (`202`).
    #[error("approval pending: {} (request {})", .0.reason, .0.id)]
    ApprovalPending(Box<ApprovalRequestBody>),
    /// A plugin malfunctioned; the request is refused (fail closed). Details go to the log and audit log.
    #[error("refused: a policy plugin of this connector failed ({code})")]
    PluginFault {
        /// The binding that failed.
        binding: String,
        /// The fault's code.
        code: &'static str,
        /// The fault, for administrators.
        detail: String,
    },
    /// STS refused or failed.
    #[error("{0}")]
    Sts(StsError),
    /// idfed's own store or audit log failed.
    #[error("idfed could not complete the request: {0}")]
    Internal(String),
    /// idfed's database cannot be reached now (PostgreSQL down or too slow): refused, never assumed.
    #[error("idfed's database cannot be used now; try again later")]
    StoreUnavailable(String),
}

impl From<crate::store::StoreError> for VendError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(m) => VendError::StoreUnavailable(m),
            other => VendError::Internal(other.to_string()),
        }
    }
}

impl VendError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            VendError::NotFound(_) => "connector_not_found",
            VendError::Forbidden(_) => "forbidden",
            VendError::Disabled(_) => "connector_disabled",
            VendError::Invalid(_) => "invalid_request",
            VendError::PluginDenied { .. } => "plugin_denied",
            VendError::ApprovalRequired { .. } => "approval_required",
            VendError::ApprovalPending(_) => "approval_pending",
            VendError::PluginFault { code, .. } => code,
            VendError::Sts(e) => e.code(),
            VendError::Internal(_) => "internal_error",
            VendError::StoreUnavailable(_) => "store_unavailable",
        }
    }
}

/// The vend pipeline and what it needs.
#[derive(Clone)]
pub struct Vendor {
    store: Arc<dyn Store>,
    issuer: Arc<dyn CredentialIssuer>,
    audit: AuditLog,
    chains: chain::Chains,
    cache: Arc<CredentialCache>,
    approvals: Option<Arc<Approvals>>,
}

/// An approval used up for a vend: given back if the vend fails after all.
struct Claimed<'a> {
    approvals: &'a Approvals,
    record: ApprovalRecord,
    kept: bool,
}

impl Drop for Claimed<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.approvals.release(&self.record);
        }
    }
}

impl Vendor {
    /// A pipeline over these parts, with a credential cache of the default settings.
    pub fn new(
        store: Arc<dyn Store>,
        issuer: Arc<dyn CredentialIssuer>,
        plugins: PluginRuntime,
        audit: AuditLog,
    ) -> Self {
        let chains = chain::Chains::new(store.clone(), plugins);
        Vendor {
            store,
            issuer,
            audit,
            chains,
            cache: Arc::new(CredentialCache::new(CacheSettings::default())),
            approvals: None,
        }
    }

    /// The pipeline, asking `approvals` when a plugin wants one (without, such a request is refused with
    /// `approval_required`).
    pub fn with_approvals(mut self, approvals: Arc<Approvals>) -> Self {
        self.approvals = Some(approvals);
        self
    }

    /// The approvals, if the pipeline takes them.
    pub fn approvals(&self) -> Option<&Arc<Approvals>> {
        self.approvals.as_ref()
    }

    /// The same pipeline with an empty credential cache of `settings`.
    pub fn with_cache(mut self, settings: CacheSettings) -> Self {
        self.cache = Arc::new(CredentialCache::new(settings));
        self
    }

    /// The audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The credential cache (of the connectors with `credential_cache` on).
    pub fn cache(&self) -> &Arc<CredentialCache> {
        &self.cache
    }

    /// Whether `caller` may use `connector`: administrators every connector, users those listing one of
    /// their groups (none listed: administrators only), system-scope keys the system-scope connectors they name.
    pub fn may_use(caller: &Caller, connector: &Connector) -> bool {
        match &caller.identity {
            Identity::User { is_admin: true, .. } => true,
            Identity::User { groups, .. } => connector
                .groups
                .iter()
                .any(|allowed| groups.iter().any(|g| g.eq_ignore_ascii_case(allowed))),
            Identity::System { connectors, .. } => {
                connector.system_scope && connectors.contains(&connector.id)
            }
            Identity::Workload(workload) => {
                connector.system_scope && workload.connectors.contains(&connector.name)
            }
        }
    }

    /// Vends credentials from the connector named (or with the id) `connector` to `caller`.
    pub async fn vend(
        &self,
        caller: &Caller,
        connector: &str,
        options: VendOptions,
    ) -> Result<Vended, VendError> {
        let request_id = Uuid::new_v4().to_string();
        let mut event = AuditEvent {
            request_id: request_id.clone(),
            action: "vend".into(),
            caller: Some(caller.display_name()),
            caller_kind: Some(caller.kind().into()),
            source_ip: caller.source_ip.clone(),
            user_agent: caller.user_agent.clone(),
            connector: Some(connector.to_owned()),
            ..AuditEvent::default()
        };
        let result = self
            .attempt(caller, connector, options, &request_id, &mut event)
            .await;
        match &result {
            Ok(vended) => {
                event.outcome = Outcome::Issued;
                event.access_key_id = Some(vended.credentials.access_key_id.clone());
                event.cached = vended.cached;
            }
            Err(e) => {
                event.outcome = match e {
                    // Audited as a plugin's refusal, told apart by its code.
                    VendError::PluginDenied { .. } | VendError::ApprovalRequired { .. } => {
                        Outcome::PluginDenied
                    }
                    VendError::PluginFault { .. } => Outcome::PluginFault,
                    VendError::Sts(_) | VendError::Internal(_) => Outcome::Failed,
                    _ => Outcome::Refused,
                };
                event.code = Some(e.code().to_owned());
                event.reason = Some(match e {
                    VendError::PluginFault { detail, .. } => detail.clone(),
                    other => other.to_string(),
                });
                if let VendError::PluginDenied { binding, .. }
                | VendError::ApprovalRequired { binding, .. }
                | VendError::PluginFault { binding, .. } = e
                {
                    event.binding = Some(binding.clone());
                }
            }
        }
        // Durable (fsynced, shared with concurrent vends) before the credentials leave.
        if let Err(e) = self.audit.append_durable(event).await {
            tracing::error!(request_id, error = %e, "audit log unavailable: refusing to hand out credentials");
            return Err(match e {
                crate::audit::AuditError::Unavailable(m) => VendError::StoreUnavailable(m),
                _ => VendError::Internal("the audit log is unavailable".into()),
            });
        }
        result
    }

    async fn attempt(
        &self,
        caller: &Caller,
        name: &str,
        options: VendOptions,
        request_id: &str,
        event: &mut AuditEvent,
    ) -> Result<Vended, VendError> {
        let mut options = options;
        options.justification = given_text(
            options.justification.take(),
            "justification",
            MAX_JUSTIFICATION_BYTES,
            true,
        )?;
        options.ticket = given_text(options.ticket.take(), "ticket", MAX_TICKET_BYTES, false)?;
        event.justification = options.justification.clone();
        event.ticket = options.ticket.clone();
        let connector = self
            .store
            .get_connector(name)?
            .ok_or_else(|| VendError::NotFound(name.to_owned()))?;
        event.connector_id = Some(connector.id.to_string());
        event.connector = Some(connector.name.clone());
        if !Self::may_use(caller, &connector) {
            // A caller who lost the group that let them in starts afresh if they get it back.
            self.cache
                .flush_caller(connector.id, &caller.display_name());
            return Err(VendError::Forbidden(connector.name.clone()));
        }
        if !connector.enabled {
            return Err(VendError::Disabled(connector.name.clone()));
        }

        let principal_type = connector.principal.principal_type();
        let choice =
            resolve_duration(&connector, options.duration_seconds).map_err(VendError::Invalid)?;
        // Only a plugin can want an approval: for a connector without plugins (or a pipeline without
        // approvals) there is nothing to look up or to file, so nothing of it is made per vend.
        let asked = match &self.approvals {
            Some(approvals) if !connector.bindings.is_empty() => {
                let requester = caller.display_name();
                let purpose = options.purpose.to_text();
                let fingerprint = approvals::fingerprint(
                    &requester,
                    connector.id,
                    &purpose,
                    options.duration_seconds,
                    options.policy.as_deref(),
                    options.justification.as_deref(),
                    options.ticket.as_deref(),
                );
                Some((approvals, requester, purpose, fingerprint))
            }
            _ => None,
        };
        // An approval of this very request, if one was given and not used yet.
        let approved = match &asked {
            Some((approvals, requester, _, fingerprint)) => approvals
                .usable(requester, connector.id, fingerprint)
                .map_err(|e| VendError::Internal(e.to_string()))?,
            None => None,
        };
        let (justification, ticket) = match &asked {
            Some(_) => (options.justification.clone(), options.ticket.clone()),
            None => (None, None),
        };
        let base = PolicyRequest {
            request_id: request_id.to_owned(),
            caller: plugin_caller(caller),
            connector: ConnectorInfo {
                name: connector.name.clone(),
                principal_type,
                account_name: connector.account.clone(),
                role_arn: connector.principal.role_arn().map(str::to_owned),
                default_duration_seconds: connector.default_duration_seconds,
                max_duration_seconds: connector.max_duration_seconds,
            },
            requested_duration_seconds: options.duration_seconds,
            duration_seconds: choice.seconds,
            policy: connector.policy.clone(),
            policy_arns: connector.policy_arns.clone(),
            tags: match &connector.principal {
                Principal::AssumedRole { session_tags, .. } => session_tags.clone(),
                _ => Vec::new(),
            },
            time: SystemTime::now(),
            justification: options.justification,
            ticket: options.ticket,
            purpose: options.purpose,
            approval: approved.as_ref().map(|r| Approval {
                approver: r.decided_by.clone().unwrap_or_default(),
                approved_at: r.decided_at.unwrap_or(r.created),
                comment: r.comment.clone(),
            }),
        };
        let request = match options.policy {
            None => base,
            Some(policy) => narrow_by_caller(&base, policy)?,
        };
        event.duration_seconds = Some(request.duration_seconds);

        // The audit record names the plugin too: a binding's id outlives neither an unbinding nor a
        // rebinding, and administrators look for a plugin's denials.
        let plugin_of = |binding: &str| {
            connector
                .bindings
                .iter()
                .find(|b| b.id == binding)
                .map(|b| b.plugin.clone())
        };
        let chain = match self.chains.get(&connector).await {
            Ok(chain) => chain,
            Err((binding, fault)) => {
                event.plugin = plugin_of(&binding);
                return Err(VendError::PluginFault {
                    binding,
                    code: fault.code(),
                    detail: fault.to_string(),
                });
            }
        };
        let grant = match self.chains.plugins().run_chain(&chain, &request).await {
            ChainOutcome::Allow(grant) => grant,
            ChainOutcome::Deny { binding, reason } => {
                event.plugin = plugin_of(&binding);
                return Err(VendError::PluginDenied { binding, reason });
            }
            ChainOutcome::NeedsApproval {
                binding,
                group,
                reason,
                max_duration_seconds,
            } => {
                event.plugin = plugin_of(&binding);
                event.binding = Some(binding.clone());
                let Some((approvals, requester, purpose, fingerprint)) = asked else {
                    return Err(VendError::ApprovalRequired {
                        binding,
                        group,
                        reason,
                    });
                };
                let (record, _) = approvals
                    .request(NewApproval {
                        requester,
                        connector: connector.name.clone(),
                        connector_id: connector.id,
                        purpose,
                        fingerprint,
                        duration_seconds: options.duration_seconds,
                        justification,
                        ticket,
                        group,
                        reason,
                        max_duration_seconds,
                        binding,
                    })
                    .map_err(|e| match e {
                        approvals::ApprovalError::TooMany(_) => {
                            VendError::Invalid(ValidationError::new("approval", e.to_string()))
                        }
                        other => VendError::Internal(other.to_string()),
                    })?;
                return Err(VendError::ApprovalPending(Box::new(
                    record.body(SystemTime::now()),
                )));
            }
            ChainOutcome::Fault { binding, fault } => {
                event.plugin = plugin_of(&binding);
                return Err(VendError::PluginFault {
                    binding,
                    code: fault.code(),
                    detail: fault.to_string(),
                });
            }
        };
        // An approval is used up by this vend (before any credentials exist; given back if it fails), and
        // caps the duration where the policy said so.
        let mut grant = grant;
        let mut claimed = None;
        if let (Some(approvals), Some(record)) = (self.approvals.as_deref(), approved) {
            let taken = approvals
                .claim(&record, request_id)
                .map_err(|e| VendError::Internal(e.to_string()))?;
            if !taken {
                return Err(VendError::Invalid(ValidationError::new(
                    "approval",
                    "the approval of this request was used by another request meanwhile: ask again",
                )));
            }
            if let Some(max) = record.max_duration_seconds {
                grant.duration_seconds = grant.duration_seconds.min(max);
            }
            claimed = Some(Claimed {
                approvals,
                record,
                kept: false,
            });
        }
        let capped = choice.capped || grant.duration_seconds < request.duration_seconds;
        event.duration_seconds = Some(grant.duration_seconds);
        event.capped = capped;
        event.policy_sha256 = grant
            .policy
            .as_deref()
            .map(|p| hex::encode(Sha256::digest(p.as_bytes())));

        let account = self.account_entry(&connector.account)?;
        let kind = issue_kind(caller, &connector, &grant);
        let duration_seconds = grant.duration_seconds;
        let key = connector.credential_cache.then(|| {
            self.cache
                .key(caller, &connector, &account, &kind, duration_seconds)
        });
        let vended = |credentials: IssuedCredentials, cached: bool| {
            // Cached credentials say how long they have left, not how long they were issued for.
            let duration_seconds = if cached {
                let left = credentials
                    .expiration
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
                u32::try_from(left.as_secs()).unwrap_or(u32::MAX)
            } else {
                duration_seconds
            };
            Vended {
                request_id: request_id.to_owned(),
                connector_id: connector.id,
                connector_name: connector.name.clone(),
                credentials,
                duration_seconds,
                capped,
                cached,
            }
        };
        // A hit is an identical request (the key holds all of it) that passed every check before: the
        // account's secret is not even opened for it.
        if let Some(key) = &key
            && let Some(credentials) = self.cache.get(key, duration_seconds, SystemTime::now())
        {
            if let Some(claimed) = &mut claimed {
                claimed.kept = true;
            }
            return Ok(vended(credentials, true));
        }
        let issue = IssueRequest {
            access: self.open_access(account)?,
            kind,
            duration_seconds,
            requester: Some(caller.display_name()),
        };
        validate::check_issue_request(&issue).map_err(VendError::Invalid)?;
        let (credentials, cached) = match key {
            Some(key) => {
                let issued = self
                    .cache
                    .issue_once(key, (&connector, caller), duration_seconds, || {
                        self.issuer.issue(&issue)
                    })
                    .await
                    .map_err(VendError::Sts)?;
                (issued.credentials, issued.shared)
            }
            None => (
                self.issuer.issue(&issue).await.map_err(VendError::Sts)?,
                false,
            ),
        };
        if let Some(claimed) = &mut claimed {
            claimed.kept = true;
        }
        Ok(vended(credentials, cached))
    }

    /// How to reach STS for `account`: its region, endpoint and opened credentials.
    pub fn account_access(&self, account: &str) -> Result<AccountAccess, VendError> {
        let entry = self.account_entry(account)?;
        self.open_access(entry)
    }

    /// The account as stored.
    fn account_entry(&self, account: &str) -> Result<Account, VendError> {
        self.store.get_account(account)?.ok_or_else(|| {
            VendError::Internal(format!("the connector's account {account:?} is missing"))
        })
    }

    /// The account's access for one STS call, its secret opened.
    fn open_access(&self, account: Account) -> Result<AccountAccess, VendError> {
        let credentials = self
            .store
            .account_credentials(&account.name)?
            .ok_or_else(|| {
                VendError::Internal(format!(
                    "the connector's account {:?} is missing",
                    account.name
                ))
            })?;
        Ok(AccountAccess {
            account_name: account.name,
            credentials,
            region: account.region,
            endpoint: account.sts_endpoint,
        })
    }
}

/// The caller as plugins see it.
fn plugin_caller(caller: &Caller) -> plugins::Caller {
    let (user_name, groups, is_admin, is_system_scope) = match &caller.identity {
        Identity::User {
            name,
            groups,
            is_admin,
        } => (Some(name.clone()), groups.clone(), *is_admin, false),
        Identity::System { .. } | Identity::Workload(_) => (None, Vec::new(), false, true),
    };
    let workload = match &caller.identity {
        Identity::Workload(w) => Some(plugins::WorkloadIdentity {
            issuer: w.issuer.clone(),
            subject: w.subject.clone(),
            // Each claim as JSON text: `"org/app"` with its quotes, `17`, `true`.
            claims: w
                .claims
                .iter()
                .map(|(name, value)| plugins::Claim {
                    name: name.clone(),
                    value: value.to_string(),
                })
                .collect(),
        }),
        _ => None,
    };
    plugins::Caller {
        user_name,
        groups,
        is_admin,
        is_system_scope,
        source_ip: caller.source_ip.clone(),
        user_agent: caller.user_agent.clone(),
        workload,
    }
}

/// A justification or ticket as given: trimmed, none when empty, refused when longer than `max_bytes` or
/// holding control characters (line breaks and tabs allowed where `multiline`), before anything else.
fn given_text(
    text: Option<String>,
    field: &str,
    max_bytes: usize,
    multiline: bool,
) -> Result<Option<String>, VendError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let invalid = |rule: String| VendError::Invalid(ValidationError::new(field, rule));
    if text.len() > max_bytes {
        return Err(invalid(format!(
            "must be at most {max_bytes} bytes (it is {})",
            text.len()
        )));
    }
    if text
        .chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(invalid(if multiline {
            "must hold no control characters but line breaks and tabs".into()
        } else {
            "must hold no control characters".into()
        }));
    }
    Ok(Some(text.to_owned()))
}

/// Applies the caller's own inline policy: allowed only where it narrows, by the same rules plugins obey.
fn narrow_by_caller(base: &PolicyRequest, policy: String) -> Result<PolicyRequest, VendError> {
    let invalid = |rule: String| {
        VendError::Invalid(ValidationError {
            field: "policy".into(),
            rule,
        })
    };
    if base.connector.principal_type == PrincipalType::IamUser {
        return Err(invalid("iam-user connectors take no session policy".into()));
    }
    validate::check_policy(&policy).map_err(VendError::Invalid)?;
    let candidate = Grant {
        policy: Some(policy),
        ..base.unchanged_grant()
    };
    plugins::check_grant(base, &candidate, &[])
        .map_err(|fault| invalid(format!("may only narrow the connector's policy: {fault}")))?;
    Ok(base.with_grant(&candidate))
}

/// The STS call for a connector and a final grant.
fn issue_kind(caller: &Caller, connector: &Connector, grant: &Grant) -> IssueKind {
    let who = match &caller.identity {
        Identity::User { name, .. } => name.clone(),
        Identity::System { key_name, .. } => key_name.clone(),
        Identity::Workload(workload) => workload.name.clone(),
    };
    match &connector.principal {
        Principal::FederatedUser => IssueKind::FederationToken {
            name: validate::federated_user_name(&who),
            policy: grant.policy.clone(),
            policy_arns: grant.policy_arns.clone(),
            tags: grant.tags.clone(),
        },
        Principal::IamUser => IssueKind::SessionToken,
        Principal::AssumedRole {
            role_arn,
            external_id,
            source_identity,
            ..
        } => IssueKind::AssumeRole {
            role_arn: role_arn.clone(),
            session_name: validate::role_session_name(&who),
            external_id: external_id.clone(),
            policy: grant.policy.clone(),
            policy_arns: grant.policy_arns.clone(),
            tags: grant.tags.clone(),
            source_identity: source_identity.then(|| validate::source_identity(&who)),
        },
    }
}
