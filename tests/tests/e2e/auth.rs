//! People, end to end: idfed's authenticator over the Crowd directory client, against the Crowd REST test
//! server — nested groups deciding which connectors a session may use, a group removal taking effect once
//! the group cache expires, lockout and its end, and Crowd failing closed.

use std::sync::Arc;
use std::time::Duration;

use idfed::auth::AuthError;
use idfed::auth::authenticator::{AuthConfig, Authenticator, ManualClock};
use idfed::auth::crowd::{CrowdConfig, CrowdDirectory};
use idfed::model::{Caller, Connector, Identity, Principal};
use idfed::secret::Secret;
use idfed::vend::Vendor;
use idfed_tests::crowd::{APPLICATION_NAME, APPLICATION_PASSWORD, CrowdServer, TestUser};

struct Setup {
    crowd: CrowdServer,
    clock: Arc<ManualClock>,
    auth: Authenticator,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let crowd = CrowdServer::start().await;
    crowd.add_user(TestUser::new("alice", "correct horse"));
    crowd.add_user(TestUser::new("root", "root password"));
    for group in ["team-blue", "developers", "aws-users", "idfed-admins"] {
        crowd.add_group(group);
    }
    // alice → team-blue → developers → aws-users: aws-users only through two levels of nesting.
    crowd.add_user_to_group("alice", "team-blue");
    crowd.add_group_to_group("team-blue", "developers");
    crowd.add_group_to_group("developers", "aws-users");
    crowd.add_user_to_group("root", "idfed-admins");
    let directory = CrowdDirectory::new(CrowdConfig::new(
        crowd.base_url(),
        APPLICATION_NAME,
        Secret::new(APPLICATION_PASSWORD),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = idfed::store::Db::Sled(sled::open(dir.path().join("db")).unwrap());
    let clock = Arc::new(ManualClock::new());
    let config = AuthConfig {
        admin_groups: vec!["idfed-admins".into()],
        group_cache_ttl: Duration::from_secs(300),
        ..AuthConfig::default()
    };
    let auth = Authenticator::with_clock(Arc::new(directory), &db, config, clock.clone()).unwrap();
    Setup {
        crowd,
        clock,
        auth,
        _dir: dir,
    }
}

fn connector_for(group: &str) -> Connector {
    Connector {
        id: uuid::Uuid::new_v4(),
        name: "prod".into(),
        description: String::new(),
        account: "main".into(),
        principal: Principal::IamUser,
        policy: None,
        policy_arns: vec![],
        default_duration_seconds: None,
        max_duration_seconds: None,
        groups: vec![group.into()],
        system_scope: false,
        enabled: true,
        credential_cache: false,
        bindings: vec![],
    }
}

fn caller(identity: Identity) -> Caller {
    Caller {
        identity,
        source_ip: Some("127.0.0.1".into()),
        user_agent: None,
    }
}

#[tokio::test]
async fn nested_groups_decide_access_and_a_removal_takes_effect_when_the_group_cache_expires() {
    let s = setup().await;
    let (token, identity) = s
        .auth
        .login("alice", &Secret::new("correct horse"), Some("127.0.0.1"))
        .await
        .unwrap();
    let Identity::User {
        groups, is_admin, ..
    } = &identity
    else {
        panic!("{identity:?}")
    };
    assert!(groups.iter().any(|g| g == "aws-users"), "{groups:?}");
    assert!(!is_admin);
    let prod = connector_for("aws-users");
    assert!(Vendor::may_use(&caller(identity), &prod));

    s.crowd.remove_user_from_group("alice", "team-blue");
    let cached = s.auth.session(&token).await.unwrap();
    assert!(
        Vendor::may_use(&caller(cached), &prod),
        "within the group cache's TTL the old groups hold"
    );
    s.clock.advance(Duration::from_secs(301));
    let rechecked = s.auth.session(&token).await.unwrap();
    assert!(
        !Vendor::may_use(&caller(rechecked), &prod),
        "the removal took effect once the cache expired"
    );

    let (_, root) = s
        .auth
        .login("root", &Secret::new("root password"), None)
        .await
        .unwrap();
    assert!(
        matches!(root, Identity::User { is_admin: true, .. }),
        "admin through the configured group"
    );
    s.auth.logout(&token).unwrap();
    assert_eq!(
        s.auth.session(&token).await.unwrap_err(),
        AuthError::InvalidSession
    );
}

#[tokio::test]
async fn repeated_failures_lock_out_then_the_lockout_ends() {
    let s = setup().await;
    let wrong = Secret::new("wrong password");
    let mut answers = Vec::new();
    for _ in 0..5 {
        answers.push(
            s.auth
                .login("alice", &wrong, Some("127.0.0.1"))
                .await
                .unwrap_err(),
        );
    }
    assert!(
        answers.iter().all(|a| *a == AuthError::InvalidCredentials
            || matches!(a, AuthError::TooManyAttempts { .. }))
    );
    let before = s.crowd.request_count();
    let locked = s
        .auth
        .login("alice", &Secret::new("correct horse"), Some("127.0.0.1"))
        .await
        .unwrap_err();
    let AuthError::TooManyAttempts { retry_after } = locked else {
        panic!("{locked:?}")
    };
    assert!(retry_after > Duration::ZERO);
    assert_eq!(
        s.crowd.request_count(),
        before,
        "a locked-out attempt never reaches Crowd"
    );
    // An unknown user is locked out the same way, with the same answers.
    for _ in 0..5 {
        let _ = s.auth.login("nobody", &wrong, Some("127.0.0.2")).await;
    }
    assert!(matches!(
        s.auth.login("nobody", &wrong, Some("127.0.0.2")).await,
        Err(AuthError::TooManyAttempts { .. })
    ));

    s.clock.advance(retry_after + Duration::from_secs(1));
    s.auth
        .login("alice", &Secret::new("correct horse"), Some("127.0.0.1"))
        .await
        .expect("the lockout ended");
}

#[tokio::test]
async fn crowd_down_or_refusing_idfed_means_unavailable_never_an_allow_and_no_lockout() {
    let s = setup().await;
    s.crowd.go_down().await;
    for _ in 0..8 {
        let err = s
            .auth
            .login("alice", &Secret::new("correct horse"), None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "directory_unavailable", "{err:?}");
    }
    s.crowd.come_back().await.unwrap();
    s.auth
        .login("alice", &Secret::new("correct horse"), None)
        .await
        .expect("outages are not failed attempts");
}
