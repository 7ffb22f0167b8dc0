//! An AWS STS stand-in for tests and benchmarks: [`StsStandIn`], axum on a loopback port, speaking STS's Query
//! API (version `2011-06-15`) as aws-sdk-sts calls it, with no AWS, no Python and no network.
//!
//! - `POST /` (or `GET /` with the parameters in the query string) with a form-encoded body
//!   `Action=…&Version=2011-06-15&…`. SigV4 signatures are not checked: any caller is let in.
//! - Actions: `AssumeRole`, `GetFederationToken`, `GetSessionToken` and `GetCallerIdentity`, answered with the
//!   XML AWS documents (`<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
//!   <AssumeRoleResult><Credentials>…`), `Content-Type: text/xml` and an `x-amzn-RequestId` header.
//! - `DurationSeconds` defaults as in AWS (3600 for `AssumeRole`, 43200 for the other two) and is checked against
//!   AWS's ranges (900–43200 for `AssumeRole`: no role here has a lower maximum; 900–129600 otherwise);
//!   `Expiration` is now plus the duration, in RFC 3339 with `Z`, to the second.
//! - Every credential set is new: `AccessKeyId` is `ASIA`, six characters picked at random per server and ten
//!   of a counter (20 in all); the secret (40 characters) and the session token are random. The session token
//!   carries the principal and the expiration, so `GetCallerIdentity` made with vended credentials names the
//!   assumed role (`arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`), the federated user
//!   (`arn:aws:sts::123456789012:federated-user/NAME`) or the IAM user ([`IAM_USER_ARN`]), and refuses an
//!   expired token (`ExpiredToken`) or one it did not make (`InvalidClientTokenId`). Without a token it names
//!   the IAM user.
//! - STS's input rules that are cheap to check are checked, with AWS's error codes: names (`RoleSessionName`
//!   2–64, `Name` 2–32 of `[\w+=,.@-]`), `RoleArn`'s shape, `Policy` (JSON, at most 2048 characters:
//!   `MalformedPolicyDocument`, `ValidationError`), and an approximate packed size ([`packed_policy_size`]:
//!   `PackedPolicyTooLarge` over 100 %). `PackedPolicySize` is answered when a session policy, policy ARN or tag
//!   was passed.
//! - Errors are `<ErrorResponse xmlns="…"><Error><Type>Sender</Type><Code>…</Code><Message>…</Message>
//!   </Error><RequestId>…</RequestId></ErrorResponse>`: an unknown action is `InvalidAction`, no action
//!   `MissingAction`, a body that is not UTF-8 `MalformedQueryString` (all HTTP 400). Bad input never panics.
//! - Calls are counted per action, throttled and malformed ones included (an unknown or missing action counts as
//!   `other`), when they arrive, before any delay: [`StsStandIn::calls`], or `GET /_standin/calls` →
//!   `{"AssumeRole": n, "GetFederationToken": n, "GetSessionToken": n, "GetCallerIdentity": n, "other": n,
//!   "total": n}`; `POST /_standin/reset` (or [`StsStandIn::reset`]) sets them to zero.
//! - [`StandInOptions::delay`] holds every STS answer back (simulated latency; `POST /_standin/delay?ms=N` or
//!   [`StsStandIn::set_delay`] changes it); [`StandInOptions::throttle`] answers every STS call
//!   `400 Throttling` / `Rate exceeded`, as STS does (`POST /_standin/throttle?on=true|false` or
//!   [`StsStandIn::set_throttle`] switches it). The control endpoints under `/_standin/` never wait.
//!
//! Out of process: the `sts-standin` binary (`sts-standin [--port N] [--delay-ms N] [--throttle]`) prints
//! `listening http://127.0.0.1:PORT` once it accepts connections; [`spawn_process`] runs it and gives a
//! [`StandInProcess`] handle. Test code only: it lives in `tests/`, never in the product.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The account id of the stand-in's IAM user and federated users.
pub const ACCOUNT_ID: &str = "123456789012";
/// The ARN `GetCallerIdentity` gives for long-term keys and `GetSessionToken` credentials.
pub const IAM_USER_ARN: &str = "arn:aws:iam::123456789012:user/sts-standin";
/// STS's Query API version, the only one served.
pub const API_VERSION: &str = "2011-06-15";
/// The XML namespace of every answer.
pub const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
/// The actions served, as [`StsStandIn::calls`] names them.
pub const ACTIONS: [&str; 4] = [
    "AssumeRole",
    "GetFederationToken",
    "GetSessionToken",
    "GetCallerIdentity",
];
/// The counter name of calls with an unknown or missing action.
pub const OTHER: &str = "other";
/// What the `sts-standin` binary prints before its endpoint (`listening http://127.0.0.1:PORT`).
pub const LISTENING_PREFIX: &str = "listening ";

