//! Just-in-time approvals. When a connector's plugin chain answers *needs approval*, the vend pipeline
//! files an [`ApprovalRecord`] here (or finds the one already pending for the same request) and the caller
//! gets `202` with it. A member of the named group — never the requester, and a member *when deciding*,
//! asked of the directory then — approves or denies it. An approval is valid for `window_seconds` and one
//! vend: the requester repeats the same request, the pipeline finds the approval, the chain sees it, and the
//! vend that issues credentials uses it up. A pending request nobody decides expires after
//! `request_ttl_seconds`. Every step is audited (`approval.request`, `.approve`, `.deny`, `.expire`, `.use`),
//! and a new request is announced to the configured webhook (JSON, signed with HMAC-SHA256).
//!
//! Records live in the store's sled database (tree `approvals`), compare-and-swapped from one status to the
//! next, so two approvers or two vends racing for one approval cannot both win.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

pub use idfed_api::approvals::{ApprovalRequestBody, ApprovalStatus};

use crate::audit::{AuditEvent, AuditLog, Outcome};
use crate::auth::lockout::Clock;

/// The sled tree of approval records, by id.
const TREE: &str = "approvals";
/// The sled tree of approved requests: fingerprint → the id of the latest approval (so a vend finds its
/// approval without reading the others).
const APPROVED_TREE: &str = "approvals-approved";
/// The most bytes of an approver's comment.
pub const MAX_COMMENT_BYTES: usize = 1024;
/// The most approval records kept (decided and expired ones are dropped first, oldest first).
const MAX_RECORDS: usize = 10_000;
/// The most requests one requester may have pending: past it, they wait for those to be decided or
/// expire (so that no one fills the store, or the approvers' queue and webhook, alone).
pub const MAX_PENDING_PER_REQUESTER: usize = 20;

/// `[approvals]`: how long requests and approvals last, and the webhook that announces new requests.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalSettings {
    /// How long a request may wait for a decision, in seconds (default 3,600).
    pub request_ttl_seconds: u64,
    /// How long an approval may be used, in seconds from the decision (default 3,600).
    pub window_seconds: u64,
    /// A URL that gets `POST`ed each new request (JSON), e.g. a chat or ticket system's incoming webhook.
    pub webhook_url: Option<String>,
    /// A file holding the secret the webhook's body is signed with (`X-Idfed-Signature: sha256=<hex HMAC>`);
    /// `IDFED_APPROVALS_WEBHOOK_SECRET` holds the secret itself and wins.
    pub webhook_secret_file: Option<std::path::PathBuf>,
}

impl Default for ApprovalSettings {
    fn default() -> Self {
        ApprovalSettings {
            request_ttl_seconds: 3600,
            window_seconds: 3600,
            webhook_url: None,
            webhook_secret_file: None,
        }
    }
}

/// One approval request, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Its id.
    pub id: Uuid,
    /// Where it stands (as stored: a pending or approved record past `expires` reads as expired).
    pub status: ApprovalStatus,
    /// Who asked (the caller's display name).
    pub requester: String,
    /// The connector's name when asked.
    pub connector: String,
    /// The connector's id.
    pub connector_id: Uuid,
    /// What for (`credentials`, `console-sign-in`, `service-token:ecr`…).
    pub purpose: String,
    /// What exactly was asked: a hash of the requester, connector, purpose, duration, the caller's own
    /// policy, justification and ticket. Only the same request finds the approval.
    pub fingerprint: String,
    /// The duration asked for.
    pub duration_seconds: Option<u32>,
    /// The requester's justification.
    pub justification: Option<String>,
    /// The requester's ticket.
    pub ticket: Option<String>,
    /// Who may approve.
    pub group: String,
    /// Why (the plugin's words).
    pub reason: String,
    /// The longest duration an approval grants.
    pub max_duration_seconds: Option<u32>,
    /// The binding that asked.
    pub binding: String,
    /// When asked.
    pub created: SystemTime,
    /// Pending: the deadline for a decision; approved: for its use.
    pub expires: SystemTime,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<SystemTime>,
    /// The approver's comment.
    pub comment: Option<String>,
}

