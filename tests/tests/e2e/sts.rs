//! `AwsIssuer` against moto (the shared server of this test binary) and against small loopback stand-ins that
//! count connections, never answer, or answer with canned STS errors.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use idfed::model::{AccountCredentials, SessionTag};
use idfed::secret::Secret;
use idfed::sts::{
    AccountAccess, AwsIssuer, CredentialIssuer, IssueKind, IssueRequest, IssuerSettings, StsError,
    StsErrorKind,
};
use idfed_tests::{S3_READ_POLICY, moto};

const ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/dev";
/// However slow the machine, no call here should take this long: past it, the issuer hangs.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn access(endpoint: String) -> AccountAccess {
    AccountAccess {
        account_name: "main".into(),
        credentials: AccountCredentials::Static {
            access_key_id: ACCESS_KEY_ID.into(),
            secret_access_key: Secret::new(SECRET_KEY),
        },
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint),
    }
}

fn issuer(max_attempts: u32, operation_timeout: Duration) -> AwsIssuer {
    AwsIssuer::new(IssuerSettings {
        connect_timeout: Duration::from_secs(2),
        operation_timeout,
        max_attempts,
        ..IssuerSettings::default()
    })
}

fn federation(name: &str) -> IssueKind {
    IssueKind::FederationToken {
        name: name.into(),
        policy: Some(S3_READ_POLICY.into()),
        policy_arns: vec!["arn:aws:iam::aws:policy/ReadOnlyAccess".into()],
        tags: vec![SessionTag {
            key: "team".into(),
            value: "data".into(),
        }],
    }
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

fn request(endpoint: String, kind: IssueKind, duration_seconds: u32) -> IssueRequest {
    IssueRequest {
        access: access(endpoint),
        kind,
        duration_seconds,
        requester: None,
    }
}

async fn issue(
    issuer: &AwsIssuer,
    request: &IssueRequest,
) -> Result<idfed::sts::IssuedCredentials, StsError> {
    tokio::time::timeout(HANG_GUARD, issuer.issue(request))
        .await
        .expect("the issuer hung")
}

fn assert_secret_free(err: &StsError) {
    let shown = format!("{err:?} {err}");
    assert!(!shown.contains(SECRET_KEY), "{shown}");
    assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
}

fn assert_fresh(credentials: &idfed::sts::IssuedCredentials) {
    assert!(!credentials.access_key_id.is_empty());
    assert!(!credentials.secret_access_key.is_empty());
    assert!(!credentials.session_token.is_empty());
    assert!(credentials.expiration > SystemTime::now());
    let shown = format!("{credentials:?}");
    assert!(
        !shown.contains(credentials.secret_access_key.expose()),
        "{shown}"
    );
    assert!(
        !shown.contains(credentials.session_token.expose()),
        "{shown}"
    );
}

// ----- against moto

#[tokio::test]
async fn federation_token_from_moto() {
    let issuer = issuer(3, Duration::from_secs(30));
    let credentials = issue(
        &issuer,
        &request(moto::shared().endpoint(), federation("alice"), 3600),
    )
    .await
    .unwrap();
    assert_fresh(&credentials);
    assert_eq!(
        credentials.principal_arn.as_deref(),
        Some("arn:aws:sts::123456789012:federated-user/alice")
    );
    assert!(credentials.packed_policy_size.is_some());
}

#[tokio::test]
async fn session_token_from_moto() {
    let issuer = issuer(3, Duration::from_secs(30));
    let credentials = issue(
        &issuer,
        &request(moto::shared().endpoint(), IssueKind::SessionToken, 900),
    )
    .await
    .unwrap();
    assert_fresh(&credentials);
    assert_eq!(credentials.principal_arn, None);
}

#[tokio::test]
async fn assume_role_from_moto_and_caller_identity() {
    let issuer = issuer(3, Duration::from_secs(30));
    let request = request(moto::shared().endpoint(), assume_role("alice"), 3600);
    let credentials = issue(&issuer, &request).await.unwrap();
    assert_fresh(&credentials);
    assert!(
        credentials.access_key_id.starts_with("ASIA"),
        "{}",
        credentials.access_key_id
    );
    let arn = credentials.principal_arn.clone().unwrap();
    assert!(
        arn.starts_with("arn:aws:sts::123456789012:assumed-role/dev/alice"),
        "{arn}"
    );

    let identity = tokio::time::timeout(
        HANG_GUARD,
        issuer.caller_identity(&request.access, &credentials),
    )
    .await
    .expect("the issuer hung")
    .unwrap();
    assert!(
        identity
            .arn
            .starts_with("arn:aws:sts::123456789012:assumed-role/"),
        "{identity:?}"
    );
    assert!(identity.arn.contains("/dev/alice"), "{identity:?}");
    assert_eq!(identity.account, "123456789012");
    assert!(!identity.user_id.is_empty());
    // Both calls went through the account's one cached client.
    assert_eq!(issuer.cached_clients(), 1);
}

#[tokio::test]
async fn mapped_names_are_accepted_by_moto() {
    use idfed::sts::validate::{federated_user_name, role_session_name, source_identity};
    let issuer = issuer(3, Duration::from_secs(30));
    let user = "Jane Doe (Platform Engineering, EMEA)";
    let credentials = issue(
        &issuer,
        &request(
            moto::shared().endpoint(),
            federation(&federated_user_name(user)),
            3600,
        ),
    )
    .await
    .unwrap();
    let arn = credentials.principal_arn.unwrap();
    assert!(arn.ends_with(&federated_user_name(user)), "{arn}");
    let mut kind = assume_role(&role_session_name(user));
    if let IssueKind::AssumeRole {
        source_identity: s, ..
    } = &mut kind
    {
        *s = Some(source_identity(user));
    }
    issue(&issuer, &request(moto::shared().endpoint(), kind, 3600))
        .await
        .unwrap();
}

// ----- validation happens before any connection

/// A loopback listener that counts the connections it accepts (and closes them at once).
struct CountingListener {
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl CountingListener {
    fn start() -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                count.fetch_add(1, Ordering::SeqCst);
                drop(stream);
            }
        });
        CountingListener { port, accepted }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn invalid_requests_never_reach_sts() {
    let listener = CountingListener::start();
    let issuer = issuer(1, Duration::from_secs(10));
    let endpoint = listener.endpoint();
    let mut eleven_arns = federation("alice");
    if let IssueKind::FederationToken { policy_arns, .. } = &mut eleven_arns {
        *policy_arns = (0..11)
            .map(|i| format!("arn:aws:iam::123456789012:policy/p{i}"))
            .collect();
    }
    let no_policy = IssueKind::FederationToken {
        name: "alice".into(),
        policy: None,
        policy_arns: vec![],
        tags: vec![],
    };
    let mut bad_role = assume_role("alice");
    if let IssueKind::AssumeRole { role_arn, .. } = &mut bad_role {
        *role_arn = "arn:aws:iam::123456789012:user/dev".into();
    }
    let mut bad_policy = assume_role("alice");
    if let IssueKind::AssumeRole { policy, .. } = &mut bad_policy {
        *policy = Some(r#"{"Statement": "nope"}"#.into());
    }
    let cases = [
        (
            request(endpoint.clone(), federation("alice"), 600),
            "duration_seconds",
        ),
        (
            request(endpoint.clone(), assume_role("alice"), 43_201),
            "duration_seconds",
        ),
        (
            request(endpoint.clone(), IssueKind::SessionToken, 200_000),
            "duration_seconds",
        ),
        (
            request(endpoint.clone(), federation("jane doe"), 3600),
            "name",
        ),
        (
            request(endpoint.clone(), federation(&"a".repeat(33)), 3600),
            "name",
        ),
        (
            request(endpoint.clone(), assume_role("a"), 3600),
            "session_name",
        ),
        (request(endpoint.clone(), eleven_arns, 3600), "policy_arns"),
        (request(endpoint.clone(), no_policy, 3600), "policy"),
        (request(endpoint.clone(), bad_role, 3600), "role_arn"),
        (request(endpoint.clone(), bad_policy, 3600), "policy"),
    ];
    for (request, field) in &cases {
        let err = issue(&issuer, request).await.unwrap_err();
        assert_eq!(err.code(), "sts_invalid_request", "{err}");
        match &err.kind {
            StsErrorKind::Invalid(v) => assert_eq!(v.field, *field, "{err}"),
            other => panic!("{other:?}"),
        }
        assert_secret_free(&err);
    }
    let mut bad_endpoint = request(endpoint.clone(), IssueKind::SessionToken, 3600);
    bad_endpoint.access.endpoint = Some(format!("ftp://127.0.0.1:{}", listener.port));
    assert_eq!(
        issue(&issuer, &bad_endpoint).await.unwrap_err().code(),
        "sts_invalid_request"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(listener.accepted(), 0, "an invalid request reached STS");

    // Control: a valid request does reach the listener (which closes the connection: STS is unavailable).
    let err = issue(&issuer, &request(endpoint, IssueKind::SessionToken, 3600))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "sts_unavailable", "{err}");
    assert!(listener.accepted() >= 1);
}

// ----- STS down or hanging

#[tokio::test]
async fn sts_down_is_unavailable() {
    let port = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.local_addr().unwrap().port()
    };
    let issuer = issuer(2, Duration::from_secs(10));
    let err = issue(
        &issuer,
        &request(
            format!("http://127.0.0.1:{port}"),
            IssueKind::SessionToken,
            3600,
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "sts_unavailable", "{err}");
    assert!(err.message.contains("GetSessionToken"), "{err}");
    assert_secret_free(&err);
}

#[tokio::test]
async fn sts_that_never_answers_times_out() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream); // accepted, never read from, never answered
        }
    });
    let issuer = issuer(3, Duration::from_secs(2));
    let err = issue(
        &issuer,
        &request(
            format!("http://127.0.0.1:{port}"),
            assume_role("alice"),
            3600,
        ),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "sts_unavailable", "{err}");
    assert!(err.message.contains("did not answer"), "{err}");
    assert_secret_free(&err);
}

