//! The OpenAPI document at `GET /api/v1/openapi.json`, checked against the router itself.
//!
//! `idfed::api::app()` takes its routes from an `OpenApiRouter` whose every route is added with utoipa-axum's
//! `routes!`, so a route is served exactly at the method and path its `#[utoipa::path]` documents. These
//! tests check that from the outside, with no hand-kept list of routes: every documented operation is
//! served (not the fallback's 404, not 405), no other method is served on a documented path, and the API's
//! sources add no route any other way. Only the expected number of operations is written down, so that
//! removing a route is noticed.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use idfed::api::{ApiLimits, AppState, app};
use idfed::config::Config;
use idfed::service::Service;
use serde_json::Value;
use tower::ServiceExt;

/// Every operation the API serves: 21 under `/api/v1/admin`, 13 other ones under `/api/v1` (session 3,
/// web session 3, connectors 4 with caller-identity, console-url 1, container-credentials 1, openapi.json
/// 1), and 7 outside it: the web UI's 4 files, `/healthz`, `/readyz`, `/metrics`.
const OPERATIONS: usize = 48;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

struct Fixture {
    _dir: tempfile::TempDir,
    state: AppState,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let users = dir.path().join("users.toml");
        std::fs::write(&users, "").unwrap();
        let config = Config::parse(&format!(
            "[server]\nplain_http = true\n[data]\ndir = {:?}\n{}[auth.directory]\ntype = \"static\"\nfile = {:?}\n",
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

    async fn send(&self, method: &str, path: &str) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap())
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, body)
    }

    async fn document(&self) -> Value {
        let (status, document) = self.send("get", "/api/v1/openapi.json").await;
        assert_eq!(status, StatusCode::OK, "{document}");
        document
    }
}

/// The answer of the router's fallback: no route here.
fn is_unknown_route(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::NOT_FOUND
        && body["error"]["code"] == "not_found"
        && body["error"]["message"] == "no such resource"
}

