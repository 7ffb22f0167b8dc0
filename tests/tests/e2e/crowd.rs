//! idfed's Crowd directory ([`CrowdDirectory`]) against the Crowd REST test server ([`CrowdServer`]): passwords,
//! nested groups across pages, the application's own refusals, Crowd down or hanging, SSO tokens, and membership
//! changes seen by `groups()`.

use std::future::Future;
use std::io::{Read, Write};
use std::time::Duration;

use idfed::auth::crowd::{CrowdConfig, CrowdDirectory};
use idfed::auth::{AuthError, Directory};
use idfed::secret::Secret;
use idfed_tests::crowd::{
    ADDRESS_REFUSED, APPLICATION_AUTH_FAILED, APPLICATION_NAME, APPLICATION_PASSWORD, CrowdServer,
    TestUser, closed_base_url,
};

/// Only against a test that would otherwise hang forever: no test relies on it for its answer.
const HANG_GUARD: Duration = Duration::from_secs(60);

async fn guarded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .expect("the Crowd directory hung past the hang guard")
}

fn config(base_url: &str, password: &str) -> CrowdConfig {
    let mut config = CrowdConfig::new(base_url, APPLICATION_NAME, Secret::new(password));
    config.page_size = 2;
    config
}

fn directory(server: &CrowdServer) -> CrowdDirectory {
    CrowdDirectory::new(config(&server.base_url(), APPLICATION_PASSWORD)).unwrap()
}

/// alice is directly in dev, ops and readers; dev ⊂ engineering ⊂ staff and ops ⊂ oncall, so she has six groups,
/// two of them through two levels of nesting. bob is inactive, carol's password has expired, dave is in finance.
async fn populated() -> CrowdServer {
    let server = CrowdServer::start().await;
    server.add_user(TestUser::new("alice", "alice-pw").display_name("Alice Liddell"));
    server.add_user(TestUser::new("bob", "bob-pw").inactive());
    server.add_user(TestUser::new("carol", "carol-pw").expired_credential());
    server.add_user(TestUser::new("dave", "dave-pw").email(""));
    for group in ["dev", "ops", "readers"] {
        server.add_user_to_group("alice", group);
    }
    server.add_group_to_group("dev", "engineering");
    server.add_group_to_group("engineering", "staff");
    server.add_group_to_group("ops", "oncall");
    server.add_user_to_group("dave", "finance");
    server.add_user_to_group("bob", "dev");
    server
}

fn sorted(mut groups: Vec<String>) -> Vec<String> {
    groups.sort();
    groups
}

const ALICE_GROUPS: [&str; 6] = ["dev", "engineering", "oncall", "ops", "readers", "staff"];