// ----- STS error answers

/// A loopback STS stand-in that answers every request with `status` and `body`, and counts the requests.
struct CannedSts {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl CannedSts {
    fn start(status: u16, body: String) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                let _ = answer(stream, status, &body);
            }
        });
        CannedSts { port, requests }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn answer(mut stream: TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut request_body = vec![0u8; length];
    stream.read_exact(&mut request_body)?;
    let response = format!(
        "HTTP/1.1 {status} Canned\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())?;
    stream.flush()
}

fn error_xml(code: &str, message: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>{message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>"
    )
}

#[tokio::test]
async fn sts_errors_map_to_codes_without_secrets() {
    let echo = format!("the key {SECRET_KEY} is not allowed");
    let cases = [
        (403, error_xml("AccessDenied", &echo), "sts_access_denied"),
        (
            400,
            error_xml("Throttling", "Rate exceeded"),
            "sts_throttled",
        ),
        (
            400,
            error_xml("MalformedPolicyDocument", &echo),
            "sts_malformed_policy",
        ),
        (
            400,
            error_xml("PackedPolicyTooLarge", "too big"),
            "sts_packed_policy_too_large",
        ),
        (
            403,
            error_xml("RegionDisabledException", "off"),
            "sts_region_disabled",
        ),
        (
            403,
            error_xml("ExpiredToken", "expired"),
            "sts_invalid_token",
        ),
        (
            403,
            error_xml("InvalidClientTokenId", &echo),
            "sts_invalid_token",
        ),
        (
            400,
            error_xml("ValidationError", "bad"),
            "sts_invalid_request",
        ),
        (400, error_xml("SomethingNew", &echo), "sts_error"),
        (503, "<html>down</html>".to_owned(), "sts_unavailable"),
        // moto's auth mode: a 403 whose code the SDK cannot read.
        (
            403,
            format!(
                "<ErrorResponse><Errors><Error><Code>AccessDenied</Code><Message>{echo}</Message></Error></Errors></ErrorResponse>"
            ),
            "sts_access_denied",
        ),
    ];
    for (status, body, code) in cases {
        let sts = CannedSts::start(status, body.clone());
        let issuer = issuer(2, Duration::from_secs(20));
        let err = issue(
            &issuer,
            &request(sts.endpoint(), assume_role("alice"), 3600),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), code, "{status} {body}: {err}");
        assert!(err.message.contains("AssumeRole"), "{err}");
        assert_secret_free(&err);
        let attempts = sts.requests.load(Ordering::SeqCst);
        if matches!(code, "sts_throttled" | "sts_unavailable") {
            assert_eq!(attempts, 2, "{code} is retried");
        } else {
            assert_eq!(attempts, 1, "{code} is not retried");
        }
    }
}

// ----- the harness

#[test]
fn own_moto_answers_and_stops_on_drop() {
    let moto = moto::Moto::start();
    let port = moto.port();
    assert_eq!(moto.endpoint(), format!("http://127.0.0.1:{port}"));
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
    drop(moto);
    assert!(
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
        "moto still listens after drop"
    );
}