/// Marks the stand-in's session tokens (the decoded token's first line).
const TOKEN_MAGIC: &str = "idfed-sts-standin-token-1";
/// `[counters]` index of [`OTHER`].
const OTHER_INDEX: usize = ACTIONS.len();
/// How long [`spawn_process`] waits for the binary's `listening` line.
const PROCESS_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// The timeout of each control request [`StandInProcess`] makes.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// How a stand-in starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StandInOptions {
    /// The loopback port to listen on; 0 (the default) for a free one.
    pub port: u16,
    /// How long every STS answer (success or error) waits before it is sent. Default none.
    pub delay: Duration,
    /// Answer every STS call `400 Throttling` (`Rate exceeded`). Default off.
    pub throttle: bool,
    /// Make every credential set expire this long after it is issued, whatever duration was asked (the
    /// answer still passes the duration checks): credentials that end within a test, to test renewing
    /// them. Default: the duration asked, as STS does.
    pub lifetime: Option<Duration>,
}

impl StandInOptions {
    /// The `sts-standin` command-line arguments that start the binary with these options.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--port".to_owned(), self.port.to_string()];
        if !self.delay.is_zero() {
            if self.delay.subsec_nanos().is_multiple_of(1_000_000) {
                args.extend(["--delay-ms".to_owned(), self.delay.as_millis().to_string()]);
            } else {
                args.extend(["--delay-us".to_owned(), self.delay.as_micros().to_string()]);
            }
        }
        if self.throttle {
            args.push("--throttle".to_owned());
        }
        if let Some(lifetime) = self.lifetime {
            args.extend(["--lifetime-s".to_owned(), lifetime.as_secs().to_string()]);
        }
        args
    }
}

/// The state the handlers share with the handle.
struct Shared {
    /// Calls per action, in [`ACTIONS`] order, then [`OTHER`].
    counters: [AtomicU64; ACTIONS.len() + 1],
    throttle: AtomicBool,
    delay_nanos: AtomicU64,
    /// How many credential sets were issued (numbers the access key ids; never reset).
    issued: AtomicU64,
    /// Six characters of this server's own, in every access key id it makes.
    key_prefix: String,
    /// The parameters of the latest call of each action.
    last: Mutex<BTreeMap<&'static str, BTreeMap<String, String>>>,
    /// [`StandInOptions::lifetime`].
    lifetime: Option<Duration>,
}

impl Shared {
    fn new(options: &StandInOptions) -> Self {
        let random = u128::from_le_bytes(*uuid::Uuid::new_v4().as_bytes());
        Shared {
            counters: Default::default(),
            throttle: AtomicBool::new(options.throttle),
            delay_nanos: AtomicU64::new(duration_nanos(options.delay)),
            issued: AtomicU64::new(0),
            key_prefix: base36(random, 6),
            last: Mutex::new(BTreeMap::new()),
            lifetime: options.lifetime,
        }
    }

    fn count(&self, index: usize) -> u64 {
        self.counters[index].load(Ordering::Relaxed)
    }

    fn counts(&self) -> BTreeMap<String, u64> {
        let mut counts: BTreeMap<String, u64> = ACTIONS
            .iter()
            .enumerate()
            .map(|(i, name)| ((*name).to_owned(), self.count(i)))
            .collect();
        counts.insert(OTHER.to_owned(), self.count(OTHER_INDEX));
        let total = counts.values().sum();
        counts.insert("total".to_owned(), total);
        counts
    }

    fn reset(&self) {
        for counter in &self.counters {
            counter.store(0, Ordering::Relaxed);
        }
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::Relaxed))
    }
}

fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A running STS stand-in on `127.0.0.1`. Stops (the port closes, open connections drop) when dropped.
pub struct StsStandIn {
    shared: Arc<Shared>,
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for StsStandIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StsStandIn")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl StsStandIn {
    /// Starts a stand-in with `options`, on the tokio runtime of the caller.
    ///
    /// # Panics
    /// If the port cannot be bound.
    pub async fn start(options: StandInOptions) -> StsStandIn {
        let port = options.port;
        Self::try_start(options)
            .await
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:{port} for the STS stand-in: {e}"))
    }

    /// Starts a stand-in with `options`, or says why the port could not be bound.
    pub async fn try_start(options: StandInOptions) -> std::io::Result<StsStandIn> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, options.port)).await?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&options));
        let task = tokio::spawn(serve(listener, router(shared.clone())));
        Ok(StsStandIn {
            shared,
            address,
            task,
        })
    }

    /// The endpoint URL to give an STS client: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// How many calls of `action` (one of [`ACTIONS`], or [`OTHER`]) arrived since the start or the last reset;
    /// 0 for any other name.
    pub fn calls(&self, action: &str) -> u64 {
        counter_index(action).map_or(0, |i| self.shared.count(i))
    }

    /// How many STS calls arrived since the start or the last reset, of every action and [`OTHER`].
    pub fn total_calls(&self) -> u64 {
        (0..=OTHER_INDEX).map(|i| self.shared.count(i)).sum()
    }

    /// Every counter by name ([`ACTIONS`], [`OTHER`]) and `total`: what `GET /_standin/calls` answers.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.shared.counts()
    }

    /// The parameters (`Action`, `Version`, `RoleArn`, `Tags.member.1.Key`…) of the latest call of `action`
    /// since the start or the last reset.
    pub fn last_params(&self, action: &str) -> Option<BTreeMap<String, String>> {
        self.shared
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(action)
            .cloned()
    }

    /// Sets every counter to zero and forgets the latest parameters (credentials stay distinct: their
    /// numbering goes on).
    pub fn reset(&self) {
        self.shared.reset();
    }

    /// Switches throttling on (every STS call answers `400 Throttling`) or off.
    pub fn set_throttle(&self, on: bool) {
        self.shared.throttle.store(on, Ordering::Relaxed);
    }

    /// Whether it throttles.
    pub fn throttled(&self) -> bool {
        self.shared.throttle.load(Ordering::Relaxed)
    }

    /// Sets how long each STS answer waits from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_nanos
            .store(duration_nanos(delay), Ordering::Relaxed);
    }

    /// How long each STS answer waits.
    pub fn delay(&self) -> Duration {
        self.shared.delay()
    }
}

impl Drop for StsStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn counter_index(name: &str) -> Option<usize> {
    if name == OTHER {
        return Some(OTHER_INDEX);
    }
    ACTIONS.iter().position(|a| *a == name)
}

/// Accepts connections until aborted; the connections live in a `JoinSet` owned here, so aborting this task
/// drops them all and closes the port.
pub(crate) async fn serve(listener: TcpListener, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: wait a little rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(sts).post(sts))
        .route("/_standin/calls", get(calls_json))
        .route("/_standin/reset", post(reset))
        .route("/_standin/throttle", post(throttle))
        .route("/_standin/delay", post(delay))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------------------------
// Control endpoints

fn json(status: StatusCode, value: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn query_pairs(query: Option<&str>) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

async fn calls_json(State(shared): State<Arc<Shared>>) -> Response {
    json(StatusCode::OK, serde_json::json!(shared.counts()))
}

async fn reset(State(shared): State<Arc<Shared>>) -> Response {
    shared.reset();
    json(StatusCode::OK, serde_json::json!(shared.counts()))
}

async fn throttle(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let on = match query_pairs(query.as_deref()).get("on").map(String::as_str) {
        Some("true" | "1" | "on") => true,
        Some("false" | "0" | "off") => false,
        _ => {
            return json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "give on=true or on=false"}),
            );
        }
    };
    shared.throttle.store(on, Ordering::Relaxed);
    json(StatusCode::OK, serde_json::json!({ "throttle": on }))
}