impl ApprovalRecord {
    /// Its status at `now`: a pending or approved record past its deadline has expired.
    pub fn status_at(&self, now: SystemTime) -> ApprovalStatus {
        match self.status {
            ApprovalStatus::Pending | ApprovalStatus::Approved if now >= self.expires => {
                ApprovalStatus::Expired
            }
            status => status,
        }
    }

    /// As the API shows it at `now`.
    pub fn body(&self, now: SystemTime) -> ApprovalRequestBody {
        let time = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
        ApprovalRequestBody {
            id: self.id,
            status: self.status_at(now),
            requester: self.requester.clone(),
            connector: self.connector.clone(),
            connector_id: self.connector_id,
            purpose: self.purpose.clone(),
            duration_seconds: self.duration_seconds,
            justification: self.justification.clone(),
            ticket: self.ticket.clone(),
            group: self.group.clone(),
            reason: self.reason.clone(),
            max_duration_seconds: self.max_duration_seconds,
            created: time(self.created),
            expires: time(self.expires),
            decided_by: self.decided_by.clone(),
            decided_at: self.decided_at.map(time),
            comment: self.comment.clone(),
        }
    }

    fn event(&self, action: &str, caller: &str, outcome: Outcome, reason: String) -> AuditEvent {
        AuditEvent {
            request_id: self.id.to_string(),
            action: action.to_owned(),
            caller: Some(caller.to_owned()),
            caller_kind: Some("user".to_owned()),
            connector_id: Some(self.connector_id.to_string()),
            connector: Some(self.connector.clone()),
            outcome,
            binding: Some(self.binding.clone()),
            reason: Some(reason),
            justification: self.justification.clone(),
            ticket: self.ticket.clone(),
            ..AuditEvent::default()
        }
    }
}

/// What the vend pipeline files when a chain needs an approval.
#[derive(Clone, Debug)]
pub struct NewApproval {
    /// Who asks.
    pub requester: String,
    /// The connector's name.
    pub connector: String,
    /// The connector's id.
    pub connector_id: Uuid,
    /// What for.
    pub purpose: String,
    /// See [`ApprovalRecord::fingerprint`].
    pub fingerprint: String,
    /// The duration asked for.
    pub duration_seconds: Option<u32>,
    /// The justification.
    pub justification: Option<String>,
    /// The ticket.
    pub ticket: Option<String>,
    /// Who may approve.
    pub group: String,
    /// Why.
    pub reason: String,
    /// The longest duration an approval grants.
    pub max_duration_seconds: Option<u32>,
    /// The binding that asked.
    pub binding: String,
}

/// Why a decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// No such request (or not one the caller may see).
    #[error("no approval request {0}")]
    NotFound(Uuid),
    /// Decided already, or expired.
    #[error("approval request {id} is {status:?}, not pending")]
    NotPending {
        /// The request.
        id: Uuid,
        /// Where it stands.
        status: ApprovalStatus,
    },
    /// The requester may not decide their own request.
    #[error("you asked for this access yourself: someone else in {0:?} must decide")]
    SelfApproval(String),
    /// The approver is not in the group (now).
    #[error("only members of {0:?} may decide this request")]
    NotInGroup(String),
    /// A comment over the limit.
    #[error("comment: must be at most {MAX_COMMENT_BYTES} bytes")]
    Invalid,
    /// Too many requests pending: of this requester, or in all.
    #[error(
        "too many approval requests are pending ({0}): wait for them to be decided or to expire"
    )]
    TooMany(&'static str),
    /// The store failed.
    #[error("the approvals store: {0}")]
    Store(String),
}

impl From<crate::store::DbError> for ApprovalError {
    fn from(e: crate::store::DbError) -> Self {
        ApprovalError::Store(e.to_string())
    }
}

