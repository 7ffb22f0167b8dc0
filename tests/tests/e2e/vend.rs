//! The vend pipeline end to end, against moto (a real third-party STS on a loopback port): all three
//! principal types, authorization, duration resolution, validation before any STS call, plugins, the audit
//! log, and what is on disk afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idfed::audit::{AuditFilter, AuditLog, Outcome};
use idfed::auth::workload::Workload;
use idfed::metrics::{Metrics, Registry};
use idfed::model::{
    AccountInput, AccountSourceInput, BindingSpec, Caller, Connector, Identity, Principal,
    SessionTag,
};
use idfed::plugins::{KvStore, PluginRuntime, Purpose, RuntimeConfig};
use idfed::secret::Secret;
use idfed::store::{DataStore, KeySource, Store};
use idfed::sts::{
    AccountAccess, AwsIssuer, BoxFuture, CallerIdentity, CredentialIssuer, IssueRequest,
    IssuedCredentials, IssuerSettings, StsError,
};
use idfed::vend::{VendError, VendOptions, Vendor};
use idfed_tests::{fixtures, moto};
use uuid::Uuid;

const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETzz";
const S3_READ: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::data","arn:aws:s3:::data/*"]}]}"#;
const ROLE: &str = "arn:aws:iam::123456789012:role/deploy";

/// Counts the requests that reach the real issuer: a validation failure must leave it at zero.
struct CountingIssuer {
    inner: AwsIssuer,
    calls: AtomicUsize,
}

impl CredentialIssuer for CountingIssuer {
    fn issue<'a>(
        &'a self,
        request: &'a IssueRequest,
    ) -> BoxFuture<'a, Result<IssuedCredentials, StsError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.issue(request)
    }

    fn caller_identity<'a>(
        &'a self,
        access: &'a AccountAccess,
        credentials: &'a IssuedCredentials,
    ) -> BoxFuture<'a, Result<CallerIdentity, StsError>> {
        self.inner.caller_identity(access, credentials)
    }
}

struct Harness {
    dir: tempfile::TempDir,
    store: Arc<DataStore>,
    issuer: Arc<CountingIssuer>,
    vendor: Vendor,
    /// The plugin runtime's metrics.
    registry: Registry,
}

impl Harness {
    fn new() -> Self {
        Self::open(tempfile::tempdir().unwrap())
    }

    fn open(dir: tempfile::TempDir) -> Self {
        let store = Arc::new(
            DataStore::open(dir.path(), KeySource::File(dir.path().join("master.key"))).unwrap(),
        );
        let kv = KvStore::new(store.db().open_tree("plugin-kv").unwrap());
        let mut registry = Registry::default();
        let plugins = PluginRuntime::new(RuntimeConfig::default(), Some(store.data_dir()), kv)
            .unwrap()
            .with_metrics(Arc::new(Metrics::new(&mut registry)));
        let audit = AuditLog::open(store.db(), None).unwrap();
        let issuer = Arc::new(CountingIssuer {
            inner: AwsIssuer::new(IssuerSettings::default()),
            calls: AtomicUsize::new(0),
        });
        let vendor = Vendor::new(store.clone(), issuer.clone(), plugins, audit);
        let harness = Harness {
            dir,
            store,
            issuer,
            vendor,
            registry,
        };
        if harness.store.get_account("main").unwrap().is_none() {
            harness
                .store
                .put_account(AccountInput {
                    name: "main".into(),
                    description: String::new(),
                    source: AccountSourceInput::IamUser {
                        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                        secret_access_key: Some(Secret::new(SECRET_KEY)),
                    },
                    region: Some("us-east-1".into()),
                    sts_endpoint: Some(moto::shared().endpoint()),
                })
                .unwrap();
        }
        harness
    }

    fn connector(
        &self,
        name: &str,
        principal: Principal,
        groups: &[&str],
        edit: impl FnOnce(&mut Connector),
    ) -> Connector {
        let mut connector = Connector {
            id: Uuid::new_v4(),
            name: name.into(),
            description: String::new(),
            account: "main".into(),
            policy: (principal != Principal::IamUser).then(|| S3_READ.to_owned()),
            principal,
            policy_arns: vec![],
            default_duration_seconds: None,
            max_duration_seconds: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            system_scope: false,
            enabled: true,
            credential_cache: false,
            bindings: vec![],
        };
        edit(&mut connector);
        idfed::sts::validate::check_connector(&connector).unwrap();
        self.store.create_connector(connector).unwrap()
    }

    fn calls(&self) -> usize {
        self.issuer.calls.load(Ordering::SeqCst)
    }

    async fn vend(
        &self,
        caller: &Caller,
        connector: &str,
        options: VendOptions,
    ) -> Result<idfed::vend::Vended, VendError> {
        tokio::time::timeout(
            Duration::from_secs(60),
            self.vendor.vend(caller, connector, options),
        )
        .await
        .expect("a vend must not hang")
    }

    fn bind(&self, connector: &Connector, plugin: &str, config: &str) -> Connector {
        let digest = self
            .store
            .put_plugin(&std::fs::read(plugin).unwrap(), None)
            .unwrap();
        let mut updated = connector.clone();
        updated.bindings.push(BindingSpec {
            id: Uuid::new_v4().to_string(),
            plugin: digest,
            config: config.into(),
            limits: None,
            tag_keys: Vec::new(),
        });
        self.store.update_connector(updated, connector).unwrap()
    }
}

fn user(name: &str, groups: &[&str]) -> Caller {
    Caller {
        identity: Identity::User {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            is_admin: false,
        },
        source_ip: Some("127.0.0.1".into()),
        user_agent: Some("idfed-tests".into()),
    }
}

fn admin() -> Caller {
    Caller {
        identity: Identity::User {
            name: "root-admin".into(),
            groups: vec![],
            is_admin: true,
        },
        source_ip: None,
        user_agent: None,
    }
}

fn role() -> Principal {
    Principal::AssumedRole {
        role_arn: ROLE.into(),
        external_id: None,
        session_tags: vec![],
        source_identity: true,
    }
}

#[tokio::test]
async fn all_three_principal_types_return_working_credentials() {
    let h = Harness::new();
    h.connector("fed", Principal::FederatedUser, &["dev"], |_| {});
    h.connector("session", Principal::IamUser, &["dev"], |_| {});
    h.connector("role", role(), &["dev"], |c| {
        c.policy = None;
        if let Principal::AssumedRole { session_tags, .. } = &mut c.principal {
            session_tags.push(SessionTag {
                key: "project".into(),
                value: "apollo".into(),
            });
        }
    });
    let alice = user("alice", &["dev"]);
    for name in ["fed", "session", "role"] {
        let vended = h
            .vend(&alice, name, VendOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            !vended.credentials.secret_access_key.expose().is_empty(),
            "{name}"
        );
        assert!(
            !vended.credentials.session_token.expose().is_empty(),
            "{name}"
        );
        assert!(
            vended.credentials.expiration > std::time::SystemTime::now(),
            "{name}"
        );
    }
    let vended = h
        .vend(&alice, "role", VendOptions::default())
        .await
        .unwrap();
    assert!(
        vended.credentials.access_key_id.starts_with("ASIA"),
        "{}",
        vended.credentials.access_key_id
    );
    let access = h.vendor.account_access("main").unwrap();
    let identity = h
        .issuer
        .caller_identity(&access, &vended.credentials)
        .await
        .unwrap();
    assert!(
        identity
            .arn
            .starts_with("arn:aws:sts::123456789012:assumed-role/deploy/"),
        "{}",
        identity.arn
    );
    assert!(
        identity.arn.ends_with("/alice"),
        "the session is named after the caller: {}",
        identity.arn
    );
}

#[tokio::test]
async fn authorization_admins_members_non_members_admin_only_and_system_keys() {
    let h = Harness::new();
    let dev = h.connector("dev", Principal::FederatedUser, &["developers"], |_| {});
    h.connector("admin-only", Principal::FederatedUser, &[], |_| {});
    let ci = h.connector("ci", Principal::FederatedUser, &[], |c| {
        c.system_scope = true
    });
    let other_ci = h.connector("other-ci", Principal::FederatedUser, &[], |c| {
        c.system_scope = true
    });

    assert!(
        h.vend(
            &user("alice", &["Developers"]),
            "dev",
            VendOptions::default()
        )
        .await
        .is_ok()
    );
    let refused = h
        .vend(&user("bob", &["marketing"]), "dev", VendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "forbidden");
    assert_eq!(
        h.vend(
            &user("alice", &["developers"]),
            "admin-only",
            VendOptions::default()
        )
        .await
        .unwrap_err()
        .code(),
        "forbidden"
    );
    assert!(
        h.vend(&admin(), "admin-only", VendOptions::default())
            .await
            .is_ok()
    );
    assert!(
        h.vend(&admin(), &dev.id.to_string(), VendOptions::default())
            .await
            .is_ok(),
        "by id too"
    );
    assert_eq!(
        h.vend(&admin(), "nope", VendOptions::default())
            .await
            .unwrap_err()
            .code(),
        "connector_not_found"
    );

    let (key, secret) = h
        .store
        .create_api_key("deploy-bot", vec![ci.id], None)
        .unwrap();
    let authenticated = h
        .store
        .authenticate_api_key(secret.expose())
        .unwrap()
        .expect("the key authenticates");
    let system = Caller {
        identity: Identity::System {
            key_id: key.id,
            key_name: authenticated.name.clone(),
            connectors: authenticated.connectors.clone(),
        },
        source_ip: None,
        user_agent: None,
    };
    assert!(h.vend(&system, "ci", VendOptions::default()).await.is_ok());
    assert_eq!(
        h.vend(&system, "other-ci", VendOptions::default())
            .await
            .unwrap_err()
            .code(),
        "forbidden",
        "{other_ci:?}"
    );
    assert_eq!(
        h.vend(&system, "dev", VendOptions::default())
            .await
            .unwrap_err()
            .code(),
        "forbidden"
    );
}

#[tokio::test]
async fn durations_resolve_and_cap_and_the_response_says_so() {
    let h = Harness::new();
    h.connector("capped", role(), &["dev"], |c| {
        c.default_duration_seconds = Some(1800);
        c.max_duration_seconds = Some(3600);
    });
    let alice = user("alice", &["dev"]);
    let v = h
        .vend(&alice, "capped", VendOptions::default())
        .await
        .unwrap();
    assert_eq!((v.duration_seconds, v.capped), (1800, false));
    let v = h
        .vend(
            &alice,
            "capped",
            VendOptions {
                duration_seconds: Some(7200),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((v.duration_seconds, v.capped), (3600, true));
    let v = h
        .vend(
            &alice,
            "capped",
            VendOptions {
                duration_seconds: Some(900),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((v.duration_seconds, v.capped), (900, false));
    let remaining = v
        .credentials
        .expiration
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(
        remaining <= Duration::from_secs(900),
        "moto's expiry follows the duration asked: {remaining:?}"
    );
}

#[tokio::test]
async fn invalid_requests_are_refused_before_any_call_to_sts() {
    let h = Harness::new();
    h.connector("fed", Principal::FederatedUser, &["dev"], |_| {});
    h.connector("session", Principal::IamUser, &["dev"], |_| {});
    let alice = user("alice", &["dev"]);
    let wider = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let huge = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/{}"}}]}}"#,
        "x".repeat(2100)
    );
    let cases: Vec<(&str, VendOptions)> = vec![
        (
            "fed",
            VendOptions {
                duration_seconds: Some(60),
                ..Default::default()
            },
        ),
        (
            "fed",
            VendOptions {
                policy: Some(wider.into()),
                ..Default::default()
            },
        ),
        (
            "fed",
            VendOptions {
                policy: Some("{not json".into()),
                ..Default::default()
            },
        ),
        (
            "fed",
            VendOptions {
                policy: Some(huge),
                ..Default::default()
            },
        ),
        (
            "fed",
            VendOptions {
                policy: Some(S3_READ.replace("s3:GetObject", "s3:GetObjé\u{2603}")),
                ..Default::default()
            },
        ),
        (
            "session",
            VendOptions {
                policy: Some(S3_READ.into()),
                ..Default::default()
            },
        ),
    ];
    for (connector, options) in cases {
        let shown = format!("{options:?}");
        let err = h.vend(&alice, connector, options).await.unwrap_err();
        assert_eq!(err.code(), "invalid_request", "{shown}: {err}");
    }
    assert_eq!(h.calls(), 0, "no invalid request may reach STS");
    // A narrower policy from the caller is fine, and goes through.
    let narrower = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/reports/*"}]}"#;
    h.vend(
        &alice,
        "fed",
        VendOptions {
            policy: Some(narrower.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(h.calls(), 1);
}

#[tokio::test]
async fn plugin_denials_and_faults_are_refused_and_audited_with_their_binding() {
    let h = Harness::new();
    let guarded = h.connector("guarded", Principal::FederatedUser, &["dev"], |_| {});
    let guarded = h.bind(
        &guarded,
        fixtures::BUSINESS_HOURS,
        r#"{"days": ["sun"], "start": "00:00", "end": "00:01"}"#,
    );
    let broken = h.connector("broken", Principal::FederatedUser, &["dev"], |_| {});
    let broken = h.bind(&broken, fixtures::PANIC_PLUGIN, "{}");
    let alice = user("alice", &["dev"]);

    let denied = h
        .vend(&alice, "guarded", VendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), "plugin_denied");
    assert!(denied.to_string().contains("business hours"), "{denied}");
    let fault = h
        .vend(&alice, "broken", VendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(fault.code(), "plugin_trap");
    assert!(
        !fault.to_string().contains("boom"),
        "fault details are for administrators: {fault}"
    );
    assert_eq!(h.calls(), 0);

    let records = h
        .vendor
        .audit()
        .query(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let deny = records
        .iter()
        .find(|r| r.event.outcome == Outcome::PluginDenied)
        .expect("the denial is audited");
    assert_eq!(
        deny.event.binding.as_deref(),
        Some(guarded.bindings[0].id.as_str())
    );
    assert_eq!(
        deny.event.plugin.as_deref(),
        Some(guarded.bindings[0].plugin.as_str())
    );
    assert_eq!(deny.event.caller.as_deref(), Some("alice"));
    let faulted = records
        .iter()
        .find(|r| r.event.outcome == Outcome::PluginFault)
        .expect("the fault is audited");
    assert_eq!(
        faulted.event.binding.as_deref(),
        Some(broken.bindings[0].id.as_str())
    );
    assert_eq!(
        faulted.event.plugin.as_deref(),
        Some(broken.bindings[0].plugin.as_str())
    );
    assert!(
        faulted
            .event
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("boom"),
        "{faulted:?}"
    );
    assert!(h.vendor.audit().verify().unwrap().problems.is_empty());

    // Each evaluation is timed, by binding, plugin and outcome.
    let open = h.connector("open", Principal::FederatedUser, &["dev"], |_| {});
    let open = h.bind(
        &open,
        fixtures::DURATION_CAP,
        r#"{"default_max_duration_seconds": 3600}"#,
    );
    for _ in 0..2 {
        h.vend(&alice, "open", VendOptions::default())
            .await
            .unwrap();
    }
    let text = idfed::metrics::encode(&h.registry).unwrap();
    assert!(
        text.contains("# TYPE idfed_plugin_evaluation_duration_seconds histogram\n"),
        "{text}"
    );
    for (connector, outcome, count) in [
        (&open, "allow", 2),
        (&guarded, "deny", 1),
        (&broken, "plugin_trap", 1),
    ] {
        let binding = &connector.bindings[0];
        let series = format!(
            "idfed_plugin_evaluation_duration_seconds_count{{binding=\"{}\",plugin=\"{}\",outcome=\"{outcome}\"}} {count}\n",
            binding.id,
            &binding.plugin[..12],
        );
        assert!(text.contains(&series), "{series} in {text}");
    }
}

#[tokio::test]
async fn every_attempt_is_audited_and_nothing_secret_lands_on_disk() {
    let h = Harness::new();
    h.connector("fed", Principal::FederatedUser, &["dev"], |_| {});
    let alice = user("alice", &["dev"]);
    let vended = h.vend(&alice, "fed", VendOptions::default()).await.unwrap();
    h.vend(&user("mallory", &["ops"]), "fed", VendOptions::default())
        .await
        .unwrap_err();
    let records = h
        .vendor
        .audit()
        .query(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(records.len(), 2);
    let issued = records
        .iter()
        .find(|r| r.event.outcome == Outcome::Issued)
        .unwrap();
    assert_eq!(
        issued.event.access_key_id.as_deref(),
        Some(vended.credentials.access_key_id.as_str())
    );
    assert_eq!(issued.event.request_id, vended.request_id);
    assert!(
        issued
            .event
            .policy_sha256
            .as_deref()
            .is_some_and(|h| h.len() == 64)
    );
    let refused = records
        .iter()
        .find(|r| r.event.outcome == Outcome::Refused)
        .unwrap();
    assert_eq!(
        (
            refused.event.caller.as_deref(),
            refused.event.code.as_deref()
        ),
        (Some("mallory"), Some("forbidden"))
    );

    h.store.flush().unwrap();
    h.vendor.audit().flush().unwrap();
    let secrets = [
        SECRET_KEY,
        vended.credentials.secret_access_key.expose(),
        vended.credentials.session_token.expose(),
    ];
    for entry in walk(h.dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        for secret in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a secret in plaintext",
                entry.display()
            );
        }
    }
}

#[tokio::test]
async fn state_survives_a_restart() {
    let h = Harness::new();
    h.connector("fed", Principal::FederatedUser, &["dev"], |_| {});
    h.vend(&user("alice", &["dev"]), "fed", VendOptions::default())
        .await
        .unwrap();
    let Harness {
        dir, store, vendor, ..
    } = h;
    drop((store, vendor));
    let h = Harness::open(dir);
    h.vend(&user("alice", &["dev"]), "fed", VendOptions::default())
        .await
        .unwrap();
    let report = h.vendor.audit().verify().unwrap();
    assert_eq!(
        (report.records, report.problems.len()),
        (2, 0),
        "{report:?}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn plugins_that_misbehave_as_an_attacker_would_are_faults_of_their_binding_and_nothing_is_issued()
 {
    let h = Harness::new();
    let alice = user("alice", &["dev"]);
    let cases = [
        (
            fixtures::SLEEPER,
            r#"{"sleep_ms": 20000}"#,
            "plugin_timeout",
        ),
        (
            fixtures::OVERSIZED_GRANT,
            r#"{"kind": "tags", "count": 60}"#,
            "plugin_invalid_grant",
        ),
        (
            fixtures::OVERSIZED_GRANT,
            r#"{"kind": "duration", "count": 1}"#,
            "plugin_invalid_grant",
        ),
        (
            fixtures::TAG_ADDER,
            r#"{"tags": {"idfed-admin": "true"}}"#,
            "plugin_widened_grant",
        ),
        (
            fixtures::EXTRA_KEY_POLICY,
            r#"{"mode": "extra-key"}"#,
            "plugin_invalid_grant",
        ),
    ];
    for (i, (plugin, config, code)) in cases.into_iter().enumerate() {
        let name = format!("attacked-{i}");
        let connector = h.connector(&name, role(), &["dev"], |_| {});
        let connector = h.bind(&connector, plugin, config);
        let err = h
            .vend(&alice, &name, VendOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{plugin} {config}: {err}");
        let records = h
            .vendor
            .audit()
            .query(&AuditFilter {
                connector: Some(name.clone()),
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        let record = records.first().expect("the attempt is audited");
        assert_eq!(record.event.outcome, Outcome::PluginFault, "{code}");
        assert_eq!(
            record.event.binding.as_deref(),
            Some(connector.bindings[0].id.as_str()),
            "{code}: the plugin's binding is named"
        );
    }
    assert_eq!(h.calls(), 0, "nothing reached STS");
}

#[tokio::test]
async fn a_caller_policy_with_a_key_the_check_does_not_understand_is_refused() {
    let h = Harness::new();
    h.connector("fed", Principal::FederatedUser, &["dev"], |_| {});
    let alice = user("alice", &["dev"]);
    let sneaky = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::data/*"}],"statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    let err = h
        .vend(
            &alice,
            "fed",
            VendOptions {
                policy: Some(sneaky.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request", "{err}");
    assert!(err.to_string().contains("statement"), "{err}");
    assert_eq!(h.calls(), 0);
}

/// A workload caller (a CI job that came with an OIDC token) allowed on `connectors`.
fn workload(connectors: &[&str]) -> Caller {
    Caller {
        identity: Identity::Workload(Workload {
            issuer: "ci".into(),
            name: "ci:org/app@refs/heads/main".into(),
            subject: "repo:org/app:ref:refs/heads/main".into(),
            claims: [
                ("ref".to_owned(), "refs/heads/main".into()),
                ("repository".to_owned(), "org/app".into()),
                ("run_number".to_owned(), 17.into()),
            ]
            .into(),
            connectors: connectors.iter().map(|c| c.to_string()).collect(),
        }),
        source_ip: Some("127.0.0.1".into()),
        user_agent: Some("idfed-tests".into()),
    }
}

#[tokio::test]
async fn a_0_2_plugin_sees_what_the_pipeline_fills_in_the_workload_s_claims_and_the_purpose() {
    let h = Harness::new();
    let ci = h.connector("ci-probe", Principal::FederatedUser, &[], |c| {
        c.system_scope = true;
    });
    h.bind(&ci, fixtures::CONTRACT_PROBE, r#"{"mode": "echo"}"#);
    let options = VendOptions {
        purpose: Purpose::ServiceToken("ecr".into()),
        justification: Some("release 1.2".into()),
        ticket: Some("REL-12".into()),
        ..VendOptions::default()
    };
    let refused = h
        .vend(&workload(&["ci-probe"]), "ci-probe", options)
        .await
        .unwrap_err();
    let VendError::PluginDenied { reason, .. } = &refused else {
        panic!("{refused:?}");
    };
    let seen: serde_json::Value = serde_json::from_str(reason).unwrap();
    assert_eq!(
        seen,
        serde_json::json!({
            "justification": "release 1.2",
            "ticket": "REL-12",
            "purpose": "service-token:ecr",
            "approval": null,
            "workload": {
                "issuer": "ci",
                "subject": "repo:org/app:ref:refs/heads/main",
                // Each claim arrives as JSON text, of its own type.
                "claims": {"ref": "\"refs/heads/main\"", "repository": "\"org/app\"", "run_number": "17"},
            },
        })
    );
    // A user is no workload, and a plain vend is for credentials.
    let dev = h.connector("dev-probe", Principal::FederatedUser, &["dev"], |_| {});
    h.bind(&dev, fixtures::CONTRACT_PROBE, r#"{"mode": "echo"}"#);
    let refused = h
        .vend(
            &user("alice", &["dev"]),
            "dev-probe",
            VendOptions::default(),
        )
        .await
        .unwrap_err();
    let VendError::PluginDenied { reason, .. } = &refused else {
        panic!("{refused:?}");
    };
    let seen: serde_json::Value = serde_json::from_str(reason).unwrap();
    assert_eq!(seen["workload"], serde_json::Value::Null);
    assert_eq!(seen["purpose"], "credentials");
    assert_eq!(h.calls(), 0);
}

#[tokio::test]
async fn needs_approval_is_refused_as_approval_required_audited_and_nothing_is_vended() {
    let h = Harness::new();
    let prod = h.connector("prod", Principal::FederatedUser, &["dev"], |_| {});
    let prod = h.bind(
        &prod,
        fixtures::CONTRACT_PROBE,
        r#"{"mode": "approval", "group": "prod-approvers", "reason": "writes to prod need a second person"}"#,
    );
    let refused = h
        .vend(&user("alice", &["dev"]), "prod", VendOptions::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "approval_required");
    let message = refused.to_string();
    assert!(
        message.contains("\"prod-approvers\"")
            && message.contains("writes to prod need a second person"),
        "{message}"
    );
    assert_eq!(h.calls(), 0, "nothing may reach STS");

    let records = h
        .vendor
        .audit()
        .query(&AuditFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let record = records
        .iter()
        .find(|r| r.event.code.as_deref() == Some("approval_required"))
        .expect("the refusal is audited");
    assert_eq!(record.event.outcome, Outcome::PluginDenied);
    assert_eq!(record.event.caller.as_deref(), Some("alice"));
    assert_eq!(
        record.event.binding.as_deref(),
        Some(prod.bindings[0].id.as_str())
    );
    assert_eq!(
        record.event.plugin.as_deref(),
        Some(prod.bindings[0].plugin.as_str())
    );
    assert!(record.event.access_key_id.is_none());
    assert!(
        record
            .event
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("prod-approvers")),
        "{record:?}"
    );
}