async fn delay(State(shared): State<Arc<Shared>>, RawQuery(query): RawQuery) -> Response {
    let pairs = query_pairs(query.as_deref());
    let delay = match (pairs.get("ms"), pairs.get("us")) {
        (Some(ms), None) => ms.parse().ok().map(Duration::from_millis),
        (None, Some(us)) => us.parse().ok().map(Duration::from_micros),
        _ => None,
    };
    let Some(delay) = delay else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "give ms=N or us=N (a whole number)"}),
        );
    };
    shared
        .delay_nanos
        .store(duration_nanos(delay), Ordering::Relaxed);
    json(
        StatusCode::OK,
        serde_json::json!({ "delay_us": u64::try_from(delay.as_micros()).unwrap_or(u64::MAX) }),
    )
}

// ---------------------------------------------------------------------------------------------------------------
// STS

/// An STS error answer.
#[derive(Debug)]
struct Fault {
    status: StatusCode,
    /// `Sender` or `Receiver`.
    kind: &'static str,
    code: &'static str,
    message: String,
}

impl Fault {
    fn sender(code: &'static str, message: impl Into<String>) -> Self {
        Fault {
            status: StatusCode::BAD_REQUEST,
            kind: "Sender",
            code,
            message: message.into(),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Fault::sender("ValidationError", message)
    }

    fn response(&self, request_id: &str) -> Response {
        let body = format!(
            "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{}</Type>\n    <Code>{}</Code>\n    \
             <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
            self.kind,
            self.code,
            escape(&self.message),
            escape(request_id),
        );
        xml(self.status, request_id, body)
    }
}

fn xml(status: StatusCode, request_id: &str, body: String) -> Response {
    let mut response = (status, [(header::CONTENT_TYPE, "text/xml")], body).into_response();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-RequestId", value);
    }
    response
}

/// `text` with XML's five special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The call's parameters: the query string's, then the form body's (a later one wins).
fn parse_params(query: Option<&str>, body: &[u8]) -> Result<BTreeMap<String, String>, Fault> {
    let body = std::str::from_utf8(body)
        .map_err(|_| Fault::sender("MalformedQueryString", "the request body is not UTF-8"))?;
    let mut params = query_pairs(query);
    params.extend(form_urlencoded::parse(body.as_bytes()).into_owned());
    Ok(params)
}

/// The STS Query API: count, wait, throttle, then answer.
async fn sts(
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let params = parse_params(query.as_deref(), &body);
    let action = params
        .as_ref()
        .ok()
        .and_then(|p| p.get("Action"))
        .and_then(|a| ACTIONS.iter().position(|known| known == a));
    shared.counters[action.unwrap_or(OTHER_INDEX)].fetch_add(1, Ordering::Relaxed);
    if let (Some(index), Ok(params)) = (action, &params) {
        shared
            .last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ACTIONS[index], params.clone());
    }
    let delay = shared.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if shared.throttle.load(Ordering::Relaxed) {
        return Fault::sender("Throttling", "Rate exceeded").response(&request_id);
    }
    match answer(&shared, params, &headers, &request_id) {
        Ok(body) => xml(StatusCode::OK, &request_id, body),
        Err(fault) => fault.response(&request_id),
    }
}

fn answer(
    shared: &Shared,
    params: Result<BTreeMap<String, String>, Fault>,
    headers: &HeaderMap,
    request_id: &str,
) -> Result<String, Fault> {
    let params = params?;
    let Some(action) = params.get("Action").filter(|a| !a.is_empty()) else {
        return Err(Fault::sender(
            "MissingAction",
            "The request must contain the parameter Action",
        ));
    };
    let version = params.get("Version").map_or(API_VERSION, String::as_str);
    if version != API_VERSION {
        return Err(Fault::sender(
            "InvalidAction",
            format!("Could not find operation {action} for version {version}"),
        ));
    }
    let result = match action.as_str() {
        "AssumeRole" => assume_role(shared, &params)?,
        "GetFederationToken" => federation_token(shared, &params)?,
        "GetSessionToken" => session_token(shared, &params, headers)?,
        "GetCallerIdentity" => caller_identity(&params, headers)?,
        _ => {
            return Err(Fault::sender(
                "InvalidAction",
                format!("Could not find operation {action} for version {version}"),
            ));
        }
    };
    Ok(format!(
        "<{action}Response xmlns=\"{XMLNS}\">\n  <{action}Result>\n{result}  </{action}Result>\n  \
         <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        escape(request_id)
    ))
}