/// The approval records, with the audit log their steps are written to and the webhook.
pub struct Approvals {
    tree: crate::store::db::Tree,
    approved: crate::store::db::Tree,
    audit: AuditLog,
    clock: Arc<dyn Clock>,
    settings: ApprovalSettings,
    webhook: Option<Webhook>,
}

impl std::fmt::Debug for Approvals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Approvals")
            .field("settings", &self.settings.request_ttl_seconds)
            .finish_non_exhaustive()
    }
}

/// The fingerprint of a request (see [`ApprovalRecord::fingerprint`]).
pub fn fingerprint(
    requester: &str,
    connector_id: Uuid,
    purpose: &str,
    duration_seconds: Option<u32>,
    policy: Option<&str>,
    justification: Option<&str>,
    ticket: Option<&str>,
) -> String {
    let mut hash = Sha256::new();
    for part in [
        Some(requester),
        Some(&connector_id.to_string()),
        Some(purpose),
        duration_seconds.map(|d| d.to_string()).as_deref(),
        policy,
        justification,
        ticket,
    ] {
        // Length-prefixed, so no two different requests hash the same text.
        match part {
            Some(text) => {
                hash.update((text.len() as u64 + 1).to_be_bytes());
                hash.update(text.as_bytes());
            }
            None => hash.update(0u64.to_be_bytes()),
        }
    }
    hex::encode(hash.finalize())
}

impl Approvals {
    /// The records in `db`.
    pub fn open(
        db: &crate::store::Db,
        audit: AuditLog,
        clock: Arc<dyn Clock>,
        settings: ApprovalSettings,
    ) -> Result<Approvals, String> {
        let tree = db.open_tree(TREE).map_err(|e| e.to_string())?;
        let approved = db.open_tree(APPROVED_TREE).map_err(|e| e.to_string())?;
        let webhook = match &settings.webhook_url {
            None => None,
            Some(url) => Some(Webhook::new(url, &settings)?),
        };
        Ok(Approvals {
            tree,
            approved,
            audit,
            clock,
            settings,
            webhook,
        })
    }