fn nested_requests(server: &CrowdServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/user/group/nested")
        .map(|r| r.query.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn a_right_password_gives_the_person_with_nested_groups_across_pages() {
    let server = populated().await;
    let crowd = directory(&server);
    let person = guarded(crowd.authenticate("alice", &Secret::new("alice-pw")))
        .await
        .unwrap();
    assert_eq!(person.name, "alice");
    assert_eq!(person.display_name, "Alice Liddell");
    assert_eq!(person.email.as_deref(), Some("alice@example.net"));
    assert!(person.active);
    assert_eq!(sorted(person.groups.clone()), ALICE_GROUPS);
    assert_eq!(server.nested_groups_of("alice"), ALICE_GROUPS);

    // Six groups, two a page: three full pages and an empty one.
    assert_eq!(
        nested_requests(&server),
        [0, 2, 4, 6].map(|i| format!("username=alice&start-index={i}&max-results=2"))
    );
    let first = &server.requests()[0];
    assert_eq!(
        (
            first.method.as_str(),
            first.path.as_str(),
            first.query.as_deref()
        ),
        ("POST", "/authentication", Some("username=alice"))
    );

    // A page size that does not divide the count: 5 + a short page of 1.
    let mut five = config(&server.base_url(), APPLICATION_PASSWORD);
    five.page_size = 5;
    let crowd = CrowdDirectory::new(five).unwrap();
    server.reset_requests();
    let person = guarded(crowd.authenticate("alice", &Secret::new("alice-pw")))
        .await
        .unwrap();
    assert_eq!(sorted(person.groups), ALICE_GROUPS);
    assert_eq!(nested_requests(&server).len(), 2);
}

#[tokio::test]
async fn names_are_matched_as_crowd_does_and_spelled_as_crowd_spells_them() {
    let server = populated().await;
    let crowd = directory(&server);
    let person = guarded(crowd.authenticate("ALICE", &Secret::new("alice-pw")))
        .await
        .unwrap();
    assert_eq!(person.name, "alice");
    assert_eq!(sorted(person.groups), ALICE_GROUPS);

    // A user without an email, and one whose name and password need encoding in the URL and the JSON body.
    let person = guarded(crowd.authenticate("dave", &Secret::new("dave-pw")))
        .await
        .unwrap();
    assert_eq!(
        (person.email, person.groups),
        (None, vec!["finance".to_owned()])
    );
    let odd_name = "anne marie+ops&x=1/é";
    let odd_password = "pa ss\"word\\ with {json} & ünïcode+%20";
    server.add_user(TestUser::new(odd_name, odd_password));
    server.add_user_to_group(odd_name, "group with spaces & signs");
    let person = guarded(crowd.authenticate(odd_name, &Secret::new(odd_password)))
        .await
        .unwrap();
    assert_eq!(person.name, odd_name);
    assert_eq!(person.groups, ["group with spaces & signs"]);
}

#[tokio::test]
async fn a_wrong_application_password_is_unavailable() {
    let server = populated().await;
    let crowd =
        CrowdDirectory::new(config(&server.base_url(), "not-the-application-password")).unwrap();
    let outcomes = [
        guarded(crowd.authenticate("alice", &Secret::new("alice-pw"))).await,
        guarded(crowd.validate_sso_token(&Secret::new("any"), None)).await,
    ];
    for outcome in outcomes {
        let e = outcome.unwrap_err();
        assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
        assert!(!format!("{e:?} {e}").contains("not-the-application-password"));
    }
    let e = guarded(crowd.groups("alice")).await.unwrap_err();
    assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the identity directory is unavailable; try again later"
    );

    // A wrong application name is refused the same way.
    let mut wrong_name = config(&server.base_url(), APPLICATION_PASSWORD);
    wrong_name.application_name = "someone-else".into();
    let crowd = CrowdDirectory::new(wrong_name).unwrap();
    assert!(matches!(
        guarded(crowd.authenticate("alice", &Secret::new("alice-pw"))).await,
        Err(AuthError::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_refused_application_address_is_unavailable() {
    let server = populated().await;
    let crowd = directory(&server);
    server.refuse_application_address(true);
    assert!(matches!(
        guarded(crowd.authenticate("alice", &Secret::new("alice-pw"))).await,
        Err(AuthError::Unavailable(_))
    ));
    assert!(matches!(
        guarded(crowd.groups("alice")).await,
        Err(AuthError::Unavailable(_))
    ));
    server.refuse_application_address(false);
    assert!(
        guarded(crowd.authenticate("alice", &Secret::new("alice-pw")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn every_refused_password_is_the_same_invalid_credentials() {
    let server = populated().await;
    let crowd = directory(&server);
    let attempts = [
        ("alice", "wrong-pw"), // INVALID_USER_AUTHENTICATION
        ("nobody", "any-pw"),  // USER_NOT_FOUND
        ("bob", "bob-pw"),     // INACTIVE_ACCOUNT
        ("carol", "carol-pw"), // EXPIRED_CREDENTIAL (with the right password)
    ];
    let mut shown = Vec::new();
    for (user, password) in attempts {
        server.reset_requests();
        let e = guarded(crowd.authenticate(user, &Secret::new(password)))
            .await
            .unwrap_err();
        assert_eq!(e, AuthError::InvalidCredentials, "{user}");
        // Crowd was asked, and nothing more was asked after its refusal.
        assert_eq!(server.request_count(), 1, "{user}");
        shown.push((e.to_string(), e.code()));
    }
    shown.dedup();
    assert_eq!(
        shown,
        [(
            "invalid user name or password".to_owned(),
            "invalid_credentials"
        )]
    );
}

#[tokio::test]
async fn crowd_down_is_unavailable() {
    // Nothing ever listened.
    let crowd = CrowdDirectory::new(config(&closed_base_url(), APPLICATION_PASSWORD)).unwrap();
    let e = guarded(crowd.authenticate("alice", &Secret::new("alice-pw")))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
    assert!(matches!(
        guarded(crowd.validate_sso_token(&Secret::new("token"), Some("10.0.0.1"))).await,
        Err(AuthError::Unavailable(_))
    ));

    // A Crowd that was up (connections pooled) and went down, then came back.
    let server = populated().await;
    let crowd = directory(&server);
    assert!(
        guarded(crowd.authenticate("alice", &Secret::new("alice-pw")))
            .await
            .is_ok()
    );
    server.go_down().await;
    assert!(server.is_down());
    assert!(matches!(
        guarded(crowd.authenticate("alice", &Secret::new("alice-pw"))).await,
        Err(AuthError::Unavailable(_))
    ));
    assert!(matches!(
        guarded(crowd.groups("alice")).await,
        Err(AuthError::Unavailable(_))
    ));
    server.come_back().await.unwrap();
    assert_eq!(
        sorted(guarded(crowd.groups("alice")).await.unwrap()),
        ALICE_GROUPS
    );
}

#[tokio::test]
async fn a_hanging_crowd_is_unavailable_within_the_client_timeout() {
    let server = populated().await;
    let mut quick = config(&server.base_url(), APPLICATION_PASSWORD);
    quick.timeout = Duration::from_millis(500);
    let crowd = CrowdDirectory::new(quick).unwrap();
    server.set_hanging(true);
    let e = guarded(crowd.authenticate("alice", &Secret::new("alice-pw")))
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
    assert!(matches!(
        guarded(crowd.validate_sso_token(&Secret::new("token"), None)).await,
        Err(AuthError::Unavailable(_))
    ));
    // The requests did reach the server, which never answered.
    assert_eq!(server.request_count(), 2);
    server.set_hanging(false);
    assert!(
        guarded(crowd.authenticate("alice", &Secret::new("alice-pw")))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_valid_sso_token_gives_the_person_with_groups() {
    let server = populated().await;
    let crowd = directory(&server);
    let token = server.create_sso_token("alice", Some("10.1.2.3"));
    server.reset_requests();
    let person = guarded(crowd.validate_sso_token(&Secret::new(token.clone()), Some("10.1.2.3")))
        .await
        .unwrap();
    assert_eq!(person.name, "alice");
    assert_eq!(person.display_name, "Alice Liddell");
    assert_eq!(sorted(person.groups), ALICE_GROUPS);
    // Validated (with the factors), then read, then the groups.
    let calls: Vec<_> = server
        .requests()
        .into_iter()
        .map(|r| format!("{} {}?{}", r.method, r.path, r.query.unwrap_or_default()))
        .collect();
    assert_eq!(calls[0], format!("POST /session/{token}?"));
    assert_eq!(calls[1], format!("GET /session/{token}?expand=user"));
    assert!(
        calls[2].starts_with("GET /user/group/nested?username=alice&"),
        "{calls:?}"
    );

    // A token created without factors validates without them.
    let token = server.create_sso_token("dave", None);
    let person = guarded(crowd.validate_sso_token(&Secret::new(token), None))
        .await
        .unwrap();
    assert_eq!(
        (person.name.as_str(), person.groups),
        ("dave", vec!["finance".to_owned()])
    );
}

#[tokio::test]
async fn an_invalid_sso_token_is_an_invalid_session() {
    let server = populated().await;
    let crowd = directory(&server);
    let invalid = |token: String, address: Option<&'static str>| {
        let crowd = &crowd;
        async move {
            guarded(crowd.validate_sso_token(&Secret::new(token), address))
                .await
                .unwrap_err()
        }
    };
    assert_eq!(
        invalid("no-such-token".into(), Some("10.1.2.3")).await,
        AuthError::InvalidSession
    );
    assert_eq!(
        invalid("a/b?c=d e".into(), None).await,
        AuthError::InvalidSession
    );

    let ended = server.create_sso_token("alice", Some("10.1.2.3"));
    server.end_sso_token(&ended);
    assert_eq!(
        invalid(ended, Some("10.1.2.3")).await,
        AuthError::InvalidSession
    );

    let expired = server.create_sso_token("alice", Some("10.1.2.3"));
    server.expire_sso_token(&expired);
    assert_eq!(
        invalid(expired, Some("10.1.2.3")).await,
        AuthError::InvalidSession
    );

    let elsewhere = server.create_sso_token("alice", Some("10.1.2.3"));
    assert_eq!(
        invalid(elsewhere.clone(), Some("192.0.2.9")).await,
        AuthError::InvalidSession
    );
    assert_eq!(
        invalid(elsewhere.clone(), None).await,
        AuthError::InvalidSession
    );
    // Still valid from where it was created.
    assert!(
        guarded(crowd.validate_sso_token(&Secret::new(elsewhere), Some("10.1.2.3")))
            .await
            .is_ok()
    );

    let deactivated = server.create_sso_token("dave", None);
    server.set_user_active("dave", false);
    assert_eq!(invalid(deactivated, None).await, AuthError::InvalidSession);
    assert_eq!(
        AuthError::InvalidSession.to_string(),
        "your session is not valid; log in again"
    );
}

#[tokio::test]
async fn groups_follow_membership_changes() {
    let server = populated().await;
    let crowd = directory(&server);
    assert_eq!(
        sorted(guarded(crowd.groups("alice")).await.unwrap()),
        ALICE_GROUPS
    );

    // Out of dev: engineering and staff came through dev only.
    server.remove_user_from_group("alice", "dev");
    assert_eq!(
        sorted(guarded(crowd.groups("alice")).await.unwrap()),
        ["oncall", "ops", "readers"]
    );
    // A nested membership ended: oncall came through ops.
    server.remove_group_from_group("ops", "oncall");
    assert_eq!(
        sorted(guarded(crowd.groups("alice")).await.unwrap()),
        ["ops", "readers"]
    );
    // A new nested membership shows at once.
    server.add_group_to_group("readers", "library");
    assert_eq!(
        sorted(guarded(crowd.groups("alice")).await.unwrap()),
        ["library", "ops", "readers"]
    );

    // Unknown and inactive users have no groups to re-check.
    assert_eq!(
        guarded(crowd.groups("nobody")).await,
        Err(AuthError::InvalidCredentials)
    );
    assert_eq!(
        guarded(crowd.groups("bob")).await,
        Err(AuthError::InvalidCredentials)
    );
    server.set_user_active("alice", false);
    assert_eq!(
        guarded(crowd.groups("alice")).await,
        Err(AuthError::InvalidCredentials)
    );
}

// ---- the test server itself, spoken to in raw HTTP/1.1, against the notes ----

/// One request with `Connection: close`; the status, the headers (lower-cased names) and the body.
fn raw(server: &CrowdServer, request: &str) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(server.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_lowercase(), body.to_owned())
}

fn basic(name: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{name}:{password}"))
}

fn http(method: &str, target: &str, auth: &str, body: Option<&str>) -> String {
    let mut request = format!(
        "{method} /rest/usermanagement/1{target} HTTP/1.1\r\nHost: crowd\r\nConnection: close\r\n\
         Authorization: Basic {auth}\r\nAccept: application/json\r\n"
    );
    if let Some(body) = body {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    request
}

#[tokio::test]
async fn the_test_server_answers_as_the_notes_say() {
    let server = populated().await;
    let app = basic(APPLICATION_NAME, APPLICATION_PASSWORD);
    let server = std::sync::Arc::new(server);
    let s = server.clone();
    tokio::task::spawn_blocking(move || {
        let server = &*s;
        // Application authentication.
        let (status, head, body) = raw(server, &http("GET", "/user?username=alice", &basic("idfed", "x"), None));
        assert_eq!((status, body.as_str()), (401, APPLICATION_AUTH_FAILED));
        assert!(head.contains("content-type: text/plain"), "{head}");

        // The user entity.
        let (status, _, body) = raw(server, &http("GET", "/user?username=alice", &app, None));
        assert_eq!(status, 200);
        let user: serde_json::Value = serde_json::from_str(&body).unwrap();
        for field in ["expand", "link", "name", "first-name", "last-name", "display-name", "email", "password", "active", "attributes"] {
            assert!(user.get(field).is_some(), "{field} in {body}");
        }
        assert_eq!(user["link"]["rel"], "self");
        let (status, _, body) = raw(server, &http("GET", "/user?username=nobody", &app, None));
        assert_eq!(status, 404);
        assert!(body.contains("\"reason\":\"USER_NOT_FOUND\""), "{body}");

        // Password checks.
        let (status, _, body) = raw(server, &http("POST", "/authentication?username=alice", &app, Some(r#"{"value":"nope"}"#)));
        assert_eq!(status, 400);
        let error: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(error["reason"], "INVALID_USER_AUTHENTICATION");
        assert!(error["message"].is_string());
        for (user, password, reason) in [("nobody", "x", "USER_NOT_FOUND"), ("bob", "bob-pw", "INACTIVE_ACCOUNT"), ("carol", "carol-pw", "EXPIRED_CREDENTIAL")] {
            let (status, _, body) = raw(server, &http("POST", &format!("/authentication?username={user}"), &app, Some(&format!(r#"{{"value":"{password}"}}"#))));
            assert_eq!(status, 400);
            assert!(body.contains(reason), "{body}");
        }

        // Groups: nested and direct, expanded, paged; a missing user name.
        let (status, _, body) = raw(server, &http("GET", "/user/group/nested?username=alice&start-index=1&max-results=3&expand=group", &app, None));
        assert_eq!(status, 200);
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(page["expand"], "group");
        let names: Vec<_> = page["groups"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap().to_owned()).collect();
        assert_eq!(names, ALICE_GROUPS[1..4]);
        assert_eq!(page["groups"][0]["type"], "GROUP");
        let (_, _, body) = raw(server, &http("GET", "/user/group/direct?username=alice", &app, None));
        let direct: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(direct["groups"].as_array().unwrap().len(), 3);
        let (status, _, body) = raw(server, &http("GET", "/user/group/nested", &app, None));
        assert_eq!(status, 400);
        assert!(body.contains("ILLEGAL_ARGUMENT"), "{body}");

        // SSO: create (201), validate, read, end.
        let (status, head, body) = raw(server, &http("POST", "/session?validate-password=true", &app, Some(
            r#"{"username":"alice","password":"alice-pw","validation-factors":{"validationFactors":[{"name":"remote_address","value":"127.0.0.1"}]}}"#)));
        assert_eq!(status, 201, "{body}");
        assert!(head.contains("location: "), "{head}");
        let session: serde_json::Value = serde_json::from_str(&body).unwrap();
        let token = session["token"].as_str().unwrap().to_owned();
        assert_eq!(session["user"]["name"], "alice");
        assert!(session["created-date"].is_u64() && session["expiry-date"].is_u64());
        let factors = r#"{"validationFactors":[{"name":"remote_address","value":"127.0.0.1"}]}"#;
        let (status, _, _) = raw(server, &http("POST", &format!("/session/{token}"), &app, Some(factors)));
        assert_eq!(status, 200);
        let (status, _, body) = raw(server, &http("GET", &format!("/session/{token}?expand=user"), &app, None));
        assert_eq!(status, 200);
        assert!(body.contains("\"display-name\":\"Alice Liddell\""), "{body}");
        let (status, _, _) = raw(server, &http("DELETE", &format!("/session/{token}"), &app, None));
        assert_eq!(status, 204);
        let (status, _, body) = raw(server, &http("GET", &format!("/session/{token}"), &app, None));
        assert_eq!(status, 404);
        assert!(body.contains("INVALID_SSO_TOKEN"), "{body}");
        let (status, _, body) = raw(server, &http("POST", "/session", &app, Some(r#"{"username":"alice","password":"nope"}"#)));
        assert_eq!(status, 400);
        assert!(body.contains("INVALID_USER_AUTHENTICATION"), "{body}");

        // The address switch.
        server.refuse_application_address(true);
        let (status, _, body) = raw(server, &http("GET", "/user?username=alice", &app, None));
        assert_eq!(status, 403);
        assert!(body.contains(ADDRESS_REFUSED), "{body}");
    })
    .await
    .unwrap();
}

// ---- listing the directory's groups ----

/// Every group of [`populated`], in the order Crowd answers (by name).
const ALL_GROUPS: [&str; 7] = [
    "dev",
    "engineering",
    "finance",
    "oncall",
    "ops",
    "readers",
    "staff",
];

fn search_requests(server: &CrowdServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.method == "GET" && r.path == "/search")
        .map(|r| r.query.unwrap_or_default())
        .collect()
}

fn group_search(start: usize, page: usize) -> String {
    format!("entity-type=group&start-index={start}&max-results={page}&expand=group")
}

#[tokio::test]
async fn listing_groups_pages_through_crowds_search_and_leaves_inactive_groups_out() {
    let server = populated().await;
    assert_eq!(server.group_names(), ALL_GROUPS);
    let crowd = directory(&server);

    // Seven groups, two a page: three full pages and a short one.
    server.reset_requests();
    assert_eq!(guarded(crowd.list_groups(1000)).await.unwrap(), ALL_GROUPS);
    assert_eq!(
        search_requests(&server),
        [0, 2, 4, 6].map(|i| group_search(i, 2))
    );
    assert_eq!(server.request_count(), 4, "nothing but the search");

    // An inactive group is left out; paging still counts it (Crowd sent it).
    server.set_group_active("oncall", false);
    server.reset_requests();
    assert_eq!(
        guarded(crowd.list_groups(1000)).await.unwrap(),
        ["dev", "engineering", "finance", "ops", "readers", "staff"]
    );
    assert_eq!(search_requests(&server).len(), 4);

    // Names as Crowd spells them, sorted ignoring case, whatever needs encoding.
    server.add_group("AWS-Admins");
    server.add_group("Zeta & co/ü");
    let listed = guarded(crowd.list_groups(1000)).await.unwrap();
    assert_eq!(
        listed,
        [
            "AWS-Admins",
            "dev",
            "engineering",
            "finance",
            "ops",
            "readers",
            "staff",
            "Zeta & co/ü"
        ]
    );

    // A limit stops the paging: the first three Crowd answers (aws-admins, dev, engineering), two pages.
    server.reset_requests();
    assert_eq!(
        guarded(crowd.list_groups(3)).await.unwrap(),
        ["AWS-Admins", "dev", "engineering"]
    );
    assert_eq!(
        search_requests(&server),
        [group_search(0, 2), group_search(2, 2)]
    );
    server.reset_requests();
    assert!(guarded(crowd.list_groups(0)).await.unwrap().is_empty());
    assert_eq!(server.request_count(), 0);

    // A page size that divides the count (nine groups, three a page): the last page comes back empty.
    let mut three = config(&server.base_url(), APPLICATION_PASSWORD);
    three.page_size = 3;
    let crowd = CrowdDirectory::new(three).unwrap();
    server.reset_requests();
    assert_eq!(guarded(crowd.list_groups(1000)).await.unwrap(), listed);
    assert_eq!(
        search_requests(&server),
        [0, 3, 6, 9].map(|i| group_search(i, 3))
    );
}

#[tokio::test]
async fn listing_more_groups_than_one_default_page() {
    let server = CrowdServer::start().await;
    let names: Vec<String> = (0..450).map(|i| format!("team-{i:04}")).collect();
    for name in &names {
        server.add_group(name);
    }
    // The default configuration: 200 a page.
    let crowd = CrowdDirectory::new(CrowdConfig::new(
        server.base_url(),
        APPLICATION_NAME,
        Secret::new(APPLICATION_PASSWORD),
    ))
    .unwrap();
    assert_eq!(guarded(crowd.list_groups(10_000)).await.unwrap(), names);
    assert_eq!(
        search_requests(&server),
        [0, 200, 400].map(|i| group_search(i, 200))
    );
    server.reset_requests();
    assert_eq!(guarded(crowd.list_groups(201)).await.unwrap(), names[..201]);
    assert_eq!(search_requests(&server).len(), 2);
}

#[tokio::test]
async fn listing_groups_fails_closed_when_crowd_cannot_be_used() {
    let server = populated().await;
    let unavailable = |outcome: Result<Vec<String>, AuthError>| {
        let e = outcome.unwrap_err();
        assert!(matches!(e, AuthError::Unavailable(_)), "{e:?}");
        assert!(!format!("{e:?} {e}").contains("not-the-application-password"));
    };

    let wrong =
        CrowdDirectory::new(config(&server.base_url(), "not-the-application-password")).unwrap();
    unavailable(guarded(wrong.list_groups(100)).await);

    let crowd = directory(&server);
    server.refuse_application_address(true);
    unavailable(guarded(crowd.list_groups(100)).await);
    server.refuse_application_address(false);

    let mut quick = config(&server.base_url(), APPLICATION_PASSWORD);
    quick.timeout = Duration::from_millis(500);
    let quick = CrowdDirectory::new(quick).unwrap();
    server.set_hanging(true);
    unavailable(guarded(quick.list_groups(100)).await);
    server.set_hanging(false);

    server.go_down().await;
    unavailable(guarded(crowd.list_groups(100)).await);
    server.come_back().await.unwrap();
    assert_eq!(guarded(crowd.list_groups(100)).await.unwrap(), ALL_GROUPS);
}

#[tokio::test]
async fn the_test_server_searches_as_crowd_does() {
    let server = populated().await;
    server.set_group_active("oncall", false);
    let app = basic(APPLICATION_NAME, APPLICATION_PASSWORD);
    let server = std::sync::Arc::new(server);
    let s = server.clone();
    tokio::task::spawn_blocking(move || {
        let server = &*s;
        let get = |target: &str| {
            let (status, head, body) = raw(server, &http("GET", target, &app, None));
            let json = serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default();
            (status, head, body, json)
        };
        let names = |json: &serde_json::Value, list: &str| -> Vec<String> {
            json[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| g["name"].as_str().unwrap().to_owned())
                .collect()
        };

        // The application must authenticate, as everywhere.
        let (status, _, body) = raw(
            server,
            &http(
                "GET",
                "/search?entity-type=group",
                &basic(APPLICATION_NAME, "x"),
                None,
            ),
        );
        assert_eq!((status, body.as_str()), (401, APPLICATION_AUTH_FAILED));

        // References by default (link and name), paged, sorted by name.
        let (status, head, body, page) =
            get("/search?entity-type=group&start-index=1&max-results=3");
        assert_eq!(status, 200, "{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert_eq!(page["expand"], "group");
        assert_eq!(names(&page, "groups"), ALL_GROUPS[1..4]);
        let first = page["groups"][0].as_object().unwrap();
        assert_eq!(
            first.keys().map(String::as_str).collect::<Vec<_>>(),
            ["link", "name"]
        );
        assert_eq!(first["link"]["rel"], "self");
        assert!(
            first["link"]["href"]
                .as_str()
                .unwrap()
                .ends_with("/rest/usermanagement/1/group?groupname=engineering"),
            "{body}"
        );

        // Full entities with expand=group, saying which groups are active; without paging, all of them
        // (Crowd's default page is larger than this directory).
        let (status, _, body, all) = get("/search?entity-type=GROUP&expand=group");
        assert_eq!(status, 200, "{body}");
        assert_eq!(names(&all, "groups"), ALL_GROUPS);
        let oncall = &all["groups"][3];
        assert_eq!(oncall["name"], "oncall");
        assert_eq!(oncall["active"], false);
        assert_eq!(oncall["type"], "GROUP");
        assert_eq!(all["groups"][0]["active"], true);
        assert!(all["groups"][0]["description"].is_string());

        // The one CQL restriction understood: active.
        let (_, _, _, active) = get("/search?entity-type=group&restriction=active%3Dtrue");
        assert_eq!(names(&active, "groups").len(), 6);
        let (_, _, _, inactive) = get("/search?entity-type=group&restriction=active%20%3D%20false");
        assert_eq!(names(&inactive, "groups"), ["oncall"]);
        let (status, _, body, _) = get("/search?entity-type=group&restriction=name%3D%22dev%2A%22");
        assert_eq!(status, 400);
        assert!(body.contains("ILLEGAL_ARGUMENT"), "{body}");

        // Past the end: an empty page. Users too.
        let (status, _, _, past) = get("/search?entity-type=group&start-index=7&max-results=2");
        assert_eq!(status, 200);
        assert_eq!(names(&past, "groups"), Vec::<String>::new());
        let (status, _, _, users) = get("/search?entity-type=user&max-results=2");
        assert_eq!(status, 200);
        assert_eq!(users["expand"], "user");
        assert_eq!(names(&users, "users"), ["alice", "bob"]);
        let (_, _, _, users) =
            get("/search?entity-type=user&expand=user&restriction=active%3Dfalse");
        assert_eq!(names(&users, "users"), ["bob"]);
        assert_eq!(users["users"][0]["active"], false);

        // What Crowd refuses.
        for target in [
            "/search",
            "/search?entity-type=role",
            "/search?entity-type=group&max-results=x",
            "/search?entity-type=group&start-index=-1",
        ] {
            let (status, _, body, error) = get(target);
            assert_eq!(status, 400, "{target}: {body}");
            assert_eq!(error["reason"], "ILLEGAL_ARGUMENT", "{target}: {body}");
        }
    })
    .await
    .unwrap();
}