/// `DurationSeconds`, `default` when absent, checked against `900..=max`.
fn duration_seconds(
    params: &BTreeMap<String, String>,
    default: u32,
    max: u32,
) -> Result<u32, Fault> {
    let Some(text) = params.get("DurationSeconds") else {
        return Ok(default);
    };
    let constraint = |rule: String| {
        Fault::validation(format!(
            "1 validation error detected: Value '{text}' at 'durationSeconds' failed to satisfy constraint: {rule}"
        ))
    };
    let seconds: i64 = text
        .trim()
        .parse()
        .map_err(|_| constraint("Member must be an integer".to_owned()))?;
    if seconds < 900 {
        return Err(constraint(
            "Member must have value greater than or equal to 900".to_owned(),
        ));
    }
    if seconds > i64::from(max) {
        return Err(constraint(format!(
            "Member must have value less than or equal to {max}"
        )));
    }
    u32::try_from(seconds).map_err(|_| constraint("Member is out of range".to_owned()))
}

/// A required parameter.
fn required<'p>(
    params: &'p BTreeMap<String, String>,
    name: &str,
    field: &str,
) -> Result<&'p str, Fault> {
    params.get(name).map(String::as_str).ok_or_else(|| {
        Fault::validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

/// Checks a name of `min..=max` characters of `[\w+=,.@-]`.
fn check_name(value: &str, field: &str, min: usize, max: usize) -> Result<(), Fault> {
    let length = value.chars().count();
    let constraint = |rule: String| {
        Fault::validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {rule}"
        ))
    };
    if length < min {
        return Err(constraint(format!(
            "Member must have length greater than or equal to {min}"
        )));
    }
    if length > max {
        return Err(constraint(format!(
            "Member must have length less than or equal to {max}"
        )));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
    {
        return Err(constraint(
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*".to_owned(),
        ));
    }
    Ok(())
}

/// The partition, account and role name of a role ARN `arn:PARTITION:iam::ACCOUNT:role/[PATH/]NAME`.
fn parse_role_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("iam"), Some(""), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let name = resource.strip_prefix("role/")?.rsplit('/').next()?;
    let valid = !partition.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty();
    valid.then_some((partition, account, name))
}

/// How much of the packed-policy allowance the call's session policy, policy ARNs and tags use, in percent
/// (at least 1), or `None` when it passes none of them. An approximation of AWS's (which compresses): the
/// policy's characters other than whitespace, plus the tags' keys and values, plus 64 per policy ARN, over 4096.
pub fn packed_policy_size(params: &BTreeMap<String, String>) -> Option<u64> {
    let policy = params
        .get("Policy")
        .map_or(0, |p| p.chars().filter(|c| !c.is_whitespace()).count());
    let mut any = params.contains_key("Policy");
    let mut used = policy;
    for (key, value) in params {
        if key.starts_with("PolicyArns.member.") {
            any = true;
            used += 64;
        } else if key.starts_with("Tags.member.") {
            any = true;
            used += value.chars().count();
        }
    }
    any.then(|| ((used as u64) * 100).div_ceil(4096).max(1))
}

/// Checks the session policy and the packed size; the `<PackedPolicySize>` element to answer, if any.
fn session_policies(params: &BTreeMap<String, String>) -> Result<String, Fault> {
    if let Some(policy) = params.get("Policy") {
        let length = policy.chars().count();
        if length > 2048 {
            return Err(Fault::validation(format!(
                "1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have \
                 length less than or equal to 2048 (it has {length})"
            )));
        }
        if !matches!(
            serde_json::from_str::<serde_json::Value>(policy),
            Ok(serde_json::Value::Object(_))
        ) {
            return Err(Fault::sender(
                "MalformedPolicyDocument",
                "The policy is not in the valid JSON format.",
            ));
        }
    }
    match packed_policy_size(params) {
        None => Ok(String::new()),
        Some(percent) if percent > 100 => Err(Fault::sender(
            "PackedPolicyTooLarge",
            format!(
                "Packed policy consumes {percent}% of allotted space, please use smaller policy for this request."
            ),
        )),
        Some(percent) => Ok(format!(
            "    <PackedPolicySize>{percent}</PackedPolicySize>\n"
        )),
    }
}