    fn all(&self) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let mut records = Vec::new();
        for entry in self.tree.iter() {
            let (_, value) = entry?;
            match serde_json::from_slice::<ApprovalRecord>(&value) {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!(error = %e, "an unreadable approval record is skipped"),
            }
        }
        Ok(records)
    }

    /// One record.
    pub fn get(&self, id: Uuid) -> Result<Option<ApprovalRecord>, ApprovalError> {
        match self.tree.get(id.as_bytes())? {
            None => Ok(None),
            Some(value) => serde_json::from_slice(&value)
                .map(Some)
                .map_err(|e| ApprovalError::Store(e.to_string())),
        }
    }

    /// Replaces `old` by `new` if it is still as read; whether it was.
    fn swap(&self, old: &ApprovalRecord, new: &ApprovalRecord) -> Result<bool, ApprovalError> {
        let key = old.id;
        let old = serde_json::to_vec(old).expect("records serialize");
        let new = serde_json::to_vec(new).expect("records serialize");
        let swapped = self
            .tree
            .compare_and_swap(key.as_bytes(), Some(old), Some(new))?
            .is_ok();
        self.tree.flush()?;
        Ok(swapped)
    }

    /// The records at `now`, newest first; those that expired since last read are marked so and audited.
    pub fn list(&self) -> Result<Vec<ApprovalRecord>, ApprovalError> {
        let now = self.clock.now();
        let mut records = self.all()?;
        for record in &mut records {
            if record.status != record.status_at(now) {
                let mut expired = record.clone();
                expired.status = ApprovalStatus::Expired;
                if self.swap(record, &expired)? {
                    let what = if record.status == ApprovalStatus::Pending {
                        "nobody decided in time"
                    } else {
                        "the approval was not used in time"
                    };
                    self.audit(record.event(
                        "approval.expire",
                        &record.requester,
                        Outcome::Refused,
                        what.into(),
                    ));
                    *record = expired;
                }
            }
        }
        records.sort_by_key(|r| std::cmp::Reverse(r.created));
        Ok(records)
    }

    fn audit(&self, event: AuditEvent) {
        if let Err(e) = self.audit.append(event) {
            tracing::error!(error = %e, "the audit log refused an approval record");
        }
    }

    /// The approval `requester` may use for this exact request (`fingerprint`) now, if any.
    pub fn usable(
        &self,
        requester: &str,
        connector_id: Uuid,
        fingerprint: &str,
    ) -> Result<Option<ApprovalRecord>, ApprovalError> {
        let Some(id) = self.approved.get(fingerprint.as_bytes())? else {
            return Ok(None);
        };
        let Ok(id) = Uuid::from_slice(&id) else {
            return Ok(None);
        };
        let now = self.clock.now();
        Ok(self.get(id)?.filter(|r| {
            r.requester == requester
                && r.connector_id == connector_id
                && r.fingerprint == fingerprint
                && r.status_at(now) == ApprovalStatus::Approved
        }))
    }

    /// Uses the approval up for the vend `request_id` (before credentials are issued); false if another
    /// vend used it first.
    pub fn claim(&self, record: &ApprovalRecord, request_id: &str) -> Result<bool, ApprovalError> {
        let mut used = record.clone();
        used.status = ApprovalStatus::Used;
        let claimed = self.swap(record, &used)?;
        if claimed {
            self.audit(record.event(
                "approval.use",
                &record.requester,
                Outcome::Issued,
                format!("used by the vend {request_id}"),
            ));
        }
        Ok(claimed)
    }

    /// Gives a claimed approval back when the vend failed after claiming it (STS refused, say).
    pub fn release(&self, record: &ApprovalRecord) {
        let mut used = record.clone();
        used.status = ApprovalStatus::Used;
        if let Err(e) = self.swap(&used, record) {
            tracing::warn!(approval = %record.id, error = %e, "could not give an approval back");
        }
    }

    /// Files `new`, or finds the request already pending for the same request; the record, and whether it
    /// is new (announced to the webhook and audited).
    pub fn request(&self, new: NewApproval) -> Result<(ApprovalRecord, bool), ApprovalError> {
        let now = self.clock.now();
        let all = self.all()?;
        if let Some(pending) = all.iter().find(|r| {
            r.requester == new.requester
                && r.connector_id == new.connector_id
                && r.fingerprint == new.fingerprint
                && r.status_at(now) == ApprovalStatus::Pending
        }) {
            return Ok((pending.clone(), false));
        }
        let pending_of_requester = all
            .iter()
            .filter(|r| r.requester == new.requester && r.status_at(now) == ApprovalStatus::Pending)
            .count();
        if pending_of_requester >= MAX_PENDING_PER_REQUESTER {
            return Err(ApprovalError::TooMany("yours"));
        }
        if all.len() >= MAX_RECORDS && !self.prune(all, now)? {
            return Err(ApprovalError::TooMany("in all"));
        }
        let record = ApprovalRecord {
            id: Uuid::new_v4(),
            status: ApprovalStatus::Pending,
            requester: new.requester,
            connector: new.connector,
            connector_id: new.connector_id,
            purpose: new.purpose,
            fingerprint: new.fingerprint,
            duration_seconds: new.duration_seconds,
            justification: new.justification,
            ticket: new.ticket,
            group: new.group,
            reason: new.reason,
            max_duration_seconds: new.max_duration_seconds,
            binding: new.binding,
            created: now,
            expires: now + Duration::from_secs(self.settings.request_ttl_seconds),
            decided_by: None,
            decided_at: None,
            comment: None,
        };
        self.tree.insert(
            record.id.as_bytes(),
            serde_json::to_vec(&record).expect("records serialize"),
        )?;
        self.tree.flush()?;
        self.audit(record.event(
            "approval.request",
            &record.requester,
            Outcome::Refused,
            format!("approval asked of {:?}: {}", record.group, record.reason),
        ));
        if let Some(webhook) = &self.webhook {
            webhook.announce(record.body(now));
        }
        Ok((record, true))
    }

    /// Drops the oldest decided, used and expired records until there is room; whether there is.
    fn prune(&self, mut all: Vec<ApprovalRecord>, now: SystemTime) -> Result<bool, ApprovalError> {
        all.sort_by_key(|r| r.created);
        let excess = all.len() + 1 - MAX_RECORDS;
        let mut dropped = 0;
        for record in all
            .iter()
            .filter(|r| !matches!(r.status_at(now), ApprovalStatus::Pending))
            .take(excess)
        {
            self.tree.remove(record.id.as_bytes())?;
            self.approved
                .compare_and_swap(
                    record.fingerprint.as_bytes(),
                    Some(record.id.as_bytes()),
                    None::<&[u8]>,
                )?
                .ok();
            dropped += 1;
        }
        Ok(dropped >= excess)
    }

    /// `approver` (in `approver_groups`, asked of the directory now) approves or denies the request `id`.
    pub fn decide(
        &self,
        id: Uuid,
        approver: &str,
        approver_groups: &[String],
        approve: bool,
        comment: Option<String>,
    ) -> Result<ApprovalRecord, ApprovalError> {
        let comment = comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment.as_ref().is_some_and(|c| {
            c.len() > MAX_COMMENT_BYTES || c.chars().any(|ch| ch.is_control() && ch != '\n')
        }) {
            return Err(ApprovalError::Invalid);
        }
        let record = self.get(id)?.ok_or(ApprovalError::NotFound(id))?;
        let now = self.clock.now();
        if record.requester == approver {
            return Err(ApprovalError::SelfApproval(record.group.clone()));
        }
        if !approver_groups
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&record.group))
        {
            return Err(ApprovalError::NotInGroup(record.group.clone()));
        }
        let status = record.status_at(now);
        if status != ApprovalStatus::Pending {
            return Err(ApprovalError::NotPending { id, status });
        }
        let mut decided = record.clone();
        decided.status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        decided.decided_by = Some(approver.to_owned());
        decided.decided_at = Some(now);
        decided.comment = comment;
        if approve {
            decided.expires = now + Duration::from_secs(self.settings.window_seconds);
        }
        if !self.swap(&record, &decided)? {
            let now_status = self
                .get(id)?
                .map_or(ApprovalStatus::Expired, |r| r.status_at(now));
            return Err(ApprovalError::NotPending {
                id,
                status: now_status,
            });
        }
        if approve {
            self.approved
                .insert(decided.fingerprint.as_bytes(), decided.id.as_bytes())?;
            self.approved.flush()?;
        }
        let (action, outcome) = if approve {
            ("approval.approve", Outcome::Changed)
        } else {
            ("approval.deny", Outcome::Refused)
        };
        let mut event = decided.event(
            action,
            approver,
            outcome,
            format!(
                "{} {}'s request{}",
                if approve { "approved" } else { "denied" },
                decided.requester,
                decided
                    .comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            ),
        );
        event.caller_kind = Some("user".into());
        self.audit(event);
        Ok(decided)
    }
}