/// `path` with its `{parameters}` filled with a dummy value.
fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').unwrap() + start;
        out.push_str(&rest[..start]);
        out.push_str("dummy");
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Every (method, path) in the document.
fn operations(document: &Value) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_some() {
                operations.push((method.to_owned(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_the_security_schemes() {
    let fixture = Fixture::new();
    let document = fixture.document().await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    assert_eq!(document["info"]["title"], "idfed");
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer", "{schemes}");
    assert_eq!(schemes["basic"]["scheme"], "basic", "{schemes}");
    let error = &document["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["properties"]["error"]["$ref"], "#/components/schemas/ErrorDetail",
        "{error}"
    );
    let detail = &document["components"]["schemas"]["ErrorDetail"];
    let mut required: Vec<&str> = detail["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    required.sort();
    assert_eq!(required, ["code", "message"], "{detail}");
    // A binding declares the session tag keys its plugin may add.
    let binding = &document["components"]["schemas"]["BindingInput"];
    assert_eq!(
        binding["properties"]["tag_keys"]["maxItems"], 50,
        "{binding}"
    );
}

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else() {
    let fixture = Fixture::new();
    // The check below can tell an unknown route.
    for (method, path) in [("get", "/api/v1/nope"), ("get", "/nope")] {
        let (status, body) = fixture.send(method, path).await;
        assert!(is_unknown_route(status, &body), "{path}: {status} {body}");
    }
    let document = fixture.document().await;
    let operations = operations(&document);
    assert_eq!(operations.len(), OPERATIONS, "{operations:#?}");
    for wanted in [
        ("post", "/api/v1/login"),
        ("post", "/api/v1/connectors/{id_or_name}/credentials"),
        ("get", "/api/v1/connectors/{id_or_name}/caller-identity"),
        ("post", "/api/v1/connectors/{id_or_name}/console-url"),
        ("post", "/api/v1/connectors/{id_or_name}/ecr-login"),
        ("post", "/api/v1/connectors/{id_or_name}/codeartifact-token"),
        ("get", "/api/v1/container-credentials/{id_or_name}"),
        ("get", "/api/v1/openapi.json"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("post", "/api/v1/admin/connectors/{id_or_name}/cache/flush"),
    ] {
        assert!(
            operations.contains(&(wanted.0.to_owned(), wanted.1.to_owned())),
            "{wanted:?} is not documented"
        );
    }
    for (method, path) in &operations {
        let (status, body) = fixture.send(method, &fill(path)).await;
        assert!(
            !is_unknown_route(status, &body) && status != StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not served: {status} {body}"
        );
    }
    // No method is served on a documented path that is not documented there.
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_none() {
                let (status, body) = fixture.send(method, &fill(path)).await;
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not documented: {body}"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_operation_documents_its_errors_and_security() {
    let fixture = Fixture::new();
    let document = fixture.document().await;
    let public = [
        "/",
        "/assets/app.js",
        "/assets/app.css",
        "/assets/favicon.svg",
        "/api/v1/web/session",
        "/api/v1/login",
        "/api/v1/openapi.json",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    for (method, path) in operations(&document) {
        let operation = &document["paths"][&path][&method];
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: no success response"
        );
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/json"]["schema"]["$ref"];
                assert!(
                    schema == "#/components/schemas/ErrorBody"
                        || schema == "#/components/schemas/EcsErrorBody",
                    "{method} {path} {status}: not the error schema: {response}"
                );
            }
        }
        if public.contains(&path.as_str()) {
            continue;
        }
        let security = operation["security"].as_array();
        assert!(
            security.is_some_and(|s| !s.is_empty()),
            "{method} {path}: no security"
        );
        assert!(
            responses.keys().any(|s| s.starts_with('4')),
            "{method} {path}: no error response"
        );
        for parameter in path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        {
            let documented = operation["parameters"].as_array().is_some_and(|ps| {
                ps.iter()
                    .any(|p| p["name"] == parameter && p["in"] == "path")
            });
            assert!(documented, "{method} {path}: {parameter} is not documented");
        }
    }
}

/// The API's sources add routes only through `routes!` (which documents them): no `axum::routing`, no
/// `Router::new()`, no `.route(…)`.
#[test]
fn routes_are_only_added_documented() {
    fn visit(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                visit(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src/api");
    let mut files = Vec::new();
    visit(&root, &mut files);
    assert!(files.len() > 10, "{files:?}");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            // `app()` wraps the routed application, as a whole, in the request stack: no route.
            if code.trim() == "Router::new().fallback_service(stack)" {
                continue;
            }
            let bad = code.contains(".route(")
                || code.contains(".route_service(")
                || code.contains(".nest_service(")
                || code.contains("axum::routing")
                || code
                    .replace("OpenApiRouter::new", "")
                    .contains("Router::new");
            assert!(
                !bad,
                "{}:{}: a route added without routes!: {line}",
                file.display(),
                n + 1
            );
        }
    }
}

/// The stable codes the service can answer, collected from the error types' sources: the `code()` of
/// each error enum the API maps, and every code literal the API's own error constructors name.
fn answered_codes() -> std::collections::BTreeSet<String> {
    let host = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src");
    let mut sources: Vec<std::path::PathBuf> = [
        "vend/mod.rs",
        "auth/mod.rs",
        "auth/workload.rs",
        "sts/mod.rs",
        "plugins/fault.rs",
    ]
    .iter()
    .map(|file| host.join(file))
    .collect();
    let mut folders = vec![host.join("api")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources.push(path);
            }
        }
    }
    let mut codes = std::collections::BTreeSet::new();
    for path in sources {
        let source = std::fs::read_to_string(&path).unwrap();
        // The code-bearing spans: a `fn code(&self)` body, an error constructor's arguments (the JSON
        // body's own `error_body(…)` among them), a `code:` field, the fallback's `match status` table.
        let openers = [
            "fn code(&self)",
            "simple(",
            "coded(",
            "error_body(",
            "ServiceError::Service(",
            "code: \"",
            "let (code, message) = match status",
        ];
        for opener in openers {
            for (at, _) in source.match_indices(opener) {
                // A constructor's span starts at its `(`, a `code:` at its literal, the others after the
                // opener.
                let start = if opener.ends_with(['(', '"']) {
                    at + opener.len() - 1
                } else {
                    at + opener.len()
                };
                let span = &source[start..];
                let end = if opener.starts_with("code: ") {
                    span.find(',').unwrap()
                } else {
                    closing(span)
                };
                codes.extend(snake_literals(&span[..end]));
            }
        }
    }
    codes
}

/// The end of the bracketed span `span` opens (its first `(` or `{`, to the one that closes it).
fn closing(span: &str) -> usize {
    let start = span.find(['(', '{']).unwrap();
    let mut depth = 0usize;
    for (i, c) in span[start..].char_indices() {
        match c {
            '(' | '{' => depth += 1,
            ')' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return start + i;
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced: {span:.80}")
}

/// The string literals in `text` that look like codes (`lower_snake_case`; messages have spaces).
fn snake_literals(text: &str) -> Vec<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            !s.is_empty()
                && s.chars().next().unwrap().is_ascii_lowercase()
                && s.chars().all(|c| c.is_ascii_lowercase() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_schema_is_a_shared_wire_type() {
    let document = Fixture::new().document().await;
    // The names idfed-api defines: the one definition the server, the document and the clients share.
    let api = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/api/src");
    let mut defined = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(api).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in source.lines() {
            let line = line.trim_start();
            if let Some(rest) = line
                .strip_prefix("pub struct ")
                .or_else(|| line.strip_prefix("pub enum "))
            {
                let name: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
                defined.insert(name);
            }
        }
    }
    assert!(
        defined.contains("ConnectorDetail") && defined.len() > 30,
        "{defined:?}"
    );
    let schemas = document["components"]["schemas"].as_object().unwrap();
    assert!(schemas.len() > 30, "{}", schemas.len());
    for name in schemas.keys() {
        assert!(
            defined.contains(name),
            "schema {name} is not an idfed-api type"
        );
    }
    // Every JSON body, asked or answered, is one of them (the document itself excepted).
    let mut checked = 0;
    for (method, path) in operations(&document) {
        let operation = &document["paths"][&path][&method];
        let mut bodies = vec![(
            "request".to_owned(),
            &operation["requestBody"]["content"]["application/json"]["schema"],
        )];
        for (status, response) in operation["responses"].as_object().unwrap() {
            bodies.push((
                status.clone(),
                &response["content"]["application/json"]["schema"],
            ));
        }
        for (which, schema) in bodies {
            if schema.is_null() || path == "/api/v1/openapi.json" {
                continue;
            }
            assert!(
                schema["$ref"]
                    .as_str()
                    .is_some_and(|r| r.starts_with("#/components/schemas/")),
                "{method} {path} {which}: not a shared type: {schema}"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked} bodies");
}

#[tokio::test]
async fn every_error_code_is_documented_in_the_readme_and_the_document() {
    let codes = answered_codes();
    // The collection itself works: codes of each kind of source are found.
    for known in [
        "invalid_json",
        "method_not_allowed",
        "timeout",
        "conflict",
        "precondition_failed",
        "sts_budget_exhausted",
        "plugin_busy",
        "plugin_config_refused",
        "too_many_attempts",
        "connector_disabled",
        "federation_failed",
    ] {
        assert!(codes.contains(known), "{known} not collected: {codes:?}");
    }
    assert!(codes.len() >= 45, "{codes:?}");
    // The client library's ErrorCode names every code the server answers, and nothing it never answers.
    // (`plugin_cache_error` is collected but answered as `internal_error`.)
    for code in &codes {
        assert!(
            code == "plugin_cache_error"
                || !matches!(
                    idfed_api::ErrorCode::parse(code),
                    idfed_api::ErrorCode::Other(_)
                ),
            "idfed_api::ErrorCode has no variant for {code}"
        );
    }
    for known in idfed_api::ErrorCode::ALL {
        assert!(
            codes.contains(*known),
            "ErrorCode names {known}, which no handler answers"
        );
    }
    // And an error response's description names only codes that exist.
    let document = Fixture::new().document().await;
    let mut named = 0;
    for (method, path) in operations(&document) {
        for (status, response) in document["paths"][&path][&method]["responses"]
            .as_object()
            .unwrap()
        {
            if !(status.starts_with('4') || status.starts_with('5')) {
                continue;
            }
            let description = response["description"].as_str().unwrap_or_default();
            for quoted in description.split('`').skip(1).step_by(2) {
                let code_like = quoted.contains('_')
                    && quoted.chars().all(|c| c.is_ascii_lowercase() || c == '_');
                if code_like {
                    named += 1;
                    assert!(
                        codes.contains(quoted),
                        "{method} {path} {status} names `{quoted}`, which is no code"
                    );
                }
            }
        }
    }
    assert!(named > 50, "{named}");
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
    )
    .unwrap();
    let section = &readme[readme
        .find("### Error codes")
        .expect("README has Error codes")..];
    let plugins = &readme[readme.find("## Policy plugins").unwrap()..];
    let document = Fixture::new().document().await.to_string();
    for code in &codes {
        let quoted = format!("`{code}`");
        assert!(
            section[..section.find("\n## ").unwrap()].contains(&quoted)
                || (code.starts_with("plugin_") && plugins.contains(&quoted)),
            "README does not document {code}"
        );
        assert!(
            document.contains(&quoted),
            "the OpenAPI document does not name {code}"
        );
    }
}