/// A new credential set for `principal`, expiring in `seconds`: the `<Credentials>` element.
fn credentials(shared: &Shared, seconds: u32, principal: &Principal) -> String {
    let number = shared.issued.fetch_add(1, Ordering::Relaxed) + 1;
    let access_key_id = format!("ASIA{}{}", shared.key_prefix, base36(number.into(), 10));
    let mut random = [0u8; 32];
    random[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    random[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    let secret = BASE64.encode(&random[..30]);
    let lifetime = shared
        .lifetime
        .unwrap_or(Duration::from_secs(seconds.into()));
    let expiration = SystemTime::now() + lifetime;
    let expires_unix = expiration
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let token = BASE64.encode(format!(
        "{TOKEN_MAGIC}\n{expires_unix}\n{}\n{}\n{nonce}",
        principal.arn, principal.user_id
    ));
    format!(
        "    <Credentials>\n      <AccessKeyId>{access_key_id}</AccessKeyId>\n      \
         <SecretAccessKey>{secret}</SecretAccessKey>\n      <SessionToken>{token}</SessionToken>\n      \
         <Expiration>{}</Expiration>\n    </Credentials>\n",
        humantime::format_rfc3339_seconds(expiration)
    )
}

/// Who a set of credentials stands for, as `GetCallerIdentity` tells it.
struct Principal {
    arn: String,
    user_id: String,
}

fn assume_role(shared: &Shared, params: &BTreeMap<String, String>) -> Result<String, Fault> {
    let role_arn = required(params, "RoleArn", "roleArn")?;
    let session_name = required(params, "RoleSessionName", "roleSessionName")?;
    check_name(session_name, "roleSessionName", 2, 64)?;
    let Some((partition, account, role_name)) = parse_role_arn(role_arn) else {
        return Err(Fault::validation(format!(
            "{role_arn} is invalid: give arn:aws:iam::ACCOUNT:role/NAME"
        )));
    };
    if let Some(source_identity) = params.get("SourceIdentity") {
        check_name(source_identity, "sourceIdentity", 2, 64)?;
    }
    if let Some(external_id) = params.get("ExternalId") {
        check_name_length(external_id, "externalId", 2, 1224)?;
    }
    let seconds = duration_seconds(params, 3600, 43200)?;
    let packed = session_policies(params)?;
    let role_id = format!("AROA{}", base36(hash128(role_arn), 17));
    let principal = Principal {
        arn: format!("arn:{partition}:sts::{account}:assumed-role/{role_name}/{session_name}"),
        user_id: format!("{role_id}:{session_name}"),
    };
    let source_identity = params.get("SourceIdentity").map_or(String::new(), |s| {
        format!("    <SourceIdentity>{}</SourceIdentity>\n", escape(s))
    });
    Ok(format!(
        "{}    <AssumedRoleUser>\n      <Arn>{}</Arn>\n      <AssumedRoleId>{}</AssumedRoleId>\n    \
         </AssumedRoleUser>\n{packed}{source_identity}",
        credentials(shared, seconds, &principal),
        escape(&principal.arn),
        escape(&principal.user_id),
    ))
}

fn check_name_length(value: &str, field: &str, min: usize, max: usize) -> Result<(), Fault> {
    let length = value.chars().count();
    if (min..=max).contains(&length) {
        Ok(())
    } else {
        Err(Fault::validation(format!(
            "1 validation error detected: Value at '{field}' failed to satisfy constraint: Member must have \
             length between {min} and {max}"
        )))
    }
}

fn federation_token(shared: &Shared, params: &BTreeMap<String, String>) -> Result<String, Fault> {
    let name = required(params, "Name", "name")?;
    check_name(name, "name", 2, 32)?;
    let seconds = duration_seconds(params, 43200, 129_600)?;
    let packed = session_policies(params)?;
    let principal = Principal {
        arn: format!("arn:aws:sts::{ACCOUNT_ID}:federated-user/{name}"),
        user_id: format!("{ACCOUNT_ID}:{name}"),
    };
    Ok(format!(
        "{}    <FederatedUser>\n      <Arn>{}</Arn>\n      <FederatedUserId>{}</FederatedUserId>\n    \
         </FederatedUser>\n{packed}",
        credentials(shared, seconds, &principal),
        escape(&principal.arn),
        escape(&principal.user_id),
    ))
}

fn session_token(
    shared: &Shared,
    params: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<String, Fault> {
    let seconds = duration_seconds(params, 43200, 129_600)?;
    let principal = Principal {
        arn: IAM_USER_ARN.to_owned(),
        user_id: iam_user_id(headers),
    };
    Ok(credentials(shared, seconds, &principal))
}

fn caller_identity(
    params: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Result<String, Fault> {
    let token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .or_else(|| params.get("X-Amz-Security-Token").map(String::as_str));
    let principal = match token {
        None => Principal {
            arn: IAM_USER_ARN.to_owned(),
            user_id: iam_user_id(headers),
        },
        Some(token) => {
            let invalid = || {
                let mut fault = Fault::sender(
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                );
                fault.status = StatusCode::FORBIDDEN;
                fault
            };
            let decoded = BASE64.decode(token.trim()).map_err(|_| invalid())?;
            let decoded = String::from_utf8(decoded).map_err(|_| invalid())?;
            let mut lines = decoded.split('\n');
            let (Some(TOKEN_MAGIC), Some(expires), Some(arn), Some(user_id)) =
                (lines.next(), lines.next(), lines.next(), lines.next())
            else {
                return Err(invalid());
            };
            let expires: u64 = expires.parse().map_err(|_| invalid())?;
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if now >= expires {
                return Err(Fault::sender(
                    "ExpiredToken",
                    "The security token included in the request is expired",
                ));
            }
            Principal {
                arn: arn.to_owned(),
                user_id: user_id.to_owned(),
            }
        }
    };
    let account = principal
        .arn
        .split(':')
        .nth(4)
        .filter(|a| !a.is_empty())
        .unwrap_or(ACCOUNT_ID);
    Ok(format!(
        "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
        escape(&principal.arn),
        escape(&principal.user_id),
        escape(account)
    ))
}

/// The IAM user id (`AIDA…`, 21 characters) for the access key id in the SigV4 `Authorization` header.
fn iam_user_id(headers: &HeaderMap) -> String {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|credential| credential.split('/').next())
        .unwrap_or("");
    format!("AIDA{}", base36(hash128(key), 17))
}

fn hash128(text: &str) -> u128 {
    let mut low = DefaultHasher::new();
    text.hash(&mut low);
    let mut high = DefaultHasher::new();
    (text, "high").hash(&mut high);
    (u128::from(high.finish()) << 64) | u128::from(low.finish())
}

/// The last `width` digits of `n` in base 36 (`0-9A-Z`), zero-padded.
fn base36(mut n: u128, width: usize) -> String {
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(out).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------------
// Out of process

/// The `sts-standin` binary running as a child process, started by [`spawn_process`]. Killed when dropped.
///
/// Its methods talk to the child's `/_standin/` endpoints with a blocking loopback HTTP request (they answer at
/// once, whatever the delay); they may be called from async code, since the server is another process.
#[derive(Debug)]
pub struct StandInProcess {
    child: Child,
    /// Held open: the child exits when it closes (this process ended, or the handle was dropped).
    stdin: Option<ChildStdin>,
    address: SocketAddr,
}

/// Starts `binary` (the `sts-standin` executable: `env!("CARGO_BIN_EXE_sts-standin")`) with `options`, waits for
/// its `listening` line and returns the handle. The child also exits when this process does, however it ends
/// (it watches its stdin, a pipe from here).
///
/// # Panics
/// If the binary cannot be run, or does not say it listens within 30 s.
pub fn spawn_process(binary: &Path, options: &StandInOptions) -> StandInProcess {
    let mut child = Command::new(binary)
        .args(options.to_args())
        .arg("--stdin-guard")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = sender.send(read);
    });
    let line = match receiver.recv_timeout(PROCESS_STARTUP_TIMEOUT) {
        Ok(Ok(line)) => line,
        Ok(Err(e)) => fail_spawn(child, binary, &format!("reading its output failed: {e}")),
        Err(_) => fail_spawn(
            child,
            binary,
            &format!("it did not say it listens within {PROCESS_STARTUP_TIMEOUT:?}"),
        ),
    };
    let address = line
        .trim()
        .strip_prefix(LISTENING_PREFIX)
        .and_then(|url| url.strip_prefix("http://"))
        .and_then(|address| address.parse::<SocketAddr>().ok());
    let Some(address) = address else {
        fail_spawn(
            child,
            binary,
            &format!("it printed {line:?}, not `{LISTENING_PREFIX}http://127.0.0.1:PORT`"),
        )
    };
    StandInProcess {
        child,
        stdin,
        address,
    }
}

fn fail_spawn(mut child: Child, binary: &Path, why: &str) -> ! {
    let _ = child.kill();
    let status = child.wait();
    panic!(
        "the STS stand-in {} did not start ({status:?}): {why}",
        binary.display()
    );
}

impl StandInProcess {
    /// The endpoint URL to give an STS client: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every counter by name, and `total` (`GET /_standin/calls`).
    ///
    /// # Panics
    /// If the child does not answer.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let body = self.control("GET", "/_standin/calls");
        serde_json::from_str(&body).unwrap_or_else(|e| {
            panic!("the STS stand-in's counts {body:?} are not a JSON map: {e}")
        })
    }

    /// How many calls of `action` (one of [`ACTIONS`], or [`OTHER`]) it received since the start or the last
    /// reset.
    ///
    /// # Panics
    /// If the child does not answer.
    pub fn calls(&self, action: &str) -> u64 {
        self.counts().get(action).copied().unwrap_or(0)
    }

    /// How many STS calls it received since the start or the last reset.
    ///
    /// # Panics
    /// If the child does not answer.
    pub fn total_calls(&self) -> u64 {
        self.calls("total")
    }

    /// Sets its counters to zero (`POST /_standin/reset`).
    ///
    /// # Panics
    /// If the child does not answer.
    pub fn reset(&self) {
        self.control("POST", "/_standin/reset");
    }

    /// Switches its throttling on or off (`POST /_standin/throttle?on=…`).
    ///
    /// # Panics
    /// If the child does not answer.
    pub fn set_throttle(&self, on: bool) {
        self.control("POST", &format!("/_standin/throttle?on={on}"));
    }

    /// Sets its answers' delay (`POST /_standin/delay?us=…`).
    ///
    /// # Panics
    /// If the child does not answer.
    pub fn set_delay(&self, delay: Duration) {
        self.control("POST", &format!("/_standin/delay?us={}", delay.as_micros()));
    }

    /// Makes a control request; the body of a 200 answer.
    fn control(&self, method: &str, path: &str) -> String {
        match http_request(self.address, method, path) {
            Ok((200, body)) => body,
            Ok((status, body)) => {
                panic!("the STS stand-in answered {method} {path} with {status}: {body}")
            }
            Err(e) => panic!(
                "the STS stand-in at {} did not answer {method} {path}: {e}",
                self.address
            ),
        }
    }
}

impl Drop for StandInProcess {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with an empty body over a new connection; the status and body of the answer.
fn http_request(address: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, CONTROL_TIMEOUT)?;
    stream.set_read_timeout(Some(CONTROL_TIMEOUT))?;
    stream.set_write_timeout(Some(CONTROL_TIMEOUT))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )?;
    stream.flush()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let bad = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not HTTP: {answer:?}"),
        )
    };
    let (head, body) = answer.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns_parse() {
        assert_eq!(
            parse_role_arn("arn:aws:iam::123456789012:role/dev"),
            Some(("aws", "123456789012", "dev"))
        );
        assert_eq!(
            parse_role_arn("arn:aws-cn:iam::210987654321:role/team/a/ops"),
            Some(("aws-cn", "210987654321", "ops"))
        );
        for bad in [
            "",
            "arn:aws:iam::123456789012:user/dev",
            "arn:aws:iam::1234:role/dev",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:s3:::bucket",
        ] {
            assert_eq!(parse_role_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn base36_pads_and_truncates() {
        assert_eq!(base36(0, 4), "0000");
        assert_eq!(base36(35, 2), "0Z");
        assert_eq!(base36(36 * 36 + 1, 2), "01");
    }

    #[test]
    fn options_round_trip_to_args() {
        let options = StandInOptions {
            port: 0,
            delay: Duration::from_micros(1500),
            throttle: true,
            lifetime: Some(Duration::from_secs(10)),
        };
        assert_eq!(
            options.to_args(),
            [
                "--port",
                "0",
                "--delay-us",
                "1500",
                "--throttle",
                "--lifetime-s",
                "10"
            ]
        );
        let ms = StandInOptions {
            delay: Duration::from_millis(20),
            ..StandInOptions::default()
        };
        assert_eq!(ms.to_args(), ["--port", "0", "--delay-ms", "20"]);
    }
}