/// The webhook new requests are announced to: `POST` of `{"event": "approval.requested", "approval": …}`,
/// signed `X-Idfed-Signature: sha256=<hex HMAC-SHA256 of the body>` when a secret is set. Fire and forget:
/// one attempt, 5 s at most; a failure is logged, never the requester's problem.
struct Webhook {
    url: String,
    secret: Option<zeroize::Zeroizing<Vec<u8>>>,
    http: reqwest::Client,
}

/// The environment variable holding the webhook's secret itself.
pub const WEBHOOK_SECRET_VARIABLE: &str = "IDFED_APPROVALS_WEBHOOK_SECRET";

impl Webhook {
    fn new(url: &str, settings: &ApprovalSettings) -> Result<Webhook, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("approvals.webhook_url: {e}"))?;
        let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(
                "approvals.webhook_url: must be https:// (http:// only to loopback)".into(),
            );
        }
        let secret = match std::env::var(WEBHOOK_SECRET_VARIABLE) {
            Ok(secret) if !secret.is_empty() => Some(zeroize::Zeroizing::new(secret.into_bytes())),
            _ => match &settings.webhook_secret_file {
                None => None,
                Some(file) => {
                    let text = std::fs::read_to_string(file).map_err(|e| {
                        format!("approvals.webhook_secret_file {}: {e}", file.display())
                    })?;
                    Some(zeroize::Zeroizing::new(text.trim().as_bytes().to_vec()))
                }
            },
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("approvals webhook: {e}"))?;
        Ok(Webhook {
            url: url.to_owned(),
            secret,
            http,
        })
    }

    fn announce(&self, approval: ApprovalRequestBody) {
        let body = serde_json::to_vec(&serde_json::json!({
            "event": "approval.requested",
            "approval": approval,
        }))
        .expect("JSON serializes");
        let mut request = self
            .http
            .post(&self.url)
            .header("content-type", "application/json");
        if let Some(secret) = &self.secret {
            request = request.header("x-idfed-signature", signature(secret, &body));
        }
        let request = request.body(body);
        tokio::spawn(async move {
            match request.send().await {
                Ok(answer) if answer.status().is_success() => {}
                Ok(answer) => {
                    tracing::warn!(status = %answer.status(), "the approvals webhook refused an announcement")
                }
                Err(e) => {
                    tracing::warn!(error = %e.without_url(), "the approvals webhook could not be reached")
                }
            }
        });
    }
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    format!(
        "sha256={}",
        hex::encode(aws_lc_rs::hmac::sign(&key, body).as_ref())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::lockout::ManualClock;

    fn approvals(clock: Arc<ManualClock>) -> (tempfile::TempDir, Approvals) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Db::Sled(sled::open(dir.path().join("db")).unwrap());
        let audit = AuditLog::open(&db, None).unwrap();
        let approvals = Approvals::open(&db, audit, clock, ApprovalSettings::default()).unwrap();
        (dir, approvals)
    }

    fn new(requester: &str, fingerprint: &str) -> NewApproval {
        NewApproval {
            requester: requester.into(),
            connector: "prod".into(),
            connector_id: Uuid::nil(),
            purpose: "credentials".into(),
            fingerprint: fingerprint.into(),
            duration_seconds: None,
            justification: Some("hotfix".into()),
            ticket: None,
            group: "release-managers".into(),
            reason: "writes need a release manager".into(),
            max_duration_seconds: Some(900),
            binding: "b1".into(),
        }
    }

    #[test]
    fn a_request_is_filed_once_decided_by_another_group_member_and_used_once() {
        let clock = Arc::new(ManualClock::new());
        let (_dir, approvals) = approvals(clock.clone());
        let (first, created) = approvals.request(new("alice", "f1")).unwrap();
        assert!(created);
        let (again, created) = approvals.request(new("alice", "f1")).unwrap();
        assert!(!created);
        assert_eq!(again.id, first.id);
        let managers = ["Release-Managers".to_owned()];
        assert!(matches!(
            approvals.decide(first.id, "alice", &managers, true, None),
            Err(ApprovalError::SelfApproval(_))
        ));
        assert!(matches!(
            approvals.decide(first.id, "bob", &["devs".to_owned()], true, None),
            Err(ApprovalError::NotInGroup(_))
        ));
        assert!(
            approvals
                .usable("alice", Uuid::nil(), "f1")
                .unwrap()
                .is_none()
        );
        let approved = approvals
            .decide(first.id, "bob", &managers, true, Some(" ok ".into()))
            .unwrap();
        assert_eq!(approved.comment.as_deref(), Some("ok"));
        assert!(matches!(
            approvals.decide(first.id, "carol", &managers, false, None),
            Err(ApprovalError::NotPending {
                status: ApprovalStatus::Approved,
                ..
            })
        ));
        // Only the same request, by the same requester, finds it.
        assert!(
            approvals
                .usable("alice", Uuid::nil(), "f2")
                .unwrap()
                .is_none()
        );
        assert!(
            approvals
                .usable("bob", Uuid::nil(), "f1")
                .unwrap()
                .is_none()
        );
        let usable = approvals
            .usable("alice", Uuid::nil(), "f1")
            .unwrap()
            .unwrap();
        assert!(approvals.claim(&usable, "r1").unwrap());
        assert!(!approvals.claim(&usable, "r2").unwrap());
        assert!(
            approvals
                .usable("alice", Uuid::nil(), "f1")
                .unwrap()
                .is_none()
        );
        approvals.release(&usable);
        assert!(
            approvals
                .usable("alice", Uuid::nil(), "f1")
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn one_requester_cannot_fill_the_queue() {
        let clock = Arc::new(ManualClock::new());
        let (_dir, approvals) = approvals(clock.clone());
        for n in 0..MAX_PENDING_PER_REQUESTER {
            approvals.request(new("alice", &format!("f{n}"))).unwrap();
        }
        assert!(matches!(
            approvals.request(new("alice", "one-more")),
            Err(ApprovalError::TooMany(_))
        ));
        // The same request again is still answered, and others may still ask.
        assert!(!approvals.request(new("alice", "f0")).unwrap().1);
        assert!(approvals.request(new("bob", "f0")).unwrap().1);
        // Once they expire, alice may ask again.
        clock.advance(Duration::from_secs(3601));
        assert!(approvals.request(new("alice", "one-more")).unwrap().1);
    }

    #[test]
    fn pending_requests_and_unused_approvals_expire() {
        let clock = Arc::new(ManualClock::new());
        let (_dir, approvals) = approvals(clock.clone());
        let (pending, _) = approvals.request(new("alice", "f1")).unwrap();
        clock.advance(Duration::from_secs(3601));
        assert!(matches!(
            approvals.decide(pending.id, "bob", &["release-managers".into()], true, None),
            Err(ApprovalError::NotPending {
                status: ApprovalStatus::Expired,
                ..
            })
        ));
        let listed = approvals.list().unwrap();
        assert_eq!(listed[0].status, ApprovalStatus::Expired);
        // A new request after that is a new one.
        let (second, created) = approvals.request(new("alice", "f1")).unwrap();
        assert!(created && second.id != pending.id);
        approvals
            .decide(second.id, "bob", &["release-managers".into()], true, None)
            .unwrap();
        clock.advance(Duration::from_secs(3601));
        assert!(
            approvals
                .usable("alice", Uuid::nil(), "f1")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn fingerprints_tell_every_field_apart_and_signatures_are_hmac_sha256() {
        let base = fingerprint(
            "a",
            Uuid::nil(),
            "credentials",
            Some(900),
            None,
            Some("x"),
            None,
        );
        for other in [
            fingerprint(
                "b",
                Uuid::nil(),
                "credentials",
                Some(900),
                None,
                Some("x"),
                None,
            ),
            fingerprint(
                "a",
                Uuid::nil(),
                "console-sign-in",
                Some(900),
                None,
                Some("x"),
                None,
            ),
            fingerprint("a", Uuid::nil(), "credentials", None, None, Some("x"), None),
            fingerprint(
                "a",
                Uuid::nil(),
                "credentials",
                Some(900),
                Some("{}"),
                Some("x"),
                None,
            ),
            fingerprint(
                "a",
                Uuid::nil(),
                "credentials",
                Some(900),
                None,
                None,
                Some("x"),
            ),
        ] {
            assert_ne!(base, other);
        }
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
