//! The STS stand-in (`idfed_tests::sts_standin`): called by idfed's own STS client (`AwsIssuer`, which is
//! aws-sdk-sts) and over plain HTTP, in process and as the `sts-standin` binary.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use idfed::model::{AccountCredentials, SessionTag};
use idfed::secret::Secret;
use idfed::sts::{
    AccountAccess, AwsIssuer, CredentialIssuer, IssueKind, IssueRequest, IssuedCredentials,
    IssuerSettings, StsError,
};
use idfed_tests::S3_READ_POLICY;
use idfed_tests::sts_standin::{
    ACTIONS, IAM_USER_ARN, OTHER, StandInOptions, StsStandIn, spawn_process,
};

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/dev";
const XMLNS: &str = r#"xmlns="https://sts.amazonaws.com/doc/2011-06-15/""#;

fn access(endpoint: &str) -> AccountAccess {
    AccountAccess {
        account_name: "main".into(),
        credentials: AccountCredentials::Static {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        },
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.to_owned()),
    }
}

fn issuer(max_attempts: u32) -> AwsIssuer {
    AwsIssuer::new(IssuerSettings {
        connect_timeout: Duration::from_secs(2),
        operation_timeout: Duration::from_secs(20),
        max_attempts,
        ..IssuerSettings::default()
    })
}

fn assume_role(session_name: &str) -> IssueKind {
    IssueKind::AssumeRole {
        role_arn: ROLE_ARN.into(),
        session_name: session_name.into(),
        external_id: Some("ext-123".into()),
        policy: Some(S3_READ_POLICY.into()),
        policy_arns: vec![],
        tags: vec![SessionTag {
            key: "team".into(),
            value: "data".into(),
        }],
        source_identity: Some(session_name.into()),
    }
}

fn federation(name: &str) -> IssueKind {
    IssueKind::FederationToken {
        name: name.into(),
        policy: Some(S3_READ_POLICY.into()),
        policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
        tags: vec![],
    }
}

async fn issue(
    issuer: &AwsIssuer,
    endpoint: &str,
    kind: IssueKind,
    duration_seconds: u32,
) -> Result<IssuedCredentials, StsError> {
    let request = IssueRequest {
        access: access(endpoint),
        kind,
        duration_seconds,
        requester: None,
    };
    tokio::time::timeout(Duration::from_secs(60), issuer.issue(&request))
        .await
        .expect("the issuer hangs")
}

/// Asserts `expiration` is `seconds` after some moment in `before..=after` (STS gives whole seconds).
fn assert_expires_in(expiration: SystemTime, before: SystemTime, after: SystemTime, seconds: u64) {
    let duration = Duration::from_secs(seconds);
    let earliest = before + duration - Duration::from_secs(1);
    let latest = after + duration + Duration::from_secs(1);
    assert!(
        earliest <= expiration && expiration <= latest,
        "expiration {} is not {seconds} s from now",
        humantime::format_rfc3339(expiration)
    );
}

fn assert_plausible_keys(credentials: &IssuedCredentials) {
    let id = &credentials.access_key_id;
    assert!(id.starts_with("ASIA") && id.len() == 20, "{id}");
    assert!(
        id.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{id}"
    );
    assert_eq!(credentials.secret_access_key.expose().len(), 40);
    assert!(!credentials.session_token.expose().is_empty());
}

/// A raw STS call: the status, the content type and the body.
async fn post(endpoint: &str, body: impl Into<reqwest::Body>) -> (u16, String, String) {
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

/// The text of the first `<name>` element of `xml`.
fn element<'x>(xml: &'x str, name: &str) -> Option<&'x str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

fn expiration_of(xml: &str) -> SystemTime {
    humantime::parse_rfc3339(element(xml, "Expiration").expect("an Expiration")).unwrap()
}

