//! The web UI's sessions over real HTTP: the session cookie's attributes, CSRF checks on every change made
//! with it, other sites' requests refused, logout, the security headers, the embedded UI files, and a
//! login straight from a valid Crowd SSO cookie.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use idfed::api::{ApiLimits, AppState, app};
use idfed::config::Config;
use idfed::service::Service;
use idfed_tests::crowd::{CrowdServer, TestUser};
use idfed_tests::server::{PASSWORD, TestServer, user};
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};
use tower::ServiceExt;

const COOKIE: &str = "__Host-idfed_session";

/// The session cookie's `name=value` from a response's `Set-Cookie`, and the whole header.
fn session_cookie(headers: &HeaderMap) -> (String, String) {
    let set = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with(COOKIE))
        .expect("a session cookie is set");
    (set.split(';').next().unwrap().to_owned(), set)
}

/// The `name=value` of the cookie `name` a response sets.
fn set_cookie_named(headers: &HeaderMap, name: &str) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

async fn web_login(server: &TestServer, name: &str) -> (String, Value) {
    let response = server
        .client
        .post(server.url("/api/v1/web/session"))
        .json(&json!({"username": name, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let (cookie, set) = session_cookie(response.headers());
    for attribute in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=",
    ] {
        assert!(set.contains(attribute), "{set}");
    }
    let body: Value = response.json().await.unwrap();
    assert!(
        body.get("token").is_none(),
        "the page never sees the token: {body}"
    );
    assert!(
        !body.to_string().contains(cookie.split('=').nth(1).unwrap()),
        "{body}"
    );
    (cookie, body)
}

#[tokio::test]
async fn the_cookie_authenticates_every_request_with_the_csrf_token() {
    let server = TestServer::start(
        vec![user("alice", &["devs"]), user("root", &["admins"])],
        "[auth]\nadmin_groups = [\"admins\"]\n",
    )
    .await;
    let (cookie, body) = web_login(&server, "root").await;
    assert_eq!(body["user"]["name"], "root");
    assert_eq!(body["user"]["is_admin"], true);
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 43);

    // The session answers with the same CSRF token; every other request needs it with the cookie, reads
    // too (some reads vend).
    let again: Value = server
        .client
        .get(server.url("/api/v1/web/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["csrf_token"], csrf.as_str());
    let me = |token: Option<&str>| {
        let request = server
            .client
            .get(server.url("/api/v1/me"))
            .header("cookie", &cookie);
        match token {
            Some(token) => request.header("x-csrf-token", token),
            None => request,
        }
        .send()
    };
    assert_eq!(me(Some(&csrf)).await.unwrap().status(), 200);
    let refused = me(None).await.unwrap();
    assert_eq!(refused.status(), 403);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "csrf_failed", "{error}");

    // A change without the token, with another session's, or from another site is refused, and changes
    // nothing.
    let create = |token: Option<&str>, site: Option<&str>| {
        let mut request = server
            .client
            .put(server.url("/api/v1/admin/accounts/web-made"))
            .header("cookie", &cookie)
            .json(&json!({"source": {"type": "host-credentials"}}));
        if let Some(token) = token {
            request = request.header("x-csrf-token", token);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        request.send()
    };
    let (other_cookie, other) = web_login(&server, "alice").await;
    let other_csrf = other["csrf_token"].as_str().unwrap();
    assert_ne!(other_csrf, csrf);
    for (token, site) in [
        (None, None),
        (Some(other_csrf), None),
        (Some("x"), None),
        (Some(csrf.as_str()), Some("cross-site")),
    ] {
        let response = create(token, site).await.unwrap();
        assert_eq!(response.status(), 403, "{token:?} {site:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "csrf_failed", "{error}");
    }
    let account = |name: &'static str| {
        server
            .client
            .get(server.url(&format!("/api/v1/admin/accounts/{name}")))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .send()
    };
    assert_eq!(account("web-made").await.unwrap().status(), 404);
    assert_eq!(account("main").await.unwrap().status(), 200);
    let response = create(Some(csrf.as_str()), Some("same-origin"))
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    assert_eq!(account("web-made").await.unwrap().status(), 200);

    // A cross-site read is refused too, and so is another Origin's login.
    let cross = server
        .client
        .get(server.url("/api/v1/connectors"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    let forged_login = server
        .client
        .post(server.url("/api/v1/web/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged_login.status(), 403);
    assert!(forged_login.headers().get(SET_COOKIE).is_none());
    // A login must say it is JSON (a form post without a content type needs no CORS preflight).
    let untyped = server
        .client
        .post(server.url("/api/v1/web/session"))
        .body(json!({"username": "alice", "password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(untyped.status(), 415);

    // Logging in again ends the session the browser had.
    let relogin = server
        .client
        .post(server.url("/api/v1/web/session"))
        .header("cookie", &cookie)
        .json(&json!({"username": "root", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(relogin.status(), 200);
    assert_eq!(
        me(Some(&csrf)).await.unwrap().status(),
        401,
        "the old session is over"
    );

    // Logout needs the token, ends the session and clears the cookie.
    let logout = |token: &str| {
        server
            .client
            .delete(server.url("/api/v1/web/session"))
            .header("cookie", &other_cookie)
            .header("x-csrf-token", token)
            .send()
    };
    assert_eq!(logout("wrong").await.unwrap().status(), 403);
    let response = logout(other_csrf).await.unwrap();
    assert_eq!(response.status(), 204);
    let (cleared, set) = session_cookie(response.headers());
    assert_eq!(cleared, format!("{COOKIE}="));
    assert!(set.contains("Max-Age=0"), "{set}");
    let paused: Vec<&str> = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .filter(|v| v.starts_with("__Host-idfed_sso_paused=1"))
        .collect();
    assert_eq!(paused.len(), 1, "SSO is paused");
    assert!(
        paused[0].contains("HttpOnly") && !paused[0].contains("Max-Age"),
        "{}",
        paused[0]
    );
    let after = server
        .client
        .get(server.url("/api/v1/web/session"))
        .header("cookie", &other_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    assert!(
        after.headers().get(SET_COOKIE).is_some(),
        "a stale cookie is cleared"
    );
    let nobody = server
        .client
        .get(server.url("/api/v1/web/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(nobody.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn the_ui_is_served_with_a_strict_content_security_policy() {
    let server = TestServer::start(vec![user("alice", &[])], "").await;
    for (path, content_type, needle) in [
        ("/", "text/html", "<html"),
        ("/assets/app.js", "text/javascript", ""),
        ("/assets/app.css", "text/css", ""),
        ("/assets/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers().clone();
        let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert!(header("content-type").starts_with(content_type), "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("referrer-policy"), "no-referrer");
        let body = response.text().await.unwrap();
        assert!(body.contains(needle), "{path}");
        if path == "/" {
            assert!(
                !body.contains("<script>") && !body.contains("style=") && !body.contains("onclick"),
                "no inline code in the page"
            );
            assert!(
                !body.contains("http://") && !body.contains("https://cdn"),
                "nothing from elsewhere"
            );
        }
    }
    // Files are revalidated by their ETag: unchanged, no body.
    let first = server
        .client
        .get(server.url("/assets/app.js"))
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let again = |tag: String| {
        server
            .client
            .get(server.url("/assets/app.js"))
            .header("if-none-match", tag)
            .send()
    };
    let unchanged = again(etag.clone()).await.unwrap();
    assert_eq!(unchanged.status(), 304);
    assert!(unchanged.bytes().await.unwrap().is_empty());
    let changed = again("\"something-else\"".into()).await.unwrap();
    assert_eq!(changed.status(), 200);
    assert_eq!(changed.text().await.unwrap(), first.text().await.unwrap());

    // The API's answers carry the headers too.
    let api = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert!(api.headers().get("content-security-policy").is_some());
    server.stop().await;

    // With the UI turned off, only the API is served.
    let server = TestServer::start(vec![user("alice", &[])], "[web]\nenabled = false\n").await;
    let response = server.client.get(server.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let login = server
        .client
        .post(server.url("/api/v1/web/session"))
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 404);
    server.stop().await;
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app(state.clone()).oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_valid_crowd_sso_cookie_logs_the_browser_in() {
    let crowd = CrowdServer::start().await;
    crowd.add_user(TestUser::new("carol", "pw"));
    crowd.add_group("devs");
    crowd.add_user_to_group("carol", "devs");
    let dir = tempfile::tempdir().unwrap();
    let config = Config::parse(&format!(
        "[server]\nplain_http = true\n[data]\ndir = {:?}\n[auth.directory]\ntype = \"crowd\"\nurl = {:?}\napplication_name = {:?}\napplication_password = {:?}\n",
        dir.path().join("data"),
        crowd.base_url(),
        crowd.application_name(),
        crowd.application_password(),
    ))
    .unwrap();
    config.check().unwrap();
    let service = Arc::new(Service::open(&config).unwrap());
    let state =
        AppState::new(service, ApiLimits::from(&config.server)).with_web(config.web.clone());
    let session = |cookie: String| {
        Request::get("/api/v1/web/session")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap()
    };

    // The page learns that SSO is offered.
    let ready = |state: &AppState| {
        let state = state.clone();
        async move {
            let request = Request::get("/readyz").body(Body::empty()).unwrap();
            send(&state, request).await.2["sso"].clone()
        }
    };
    assert_eq!(ready(&state).await, true);
    let off = state.clone().with_web(idfed::config::WebConfig {
        enabled: true,
        sso_cookie: String::new(),
    });
    assert_eq!(ready(&off).await, false);

    let token = crowd.create_sso_token("carol", None);
    let (status, headers, body) = send(&state, session(format!("crowd.token_key={token}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["name"], "carol");
    assert_eq!(body["user"]["groups"], json!(["devs"]));
    let (cookie, _) = session_cookie(&headers);
    assert!(
        !cookie.contains(&token),
        "idfed's own session, not Crowd's token"
    );

    let bound = set_cookie_named(&headers, "__Host-idfed_sso_bound");
    assert!(!bound.contains(&token), "a fingerprint, not the token");

    // idfed's session is bound to that Crowd session: it stands while the same Crowd cookie comes along…
    let with = |crowd: &str| format!("{cookie}; {bound}; crowd.token_key={crowd}");
    let (status, headers, body) = send(&state, session(with(&token))).await;
    assert_eq!(
        (status, body["user"]["name"].clone()),
        (StatusCode::OK, json!("carol"))
    );
    assert!(headers.get(SET_COOKIE).is_none());
    // …and ends when someone else has logged in to Crowd in this browser: that person is logged in.
    crowd.add_user(TestUser::new("dave", "pw"));
    let dave = crowd.create_sso_token("dave", None);
    let (status, headers, body) = send(&state, session(with(&dave))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["name"], "dave");
    let (daves, _) = session_cookie(&headers);
    let daves_bound = set_cookie_named(&headers, "__Host-idfed_sso_bound");
    let (status, _, _) = send(&state, session(cookie.clone())).await;
    assert_eq!(status, 401, "carol's session is over");
    // Logged out of Crowd (its cookie gone): idfed's session ends too, on any request, an API call as
    // much as a page load.
    let me = |cookies: String, csrf: &str| {
        Request::get("/api/v1/me")
            .header("cookie", cookies)
            .header("x-csrf-token", csrf)
            .body(Body::empty())
            .unwrap()
    };
    let daves_csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let with_crowd = format!("{daves}; {daves_bound}; crowd.token_key={dave}");
    let (status, _, _) = send(&state, me(with_crowd.clone(), &daves_csrf)).await;
    assert_eq!(status, 200, "with Crowd's cookie");
    let (status, _, body) = send(&state, me(format!("{daves}; {daves_bound}"), &daves_csrf)).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = send(&state, me(with_crowd, &daves_csrf)).await;
    assert_eq!(status, 401, "the session ended, Crowd's cookie back or not");
    let dave2 = crowd.create_sso_token("dave", None);
    let (status, headers, body) = send(&state, session(format!("crowd.token_key={dave2}"))).await;
    assert_eq!(status, 200, "{body}");
    let (daves, _) = session_cookie(&headers);
    let daves_bound = set_cookie_named(&headers, "__Host-idfed_sso_bound");
    // And on a page load.
    let (status, headers, _) = send(&state, session(format!("{daves}; {daves_bound}"))).await;
    assert_eq!(status, 401);
    assert!(
        set_cookie_named(&headers, "__Host-idfed_sso_bound").ends_with('='),
        "the binding is forgotten"
    );
    let (status, _, _) = send(&state, session(daves)).await;
    assert_eq!(status, 401, "dave's session is over");

    // An ended Crowd session logs nobody in.
    let ended = crowd.create_sso_token("carol", None);
    crowd.end_sso_token(&ended);
    let (status, headers, body) = send(&state, session(format!("crowd.token_key={ended}"))).await;
    assert_eq!(status, 401, "{body}");
    assert!(headers.get(SET_COOKIE).is_none());
    // …and is not taken to Crowd again on the next page load; nor is what cannot be a token.
    let asked = crowd.requests().len();
    send(&state, session(format!("crowd.token_key={ended}"))).await;
    send(&state, session("crowd.token_key=not a token".into())).await;
    assert_eq!(crowd.requests().len(), asked);

    // After a logout SSO is paused: Crowd's cookie logs nobody in until the person asks for SSO.
    let token = crowd.create_sso_token("carol", None);
    let both = format!("crowd.token_key={token}; __Host-idfed_sso_paused=1");
    let (status, _, body) = send(&state, session(both.clone())).await;
    assert_eq!(status, 401, "{body}");
    let ask = Request::post("/api/v1/web/session")
        .header("cookie", &both)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"sso": true}"#))
        .unwrap();
    let (status, headers, body) = send(&state, ask).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["name"], "carol");
    let set: Vec<&str> = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(set.iter().any(|c| c.starts_with(COOKIE)), "{set:?}");
    assert!(
        set.iter()
            .any(|c| c.starts_with("__Host-idfed_sso_paused=;") && c.contains("Max-Age=0")),
        "{set:?}"
    );
    let ask_without_cookie = Request::post("/api/v1/web/session")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"sso": true}"#))
        .unwrap();
    let (status, _, body) = send(&state, ask_without_cookie).await;
    assert_eq!(status, 401, "{body}");

    // The cookie's name is the configured one.
    let renamed = state.clone().with_web(idfed::config::WebConfig {
        enabled: true,
        sso_cookie: "corp.sso".into(),
    });
    let token = crowd.create_sso_token("carol", None);
    let (status, _, _) = send(&renamed, session(format!("crowd.token_key={token}"))).await;
    assert_eq!(status, 401);
    let (status, _, _) = send(&renamed, session(format!("corp.sso={token}"))).await;
    assert_eq!(status, 200);
}
