//! The admin API (`/api/v1/admin/…`) through `idfed::api::app()` and `tower::ServiceExt::oneshot`:
//! administrators only, secrets never shown, connectors checked, plugins checked before they are stored,
//! bindings checked by the plugin's `validate-config`, API keys shown once, every change audited.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use idfed::api::{ApiLimits, AppState, app};
use idfed::auth::static_dir::{UserEntry, add_user, hash_password};
use idfed::config::Config;
use idfed::secret::Secret;
use idfed::service::Service;
use idfed::store::Store;
use idfed_tests::fixtures;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct-horse-battery";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETzz";

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
}

fn add(path: &std::path::Path, name: &str, groups: &[&str]) {
    let entry = UserEntry {
        name: name.into(),
        display_name: None,
        email: None,
        active: true,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        password_hash: hash_password(&Secret::new(PASSWORD)).unwrap(),
    };
    add_user(path, entry, false).unwrap();
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.toml");
        add(&users, "alice", &["devs"]);
        add(&users, "root", &["idfed-admins"]);
        let config = Config::parse(&format!(
            "[server]\nplain_http = true\nbody_limit_bytes = 4096\n[data]\ndir = {:?}\n{}[auth]\nadmin_groups = [\"idfed-admins\"]\n[auth.directory]\ntype = \"static\"\nfile = {:?}\n",
            dir.path().join("data"),
            idfed_tests::postgres::data_backend_toml(),
            users
        ))
        .unwrap();
        config.check().unwrap();
        let service = Service::open(&config).unwrap();
        let state = AppState::new(Arc::new(service), ApiLimits::from(&config.server));
        Fixture { _dir: dir, state }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(SECRET),
            "a response shows the secret: {text}"
        );
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.into()));
        (status, body)
    }

    async fn login(&self, user: &str) -> String {
        let (status, body) = self
            .send(request(
                "POST",
                "/api/v1/login",
                None,
                json!({"username": user, "password": PASSWORD}),
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn call(&self, method: &str, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send(request(method, uri, Some(token), body)).await
    }
}

fn request(method: &str, uri: &str, token: Option<&str>, body: Value) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_null() {
        builder.body(Body::empty()).unwrap()
    } else {
        builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    }
}

/// A plugin upload, named when `name` is given.
fn upload(token: &str, name: Option<&str>, bytes: Vec<u8>) -> Request<Body> {
    let query = name.map(|n| format!("?name={n}")).unwrap_or_default();
    Request::builder()
        .method("POST")
        .uri(format!("/api/v1/admin/plugins{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/wasm")
        .body(Body::from(bytes))
        .unwrap()
}

#[track_caller]
fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// Connector `dev` of account `main`, for group `devs`.
fn dev_connector() -> Value {
    json!({"name": "dev", "account": "main", "groups": ["devs"], "principal": {"type": "assumed-role", "role_arn": "arn:aws:iam::123456789012:role/dev"}})
}

fn account() -> Value {
    json!({
        "description": "the main account",
        "source": {
            "type": "iam-user",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": SECRET,
        },
        "region": "eu-west-1",
    })
}

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/admin/accounts"),
    ("GET", "/api/v1/admin/accounts/main"),
    ("PUT", "/api/v1/admin/accounts/main"),
    ("DELETE", "/api/v1/admin/accounts/main"),
    ("GET", "/api/v1/admin/connectors"),
    ("POST", "/api/v1/admin/connectors"),
    ("GET", "/api/v1/admin/connectors/ci"),
    ("PUT", "/api/v1/admin/connectors/ci"),
    ("DELETE", "/api/v1/admin/connectors/ci"),
    ("GET", "/api/v1/admin/connectors/ci/bindings"),
    ("POST", "/api/v1/admin/connectors/ci/bindings"),
    ("DELETE", "/api/v1/admin/connectors/ci/bindings/x"),
    ("GET", "/api/v1/admin/plugins"),
    ("POST", "/api/v1/admin/plugins"),
    (
        "DELETE",
        "/api/v1/admin/plugins/0000000000000000000000000000000000000000000000000000000000000000",
    ),
    ("GET", "/api/v1/admin/api-keys"),
    ("POST", "/api/v1/admin/api-keys"),
    (
        "DELETE",
        "/api/v1/admin/api-keys/00000000-0000-0000-0000-000000000000",
    ),
    ("GET", "/api/v1/admin/audit"),
    ("GET", "/api/v1/admin/policy-examples"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_administrators_may_use_the_admin_api() {
    let f = Fixture::new();
    let root = f.login("root").await;
    let alice = f.login("alice").await;

    // A system-scope connector and a key for it, made by the administrator.
    let (s, b) = f
        .call("PUT", "/api/v1/admin/accounts/main", &root, account())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/connectors",
            &root,
            json!({"name": "ci", "account": "main", "principal": {"type": "iam-user"}, "system_scope": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/api-keys",
            &root,
            json!({"name": "ci-deploy", "connectors": ["ci"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let key = b["key"].as_str().unwrap().to_owned();

    let audited = f.state.service.audit.query(&Default::default()).unwrap();
    for (method, uri) in ROUTES {
        for token in [&alice, &key] {
            let (s, b) = f.call(method, uri, token, json!({})).await;
            assert_error(s, &b, StatusCode::FORBIDDEN, "admin_only");
        }
        let (s, b) = f.send(request(method, uri, None, Value::Null)).await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED, "missing_credentials");
    }
    // Nothing was changed by the refused calls.
    let (s, b) = f
        .call("GET", "/api/v1/admin/connectors", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["connectors"].as_array().unwrap().len(), 1);
    assert_eq!(
        f.state.service.audit.query(&Default::default()).unwrap(),
        audited
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_connectors_plugins_bindings_keys_and_audit() {
    let f = Fixture::new();
    let root = f.login("root").await;

    // Accounts: the secret is write-only.
    let (s, b) = f
        .call("PUT", "/api/v1/admin/accounts/main", &root, account())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["name"], "main");
    assert_eq!(b["source"]["secret_access_key"], "***");
    assert_eq!(b["source"]["access_key_id"], "AKIAIOSFODNN7EXAMPLE");
    let (s, b) = f
        .call("GET", "/api/v1/admin/accounts/main", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["source"]["secret_access_key"], "***");
    // Sending back what was shown keeps the stored secret.
    let mut shown = b.clone();
    shown["description"] = json!("renamed");
    let (s, b) = f
        .call("PUT", "/api/v1/admin/accounts/main", &root, shown)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    match f.state.service.store.account_credentials("main").unwrap() {
        Some(idfed::model::AccountCredentials::Static {
            secret_access_key, ..
        }) => assert_eq!(secret_access_key.expose(), SECRET),
        other => panic!("{other:?}"),
    }
    // A misspelt field would silently send vends to AWS's own endpoint: refused, nothing changed.
    let mut typo = account();
    typo["sts_endpont"] = json!("http://127.0.0.1:1");
    let (s, b) = f
        .call("PUT", "/api/v1/admin/accounts/main", &root, typo)
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_json");
    assert!(b.to_string().contains("sts_endpont"), "{b}");
    let mut typo = account();
    typo["source"]["secret_acess_key"] = json!("x");
    let (s, b) = f
        .call("PUT", "/api/v1/admin/accounts/main", &root, typo)
        .await;
    assert_error(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "invalid_json");
    assert_eq!(
        f.state
            .service
            .store
            .get_account("main")
            .unwrap()
            .unwrap()
            .description,
        "renamed"
    );
    let (s, b) = f
        .call("GET", "/api/v1/admin/accounts", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["accounts"].as_array().unwrap().len(), 1);
    let (s, b) = f
        .call("GET", "/api/v1/admin/accounts/nope", &root, Value::Null)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = f
        .call(
            "PUT",
            "/api/v1/admin/accounts/main",
            &root,
            json!({"name": "other", "source": {"type": "host-credentials"}}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = f
        .call(
            "PUT",
            "/api/v1/admin/accounts/bad%20name",
            &root,
            json!({"source": {"type": "host-credentials"}}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");

    // Connectors: checked, with the field named.
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/connectors",
            &root,
            json!({"name": "fed", "account": "main", "principal": {"type": "federated-user"}}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("policy"),
        "{b}"
    );
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/connectors",
            &root,
            json!({"id": "6a1c3a43-1f8e-4a40-9d33-2a8f1c1d2e3f", "name": "x", "account": "main", "principal": {"type": "iam-user"}}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = f
        .call("POST", "/api/v1/admin/connectors", &root, dev_connector())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["bindings"], json!([]));
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/connectors",
            &root,
            json!({"name": "dev", "account": "main", "principal": {"type": "iam-user"}}),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (s, b) = f
        .call(
            "GET",
            &format!("/api/v1/admin/connectors/{id}"),
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["name"], "dev");
    let (s, b) = f
        .call("DELETE", "/api/v1/admin/accounts/main", &root, Value::Null)
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");

    // Plugins: checked before they are stored.
    let wasm = std::fs::read(fixtures::DURATION_CAP).unwrap();
    assert!(
        wasm.len() > 4096,
        "bigger than the API's default body limit"
    );
    let (s, b) = f.send(upload(&root, None, wasm.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let digest = b["digest"].as_str().unwrap().to_owned();
    assert_eq!(b["size"], wasm.len());
    let (s, b) = f
        .send(upload(&root, None, b"not a component".to_vec()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "plugin_not_a_component", "{b}");
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let (s, b) = f.send(upload(&root, None, core_module)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    let (s, b) = f
        .call("POST", "/api/v1/admin/plugins", &root, json!({}))
        .await;
    assert_error(
        s,
        &b,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let (s, b) = f
        .call("GET", "/api/v1/admin/plugins", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    let plugins = b["plugins"].as_array().unwrap();
    assert_eq!(plugins.len(), 1, "{b}");
    assert_eq!(plugins[0]["digest"], digest.as_str());
    assert_eq!(plugins[0]["bindings"], json!([]));

    // Bindings: the plugin checks the configuration now.
    let bindings = format!("/api/v1/admin/connectors/{id}/bindings");
    let (s, b) = f
        .call(
            "POST",
            &bindings,
            &root,
            json!({"plugin": digest, "config": {"default_max_duration_seconds": 60}}),
        )
        .await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "plugin_config_refused",
    );
    assert_eq!(
        b["error"]["pointer"], "/default_max_duration_seconds",
        "{b}"
    );
    let (_, b) = f.call("GET", &bindings, &root, Value::Null).await;
    assert_eq!(b["bindings"], json!([]), "nothing changed");
    let (s, b) = f
        .call(
            "POST",
            &bindings,
            &root,
            json!({"plugin": "ab".repeat(32), "config": {}}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = f
        .call(
            "POST",
            &bindings,
            &root,
            json!({"plugin": digest, "config": {}, "limits": {"deadline_ms": 999999}}),
        )
        .await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "plugin_limits_invalid",
    );
    let (s, b) = f
        .call(
            "POST",
            &bindings,
            &root,
            json!({"plugin": digest, "config": {}, "tag_keys": ["team", "aws:admin"]}),
        )
        .await;
    assert_error(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "plugin_tag_keys_invalid",
    );
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tag_keys[1]"),
        "{b}"
    );
    let (s, b) = f
        .call(
            "POST",
            &bindings,
            &root,
            json!({"plugin": digest, "config": {"default_max_duration_seconds": 3600}, "position": 0, "limits": {"deadline_ms": 100}, "tag_keys": ["team"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["tag_keys"], json!(["team"]), "{b}");
    let binding_id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["position"], 0);
    let (_, b) = f.call("GET", &bindings, &root, Value::Null).await;
    let chain = b["bindings"].as_array().unwrap();
    assert_eq!(chain.len(), 1);
    assert_eq!(chain[0]["id"], binding_id.as_str());
    assert_eq!(chain[0]["plugin"], digest.as_str());
    assert_eq!(chain[0]["config"]["default_max_duration_seconds"], 3600);
    assert_eq!(chain[0]["limits"]["deadline_ms"], 100);
    assert_eq!(chain[0]["tag_keys"], json!(["team"]));
    let stored = f.state.service.store.list_connectors().unwrap();
    assert_eq!(stored[0].bindings[0].id, binding_id);
    assert_eq!(stored[0].bindings[0].tag_keys, vec!["team".to_owned()]);

    // A PUT without bindings keeps them.
    let (s, b) = f
        .call(
            "PUT",
            "/api/v1/admin/connectors/dev",
            &root,
            json!({"name": "dev", "description": "developers", "account": "main", "groups": ["devs"], "principal": {"type": "assumed-role", "role_arn": "arn:aws:iam::123456789012:role/dev"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["description"], "developers");
    assert_eq!(b["bindings"][0]["id"], binding_id.as_str());

    // The plugin cannot go while bound.
    let (s, b) = f
        .call(
            "DELETE",
            &format!("/api/v1/admin/plugins/{digest}"),
            &root,
            Value::Null,
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "conflict");
    let (_, b) = f
        .call("GET", "/api/v1/admin/plugins", &root, Value::Null)
        .await;
    assert_eq!(b["plugins"][0]["bindings"][0]["connector"], "dev", "{b}");
    let (s, b) = f
        .call(
            "DELETE",
            &format!("{bindings}/{binding_id}"),
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = f
        .call(
            "DELETE",
            &format!("{bindings}/{binding_id}"),
            &root,
            Value::Null,
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "not_found");
    let (s, b) = f
        .call(
            "DELETE",
            &format!("/api/v1/admin/plugins/{digest}"),
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");

    // API keys: shown once.
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/api-keys",
            &root,
            json!({"name": "ci", "connectors": ["dev"]}),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/connectors",
            &root,
            json!({"name": "ci", "account": "main", "principal": {"type": "iam-user"}, "system_scope": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/api-keys",
            &root,
            json!({"name": "ci", "connectors": ["ci"], "expires": "2099-01-01T00:00:00+01:00"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let key = b["key"].as_str().unwrap().to_owned();
    let key_id = b["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("idfed_"));
    assert_eq!(b["expires"], "2098-12-31T23:00:00Z");
    let (s, b) = f
        .call("GET", "/api/v1/admin/api-keys", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = b.to_string();
    assert!(!text.contains(&key) && !text.contains("hash"), "{text}");
    assert_eq!(b["api_keys"][0]["name"], "ci");
    assert_eq!(b["api_keys"][0]["connectors"][0]["name"], "ci");
    let (s, b) = f
        .call(
            "DELETE",
            &format!("/api/v1/admin/api-keys/{key_id}"),
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
    let (s, b) = f
        .call(
            "DELETE",
            "/api/v1/admin/api-keys/not-a-uuid",
            &root,
            Value::Null,
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");

    // Deleting a connector.
    let (s, _) = f
        .call("DELETE", "/api/v1/admin/connectors/ci", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = f
        .call("GET", "/api/v1/admin/connectors/ci", &root, Value::Null)
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "connector_not_found");

    // The audit log: every change, outcome `changed`, no secret and no key.
    let (s, b) = f
        .call(
            "GET",
            "/api/v1/admin/audit?user=root&outcome=changed&limit=100",
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let text = b.to_string();
    assert!(!text.contains(SECRET) && !text.contains(&key), "{text}");
    let actions: Vec<&str> = b["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["event"]["outcome"], "changed");
            assert_eq!(r["event"]["caller_kind"], "admin");
            r["event"]["action"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        actions,
        [
            "admin.connector.delete",
            "admin.api_key.delete",
            "admin.api_key.create",
            "admin.connector.create",
            "admin.plugin.delete",
            "admin.binding.delete",
            "admin.connector.update",
            "admin.binding.create",
            "admin.plugin.upload",
            "admin.connector.create",
            "admin.account.update",
            "admin.account.create",
        ]
    );
    let (s, b) = f
        .call(
            "GET",
            "/api/v1/admin/audit?connector=dev&limit=2",
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["records"][0]["event"]["action"], "admin.binding.delete");
    assert_eq!(b["records"].as_array().unwrap().len(), 2);
    for bad in [
        "?outcome=great",
        "?since=yesterday",
        "?limit=0",
        "?usr=root",
    ] {
        let (s, b) = f
            .call(
                "GET",
                &format!("/api/v1/admin/audit{bad}"),
                &root,
                Value::Null,
            )
            .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_examples_are_valid_session_policies() {
    let f = Fixture::new();
    let root = f.login("root").await;
    let (s, b) = f
        .call("GET", "/api/v1/admin/policy-examples", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let examples = b["examples"].as_array().unwrap();
    assert!(examples.len() >= 5);
    for e in examples {
        assert!(e["name"].is_string() && e["description"].is_string(), "{e}");
        let policy = e["policy"].as_str().unwrap();
        idfed_sdk::iam::check_sts_limits(policy)
            .unwrap_or_else(|err| panic!("{}: {err}", e["name"]));
    }
    let text = b.to_string();
    for wanted in ["BUCKET", "aws:RequestedRegion", "ec2:StartInstances"] {
        assert!(text.contains(wanted), "{wanted}");
    }
}

#[tokio::test]
async fn plugins_have_names_groups_are_listed_and_the_audit_filters_by_plugin() {
    use idfed::audit::{AuditEvent, Outcome};
    let f = Fixture::new();
    let root = f.login("root").await;
    let alice = f.login("alice").await;

    // The directory's groups, for pickers: administrators only.
    let (s, b) = f
        .call("GET", "/api/v1/admin/groups", &root, Value::Null)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["groups"], json!(["devs", "idfed-admins"]));
    assert_eq!(b["admin_groups"], json!(["idfed-admins"]));
    assert_eq!(b["truncated"], false);
    let (s, b) = f
        .call("GET", "/api/v1/admin/groups", &alice, Value::Null)
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "admin_only");

    // A plugin's uploads of one name are its versions; a re-upload may rename; bad names are refused.
    let cap = std::fs::read(fixtures::DURATION_CAP).unwrap();
    let guard = std::fs::read(fixtures::POLICY_GUARD).unwrap();
    let (s, b) = f.send(upload(&root, Some("limits"), cap.clone())).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["name"], "limits");
    let cap_digest = b["digest"].as_str().unwrap().to_owned();
    let (s, b) = f.send(upload(&root, Some("duration-cap"), cap)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = f.send(upload(&root, Some("bad/name"), guard.clone())).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
    let (s, b) = f.send(upload(&root, None, guard)).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let guard_digest = b["digest"].as_str().unwrap().to_owned();
    let (_, b) = f
        .call("GET", "/api/v1/admin/plugins", &root, Value::Null)
        .await;
    let name_of = |digest: &str| {
        b["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["digest"] == digest)
            .map(|p| p["name"].clone())
            .unwrap()
    };
    assert_eq!(name_of(&cap_digest), "duration-cap");
    assert_eq!(name_of(&guard_digest), Value::Null);

    // Denials and faults by plugin: those of its bindings only.
    let (s, b) = f
        .call("PUT", "/api/v1/admin/accounts/main", &root, account())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = f
        .call("POST", "/api/v1/admin/connectors", &root, dev_connector())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = f
        .call(
            "POST",
            "/api/v1/admin/connectors/dev/bindings",
            &root,
            json!({"plugin": cap_digest, "config": {}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let binding = b["id"].as_str().unwrap().to_owned();
    // Older records name only the binding; newer ones the plugin too, whose binding may be gone.
    for (binding, plugin, outcome, reason) in [
        (binding.as_str(), None, Outcome::PluginDenied, "too long"),
        (
            "another-binding",
            None,
            Outcome::PluginDenied,
            "not this one",
        ),
        (binding.as_str(), None, Outcome::PluginFault, "trapped"),
        (
            "unbound-since",
            Some(cap_digest.as_str()),
            Outcome::PluginDenied,
            "earlier",
        ),
        (
            "unbound-since",
            Some(guard_digest.as_str()),
            Outcome::PluginDenied,
            "the other one's",
        ),
    ] {
        f.state
            .service
            .audit
            .append(AuditEvent {
                request_id: "r".into(),
                action: "vend".into(),
                caller: Some("alice".into()),
                connector: Some("dev".into()),
                outcome,
                binding: Some(binding.into()),
                plugin: plugin.map(str::to_owned),
                reason: Some(reason.into()),
                ..AuditEvent::default()
            })
            .unwrap();
    }
    let (s, b) = f
        .call(
            "GET",
            &format!("/api/v1/admin/audit?plugin={cap_digest}"),
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let reasons: Vec<&str> = b["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["earlier", "trapped", "too long"]);
    let (_, b) = f
        .call(
            "GET",
            &format!("/api/v1/admin/audit?plugin={guard_digest}"),
            &root,
            Value::Null,
        )
        .await;
    assert_eq!(b["records"].as_array().map(Vec::len), Some(1), "{b}");
    assert_eq!(b["records"][0]["event"]["reason"], "the other one's");
    let (s, b) = f
        .call("GET", "/api/v1/admin/audit?plugin=nope", &root, Value::Null)
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "invalid_request");
}

#[tokio::test]
async fn edits_based_on_an_old_read_are_refused() {
    let f = Fixture::new();
    let root = f.login("root").await;
    let (s, b) = f
        .call("PUT", "/api/v1/admin/accounts/main", &root, account())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, b) = f
        .call("POST", "/api/v1/admin/connectors", &root, dev_connector())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let read = b["revision"].as_str().unwrap().to_owned();

    // The ETag of a read is its revision.
    let response = app(f.state.clone())
        .oneshot(request(
            "GET",
            "/api/v1/admin/connectors/dev",
            Some(&root),
            Value::Null,
        ))
        .await
        .unwrap();
    assert_eq!(response.headers()["etag"], format!("\"{read}\"").as_str());

    let put = |if_match: Option<String>, description: &str| {
        let mut body = dev_connector();
        body["description"] = json!(description);
        let mut req = request("PUT", "/api/v1/admin/connectors/dev", Some(&root), body);
        if let Some(tag) = if_match {
            req.headers_mut()
                .insert(header::IF_MATCH, tag.parse().unwrap());
        }
        f.send(req)
    };
    let (s, b) = put(Some(format!("\"{read}\"")), "first").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let after_first = b["revision"].as_str().unwrap().to_owned();
    assert_ne!(after_first, read);
    // Another administrator's edit based on the first read is refused, and changes nothing.
    let (s, b) = put(Some(format!("\"{read}\"")), "second").await;
    assert_error(
        s,
        &b,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    );
    let (_, b) = f
        .call("GET", "/api/v1/admin/connectors/dev", &root, Value::Null)
        .await;
    assert_eq!(b["description"], "first");
    assert_eq!(b["revision"], after_first.as_str());
    // Without If-Match, an edit is taken as it always was.
    let (s, b) = put(None, "third").await;
    assert_eq!(s, StatusCode::OK, "{b}");
}