/// Asserts an STS error answer: HTTP `status`, `text/xml`, `ErrorResponse` with `code`.
fn assert_error(answer: &(u16, String, String), status: u16, code: &str) {
    let (got, content_type, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(content_type, "text/xml");
    assert!(body.contains(&format!("<ErrorResponse {XMLNS}>")), "{body}");
    assert_eq!(element(body, "Code"), Some(code), "{body}");
    assert_eq!(element(body, "Type"), Some("Sender"), "{body}");
    assert!(element(body, "RequestId").is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn issues_every_kind_through_idfeds_client_with_its_duration() {
    let standin = StsStandIn::start(StandInOptions::default()).await;
    let endpoint = standin.endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    let issuer = issuer(1);

    let before = SystemTime::now();
    let role = issue(&issuer, &endpoint, assume_role("alice"), 1800)
        .await
        .unwrap();
    assert_expires_in(role.expiration, before, SystemTime::now(), 1800);
    assert_plausible_keys(&role);
    assert_eq!(
        role.principal_arn.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/dev/alice")
    );
    let packed = role.packed_policy_size.expect("a PackedPolicySize");
    assert!((1..=100).contains(&packed), "{packed}");

    let before = SystemTime::now();
    let federated = issue(&issuer, &endpoint, federation("alice"), 7200)
        .await
        .unwrap();
    assert_expires_in(federated.expiration, before, SystemTime::now(), 7200);
    assert_plausible_keys(&federated);
    assert_eq!(
        federated.principal_arn.as_deref(),
        Some("arn:aws:sts::123456789012:federated-user/alice")
    );
    assert!(federated.packed_policy_size.is_some());

    let before = SystemTime::now();
    let session = issue(&issuer, &endpoint, IssueKind::SessionToken, 3600)
        .await
        .unwrap();
    assert_expires_in(session.expiration, before, SystemTime::now(), 3600);
    assert_plausible_keys(&session);
    assert_eq!(session.principal_arn, None);

    let again = issue(&issuer, &endpoint, assume_role("alice"), 900)
        .await
        .unwrap();
    let ids: HashSet<&str> = [&role, &federated, &session, &again]
        .iter()
        .map(|c| c.access_key_id.as_str())
        .collect();
    assert_eq!(ids.len(), 4, "every credential set is new: {ids:?}");
    let secrets: HashSet<&str> = [&role, &federated, &session, &again]
        .iter()
        .map(|c| c.secret_access_key.expose())
        .collect();
    assert_eq!(secrets.len(), 4);

    assert_eq!(standin.calls("AssumeRole"), 2);
    assert_eq!(standin.calls("GetFederationToken"), 1);
    assert_eq!(standin.calls("GetSessionToken"), 1);
    assert_eq!(standin.calls("GetCallerIdentity"), 0);
    assert_eq!(standin.calls(OTHER), 0);
    assert_eq!(standin.calls("NoSuchAction"), 0);
    assert_eq!(standin.total_calls(), 4);

    // What aws-sdk-sts sent, as the stand-in read it.
    let params = standin.last_params("AssumeRole").unwrap();
    assert_eq!(params["Version"], "2011-06-15");
    assert_eq!(params["RoleArn"], ROLE_ARN);
    assert_eq!(params["RoleSessionName"], "alice");
    assert_eq!(params["DurationSeconds"], "900");
    assert_eq!(params["ExternalId"], "ext-123");
    assert_eq!(params["SourceIdentity"], "alice");
    assert_eq!(params["Tags.member.1.Key"], "team");
    assert_eq!(params["Tags.member.1.Value"], "data");
    assert_eq!(params["Policy"], S3_READ_POLICY);
    let params = standin.last_params("GetFederationToken").unwrap();
    assert_eq!(
        params["PolicyArns.member.1.arn"],
        "arn:aws:iam::aws:policy/ReadOnlyAccess"
    );

    // GetCallerIdentity with vended credentials names their principal.
    let identity = issuer
        .caller_identity(&access(&endpoint), &role)
        .await
        .unwrap();
    assert_eq!(
        identity.arn,
        "arn:aws:sts::123456789012:assumed-role/dev/alice"
    );
    assert_eq!(identity.account, "123456789012");
    assert!(
        identity.user_id.starts_with("AROA") && identity.user_id.ends_with(":alice"),
        "{}",
        identity.user_id
    );
    let identity = issuer
        .caller_identity(&access(&endpoint), &federated)
        .await
        .unwrap();
    assert_eq!(
        identity.arn,
        "arn:aws:sts::123456789012:federated-user/alice"
    );
    assert_eq!(identity.user_id, "123456789012:alice");
    let identity = issuer
        .caller_identity(&access(&endpoint), &session)
        .await
        .unwrap();
    assert_eq!(identity.arn, IAM_USER_ARN);
    assert!(identity.user_id.starts_with("AIDA"), "{}", identity.user_id);
    assert_eq!(standin.calls("GetCallerIdentity"), 3);
    assert_eq!(standin.total_calls(), 7);
}

#[tokio::test]
async fn answers_awss_xml_with_awss_default_durations() {
    let standin = StsStandIn::start(StandInOptions::default()).await;
    let endpoint = standin.endpoint();

    let before = SystemTime::now();
    let answer = post(
        &endpoint,
        "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fteam%2Fdev\
         &RoleSessionName=bob%40example.com",
    )
    .await;
    let (status, content_type, body) = &answer;
    assert_eq!(*status, 200, "{body}");
    assert_eq!(content_type, "text/xml");
    assert!(
        body.starts_with(&format!("<AssumeRoleResponse {XMLNS}>")),
        "{body}"
    );
    for part in [
        "<AssumeRoleResult>",
        "<Credentials>",
        "<AssumedRoleUser>",
        "</AssumeRoleResult>",
        "<ResponseMetadata>",
    ] {
        assert!(body.contains(part), "{part} in {body}");
    }
    assert_eq!(
        element(body, "Arn"),
        Some("arn:aws:sts::123456789012:assumed-role/dev/bob@example.com")
    );
    assert!(
        element(body, "AssumedRoleId").is_some_and(|id| id.ends_with(":bob@example.com")),
        "{body}"
    );
    assert_eq!(
        element(body, "PackedPolicySize"),
        None,
        "no session policy, no size"
    );
    let expiration = element(body, "Expiration").unwrap();
    assert!(expiration.ends_with('Z'), "{expiration}");
    assert_expires_in(expiration_of(body), before, SystemTime::now(), 3600);

    let before = SystemTime::now();
    let (status, _, body) = post(
        &endpoint,
        "Action=GetFederationToken&Version=2011-06-15&Name=carol",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(&format!("<GetFederationTokenResponse {XMLNS}>")));
    assert_eq!(
        element(&body, "FederatedUserId"),
        Some("123456789012:carol")
    );
    assert_expires_in(expiration_of(&body), before, SystemTime::now(), 43200);

    let before = SystemTime::now();
    let (status, _, body) = post(&endpoint, "Action=GetSessionToken&Version=2011-06-15").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with(&format!("<GetSessionTokenResponse {XMLNS}>")));
    assert!(body.contains("<GetSessionTokenResult>\n    <Credentials>"));
    assert_expires_in(expiration_of(&body), before, SystemTime::now(), 43200);

    // The Query API's GET form too.
    let response = reqwest::get(format!(
        "{endpoint}/?Action=GetCallerIdentity&Version=2011-06-15"
    ))
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.starts_with(&format!("<GetCallerIdentityResponse {XMLNS}>")));
    assert_eq!(element(&body, "Arn"), Some(IAM_USER_ARN));
    assert_eq!(element(&body, "Account"), Some("123456789012"));

    // A session token the stand-in did not make.
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header("x-amz-security-token", "not-a-token-of-ours")
        .body("Action=GetCallerIdentity&Version=2011-06-15")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body = response.text().await.unwrap();
    assert_eq!(element(&body, "Code"), Some("InvalidClientTokenId"));
    assert_eq!(standin.total_calls(), 5);
}

#[tokio::test]
async fn bad_input_gets_error_xml_and_never_breaks_the_server() {
    let standin = StsStandIn::start(StandInOptions::default()).await;
    let endpoint = standin.endpoint();
    let role = "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdev";
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "Action=DeleteEverything&Version=2011-06-15".into(),
            400,
            "InvalidAction",
        ),
        ("Version=2011-06-15".into(), 400, "MissingAction"),
        (
            "Action=GetSessionToken&Version=2010-01-01".into(),
            400,
            "InvalidAction",
        ),
        ("%%%&&&==".into(), 400, "MissingAction"),
        (format!("Action=AssumeRole&{role}"), 400, "ValidationError"),
        (
            "Action=AssumeRole&RoleSessionName=x1".into(),
            400,
            "ValidationError",
        ),
        (
            format!("Action=AssumeRole&{role}&RoleSessionName=a"),
            400,
            "ValidationError",
        ),
        (
            format!("Action=AssumeRole&{role}&RoleSessionName=a%20b"),
            400,
            "ValidationError",
        ),
        (
            "Action=AssumeRole&RoleArn=arn%3Aaws%3As3%3A%3A%3Abucket&RoleSessionName=ab".into(),
            400,
            "ValidationError",
        ),
        (
            format!("Action=AssumeRole&{role}&RoleSessionName=ab&DurationSeconds=abc"),
            400,
            "ValidationError",
        ),
        (
            format!("Action=AssumeRole&{role}&RoleSessionName=ab&DurationSeconds=899"),
            400,
            "ValidationError",
        ),
        (
            format!("Action=AssumeRole&{role}&RoleSessionName=ab&DurationSeconds=43201"),
            400,
            "ValidationError",
        ),
        (
            format!("Action=AssumeRole&{role}&RoleSessionName=ab&Policy=not-json"),
            400,
            "MalformedPolicyDocument",
        ),
        (
            format!(
                "Action=AssumeRole&{role}&RoleSessionName=ab&{}",
                (1..=50)
                    .map(|i| format!(
                        "Tags.member.{i}.Key=k{i}&Tags.member.{i}.Value={}",
                        "v".repeat(250)
                    ))
                    .collect::<Vec<_>>()
                    .join("&")
            ),
            400,
            "PackedPolicyTooLarge",
        ),
        ("Action=GetFederationToken".into(), 400, "ValidationError"),
        (
            "Action=GetFederationToken&Name=far-too-long-for-a-federated-user-name".into(),
            400,
            "ValidationError",
        ),
        (
            "Action=GetSessionToken&DurationSeconds=129601".into(),
            400,
            "ValidationError",
        ),
    ];
    for (body, status, code) in &cases {
        let answer = post(&endpoint, body.clone()).await;
        assert_error(&answer, *status, code);
    }
    let not_utf8 = post(&endpoint, vec![b'A', 0xff, 0xfe, b'=', 0x80]).await;
    assert_error(&not_utf8, 400, "MalformedQueryString");
    // Unknown, missing and unreadable actions count as `other`.
    assert_eq!(standin.calls(OTHER), 4);
    assert_eq!(standin.total_calls(), cases.len() as u64 + 1);
    // Still serving.
    let (status, _, _) = post(&endpoint, "Action=GetSessionToken&Version=2011-06-15").await;
    assert_eq!(status, 200);
    let response = reqwest::Client::new()
        .post(format!("{endpoint}/_standin/throttle?on=maybe"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn throttles_when_told_and_counts_and_resets_over_http_and_in_process() {
    let standin = StsStandIn::start(StandInOptions {
        throttle: true,
        ..StandInOptions::default()
    })
    .await;
    let endpoint = standin.endpoint();
    assert!(standin.throttled());
    let issuer = issuer(2);
    let err = issue(&issuer, &endpoint, assume_role("alice"), 3600)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sts_throttled", "{err}");
    assert_eq!(
        standin.calls("AssumeRole"),
        2,
        "the SDK retried a throttled call once"
    );
    let answer = post(&endpoint, "Action=GetSessionToken&Version=2011-06-15").await;
    assert_error(&answer, 400, "Throttling");
    assert_eq!(element(&answer.2, "Message"), Some("Rate exceeded"));

    let http = reqwest::Client::new();
    let off: serde_json::Value = http
        .post(format!("{endpoint}/_standin/throttle?on=false"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(off, serde_json::json!({"throttle": false}));
    assert!(!standin.throttled());
    issue(&issuer, &endpoint, federation("alice"), 3600)
        .await
        .unwrap();

    let counts: serde_json::Value = http
        .get(format!("{endpoint}/_standin/calls"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        counts,
        serde_json::json!({
            "AssumeRole": 2, "GetFederationToken": 1, "GetSessionToken": 1, "GetCallerIdentity": 0,
            "other": 0, "total": 4
        })
    );
    let after_reset: serde_json::Value = http
        .post(format!("{endpoint}/_standin/reset"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after_reset["total"], 0);
    assert_eq!(standin.total_calls(), 0);
    assert!(standin.last_params("AssumeRole").is_none());

    standin.set_throttle(true);
    let err = issue(&issuer, &endpoint, IssueKind::SessionToken, 3600)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sts_throttled");
    standin.set_throttle(false);
    issue(&issuer, &endpoint, IssueKind::SessionToken, 3600)
        .await
        .unwrap();
    assert_eq!(standin.calls("GetSessionToken"), 3);
    standin.reset();
    for action in ACTIONS {
        assert_eq!(standin.calls(action), 0);
    }
    assert_eq!(standin.total_calls(), 0);
}

#[tokio::test]
async fn delay_holds_every_answer_back_without_serialising_calls() {
    let delay = Duration::from_millis(300);
    let standin = StsStandIn::start(StandInOptions {
        delay,
        ..StandInOptions::default()
    })
    .await;
    let endpoint = standin.endpoint();
    let issuer = issuer(1);
    let started = Instant::now();
    issue(&issuer, &endpoint, IssueKind::SessionToken, 3600)
        .await
        .unwrap();
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());

    // Ten at once take about one delay, not ten.
    let issuer = std::sync::Arc::new(issuer);
    let started = Instant::now();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (issuer, endpoint) = (issuer.clone(), endpoint.clone());
        calls.spawn(async move {
            issue(&issuer, &endpoint, assume_role(&format!("user{i}")), 3600).await
        });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    let elapsed = started.elapsed();
    // Ten calls in series would take ten delays.
    assert!(elapsed >= delay && elapsed < delay * 9, "{elapsed:?}");
    assert_eq!(standin.calls("AssumeRole"), 10);

    standin.set_delay(Duration::ZERO);
    assert_eq!(standin.delay(), Duration::ZERO);
    let started = Instant::now();
    issue(&issuer, &endpoint, IssueKind::SessionToken, 3600)
        .await
        .unwrap();
    assert!(started.elapsed() < delay * 10);
}

/// Waits until nothing accepts connections at `address`.
async fn assert_closes(address: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "{address} still accepts connections"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn stops_when_dropped() {
    let standin = StsStandIn::start(StandInOptions::default()).await;
    let address = standin.address();
    let (status, _, _) = post(
        &standin.endpoint(),
        "Action=GetSessionToken&Version=2011-06-15",
    )
    .await;
    assert_eq!(status, 200);
    drop(standin);
    assert_closes(address).await;
}

#[tokio::test]
async fn the_binary_serves_in_a_process_of_its_own() {
    let binary = Path::new(env!("CARGO_BIN_EXE_sts-standin"));
    let process = spawn_process(
        binary,
        &StandInOptions {
            delay: Duration::from_millis(5),
            ..StandInOptions::default()
        },
    );
    let endpoint = process.endpoint();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
    assert_eq!(process.total_calls(), 0);
    let issuer = issuer(1);
    let credentials = issue(&issuer, &endpoint, assume_role("alice"), 3600)
        .await
        .unwrap();
    assert_plausible_keys(&credentials);
    issue(&issuer, &endpoint, IssueKind::SessionToken, 3600)
        .await
        .unwrap();
    assert_eq!(process.total_calls(), 2);
    assert_eq!(process.calls("AssumeRole"), 1);
    assert_eq!(process.calls("GetSessionToken"), 1);

    process.set_throttle(true);
    let err = issue(&issuer, &endpoint, IssueKind::SessionToken, 3600)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sts_throttled");
    process.set_throttle(false);
    process.set_delay(Duration::ZERO);
    process.reset();
    assert_eq!(process.total_calls(), 0);

    let address = process.address();
    drop(process);
    assert_closes(address).await;
}

#[test]
fn the_binary_refuses_bad_arguments() {
    let binary = Path::new(env!("CARGO_BIN_EXE_sts-standin"));
    let output = std::process::Command::new(binary)
        .args(["--delay-ms", "soon"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--delay-ms"));
    assert!(output.stdout.is_empty());
}
