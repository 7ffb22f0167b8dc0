//! A Crowd REST API test server: [`CrowdServer`], axum on a free loopback port, following
//! `shared/notes/crowd-rest.md` (Atlassian Crowd's `usermanagement/1` API as an application client uses it).
//!
//! - Paths under `/rest/usermanagement/1`; every call authenticates the application with HTTP Basic (401, plain
//!   text `Application failed to authenticate`, otherwise); a switch refuses the application's address (403,
//!   `The server understood the request but refuses to authorize it.`).
//! - JSON only: a request that does not accept `application/json` gets 406, a body that is not
//!   `application/json` gets 415 (real Crowd would answer XML; idfed must never be relying on that).
//! - `POST /authentication?username=`, `GET /user?username=`, `GET /user/group/nested` and `/user/group/direct`
//!   (`start-index`/`max-results` paging, `expand=group`), `POST /session?validate-password=`,
//!   `POST|GET|DELETE /session/{token}`; reason-coded errors `{"reason": ..., "message": ...}`.
//! - `GET /search?entity-type=group|user` (every group or user, sorted by name ignoring case, `start-index`/
//!   `max-results` paging, `expand=group|user` for full entities; a missing or other entity type is 400
//!   `ILLEGAL_ARGUMENT`). Of Crowd's CQL `restriction` it understands only `active=true` and `active=false` (anything
//!   else is 400 `ILLEGAL_ARGUMENT`); the `POST /search` form with a restriction body is not served.
//! - User and group names are case-insensitive, as in Crowd; entities keep the spelling they were created with.
//! - Tests set it up and change it while it runs: users, groups (active or not), memberships (user→group, group→group, resolved
//!   transitively), SSO tokens, hanging (requests are read and never answered), going down (port closed,
//!   connections dropped) and coming back, and a log of the requests it received.
//!
//! Test code only: it lives in `tests/`, never in the product.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The application name a server started with [`CrowdServer::start`] accepts.
pub const APPLICATION_NAME: &str = "idfed";
/// The application password a server started with [`CrowdServer::start`] accepts.
pub const APPLICATION_PASSWORD: &str = "idfed-application-password";
/// Crowd's user management API path.
pub const API_PATH: &str = "/rest/usermanagement/1";
/// The plain-text body of a 401.
pub const APPLICATION_AUTH_FAILED: &str = "Application failed to authenticate";
/// What the body of a 403 for a refused address contains.
pub const ADDRESS_REFUSED: &str = "The server understood the request but refuses to authorize it.";
/// How long an SSO session lives (each validation extends it).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Crowd's default `max-results`.
const DEFAULT_MAX_RESULTS: usize = 1000;

/// A user to add to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestUser {
    /// The user name.
    pub name: String,
    /// The password.
    pub password: String,
    /// `first-name`.
    pub first_name: String,
    /// `last-name`.
    pub last_name: String,
    /// `display-name`.
    pub display_name: String,
    /// `email` (may be empty).
    pub email: String,
    /// `active`.
    pub active: bool,
    /// Whether the password has expired (authentication then fails with `EXPIRED_CREDENTIAL`).
    pub expired_credential: bool,
}

impl TestUser {
    /// An active user `name` with `password`, display name `Name`, email `name@example.net`.
    pub fn new(name: &str, password: &str) -> Self {
        let mut chars = name.chars();
        let display_name: String = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        TestUser {
            name: name.to_owned(),
            password: password.to_owned(),
            first_name: display_name.clone(),
            last_name: "Tester".to_owned(),
            display_name,
            email: format!("{name}@example.net"),
            active: true,
            expired_credential: false,
        }
    }

    /// With `display-name`.
    pub fn display_name(mut self, display_name: &str) -> Self {
        self.display_name = display_name.to_owned();
        self
    }

    /// With `email` (empty for none).
    pub fn email(mut self, email: &str) -> Self {
        self.email = email.to_owned();
        self
    }

    /// Inactive (`active: false`).
    pub fn inactive(mut self) -> Self {
        self.active = false;
        self
    }

    /// With an expired password.
    pub fn expired_credential(mut self) -> Self {
        self.expired_credential = true;
        self
    }
}

/// A request the server received (before any check, so refused and hanging ones count too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`…
    pub method: String,
    /// The path, below [`API_PATH`] when it is under it (`/authentication`, `/user/group/nested`…).
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
}

#[derive(Debug)]
struct Group {
    name: String,
    description: String,
    /// Whether the group is active (what its entity's `active` says; search can filter on it).
    active: bool,
    /// Lower-cased names of the users that are direct members.
    users: BTreeSet<String>,
    /// Lower-cased names of the groups that are direct members (nested groups).
    groups: BTreeSet<String>,
}

#[derive(Debug)]
struct Session {
    /// Lower-cased user name.
    user: String,
    remote_address: Option<String>,
    created: SystemTime,
    expires: SystemTime,
}

#[derive(Debug)]
struct Directory {
    application_name: String,
    application_password: String,
    refuse_address: bool,
    hanging: bool,
    users: BTreeMap<String, TestUser>,
    groups: BTreeMap<String, Group>,
    sessions: HashMap<String, Session>,
    requests: Vec<RecordedRequest>,
    token_counter: u64,
}

impl Directory {
    fn user(&self, name: &str) -> Option<&TestUser> {
        self.users.get(&name.to_lowercase())
    }

    fn group_mut(&mut self, name: &str) -> &mut Group {
        self.groups
            .entry(name.to_lowercase())
            .or_insert_with(|| Group {
                name: name.to_owned(),
                description: format!("{name} (test group)"),
                active: true,
                users: BTreeSet::new(),
                groups: BTreeSet::new(),
            })
    }

    /// Lower-cased names of the user's direct groups.
    fn direct_groups(&self, user: &str) -> BTreeSet<String> {
        let user = user.to_lowercase();
        self.groups
            .iter()
            .filter(|(_, g)| g.users.contains(&user))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Lower-cased names of every group the user is in, directly or through nested groups (cycles are fine).
    fn nested_groups(&self, user: &str) -> BTreeSet<String> {
        let mut found = self.direct_groups(user);
        let mut queue: VecDeque<String> = found.iter().cloned().collect();
        while let Some(member) = queue.pop_front() {
            for (key, group) in &self.groups {
                if group.groups.contains(&member) && found.insert(key.clone()) {
                    queue.push_back(key.clone());
                }
            }
        }
        found
    }

    fn new_token(&mut self) -> String {
        self.token_counter += 1;
        let mut token = String::new();
        for i in 0..2u64 {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_u64(self.token_counter);
            hasher.write_u64(i);
            token.push_str(&format!("{:016x}", hasher.finish()));
        }
        token
    }

    fn create_session(&mut self, user: &str, remote_address: Option<String>) -> String {
        let token = self.new_token();
        let now = SystemTime::now();
        self.sessions.insert(
            token.clone(),
            Session {
                user: user.to_lowercase(),
                remote_address,
                created: now,
                expires: now + SESSION_LIFETIME,
            },
        );
        token
    }

    /// The session behind `token` if it is known, unexpired and its user still exists and is active.
    fn live_session(&self, token: &str) -> Option<&Session> {
        self.sessions.get(token).filter(|s| {
            s.expires > SystemTime::now() && self.user(&s.user).is_some_and(|u| u.active)
        })
    }
}

struct Shared {
    directory: Mutex<Directory>,
    address: SocketAddr,
    /// The accept loop (which owns the connections) while the server is up.
    running: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Directory> {
        self.directory.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn api_url(&self) -> String {
        format!("{}{API_PATH}", self.base_url())
    }
}

/// A running Crowd test server on `127.0.0.1`. Stops when dropped.
pub struct CrowdServer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CrowdServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrowdServer")
            .field("address", &self.shared.address)
            .finish_non_exhaustive()
    }
}

impl CrowdServer {
    /// Starts a server on a free loopback port that accepts the application [`APPLICATION_NAME`] with
    /// [`APPLICATION_PASSWORD`]. Needs a tokio runtime.
    pub async fn start() -> CrowdServer {
        Self::start_with_application(APPLICATION_NAME, APPLICATION_PASSWORD).await
    }

    /// Starts a server that accepts the application `name` with `password`.
    pub async fn start_with_application(name: &str, password: &str) -> CrowdServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a loopback port for the Crowd test server");
        let address = listener.local_addr().expect("the listener's address");
        let shared = Arc::new(Shared {
            directory: Mutex::new(Directory {
                application_name: name.to_owned(),
                application_password: password.to_owned(),
                refuse_address: false,
                hanging: false,
                users: BTreeMap::new(),
                groups: BTreeMap::new(),
                sessions: HashMap::new(),
                requests: Vec::new(),
                token_counter: 0,
            }),
            address,
            running: Mutex::new(None),
        });
        let task = tokio::spawn(serve(listener, router(shared.clone())));
        *shared.running.lock().unwrap() = Some(task);
        CrowdServer { shared }
    }

    /// `http://127.0.0.1:PORT`: Crowd's base URL, for idfed's configuration.
    pub fn base_url(&self) -> String {
        self.shared.base_url()
    }

    /// `http://127.0.0.1:PORT/rest/usermanagement/1`.
    pub fn api_url(&self) -> String {
        self.shared.api_url()
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.shared.address
    }

    /// The application name it accepts.
    pub fn application_name(&self) -> String {
        self.shared.lock().application_name.clone()
    }

    /// The application password it accepts.
    pub fn application_password(&self) -> String {
        self.shared.lock().application_password.clone()
    }

    /// Changes the application credentials it accepts.
    pub fn set_application(&self, name: &str, password: &str) {
        let mut d = self.shared.lock();
        d.application_name = name.to_owned();
        d.application_password = password.to_owned();
    }

    // ---- users ----

    /// Adds (or replaces) a user.
    pub fn add_user(&self, user: TestUser) {
        self.shared
            .lock()
            .users
            .insert(user.name.to_lowercase(), user);
    }

    /// Removes a user with their memberships and sessions.
    pub fn remove_user(&self, name: &str) {
        let key = name.to_lowercase();
        let mut d = self.shared.lock();
        d.users.remove(&key);
        for group in d.groups.values_mut() {
            group.users.remove(&key);
        }
        d.sessions.retain(|_, s| s.user != key);
    }

    /// Activates or deactivates a user.
    pub fn set_user_active(&self, name: &str, active: bool) {
        self.with_user(name, |u| u.active = active);
    }

    /// Marks a user's password expired (or not).
    pub fn set_credential_expired(&self, name: &str, expired: bool) {
        self.with_user(name, |u| u.expired_credential = expired);
    }

    /// Changes a user's password.
    pub fn set_password(&self, name: &str, password: &str) {
        self.with_user(name, |u| u.password = password.to_owned());
    }

    fn with_user(&self, name: &str, change: impl FnOnce(&mut TestUser)) {
        let mut d = self.shared.lock();
        let user = d
            .users
            .get_mut(&name.to_lowercase())
            .unwrap_or_else(|| panic!("no test user {name:?}"));
        change(user);
    }

    // ---- groups ----

    /// Adds a group (a no-op if it exists).
    pub fn add_group(&self, name: &str) {
        self.shared.lock().group_mut(name);
    }

    /// Makes `user` a direct member of `group` (created if missing).
    pub fn add_user_to_group(&self, user: &str, group: &str) {
        let mut d = self.shared.lock();
        assert!(d.user(user).is_some(), "no test user {user:?}");
        d.group_mut(group).users.insert(user.to_lowercase());
    }

    /// Makes the group `child` a member of the group `parent` (both created if missing): members of `child` are
    /// then members of `parent` too.
    pub fn add_group_to_group(&self, child: &str, parent: &str) {
        let mut d = self.shared.lock();
        d.group_mut(child);
        d.group_mut(parent).groups.insert(child.to_lowercase());
    }

    /// Ends `user`'s direct membership of `group`.
    pub fn remove_user_from_group(&self, user: &str, group: &str) {
        if let Some(g) = self.shared.lock().groups.get_mut(&group.to_lowercase()) {
            g.users.remove(&user.to_lowercase());
        }
    }

    /// Ends the group `child`'s membership of the group `parent`.
    pub fn remove_group_from_group(&self, child: &str, parent: &str) {
        if let Some(g) = self.shared.lock().groups.get_mut(&parent.to_lowercase()) {
            g.groups.remove(&child.to_lowercase());
        }
    }

    /// Activates or deactivates a group (created if missing). Memberships are unchanged: only what the group's
    /// entity says (`active`) and what a search restricted on `active` finds.
    pub fn set_group_active(&self, name: &str, active: bool) {
        self.shared.lock().group_mut(name).active = active;
    }

    /// Every group's name as spelled at creation, in the order a search answers them (by name, ignoring case).
    pub fn group_names(&self) -> Vec<String> {
        self.shared
            .lock()
            .groups
            .values()
            .map(|g| g.name.clone())
            .collect()
    }

    /// Removes a group and every membership of and in it.
    pub fn remove_group(&self, name: &str) {
        let key = name.to_lowercase();
        let mut d = self.shared.lock();
        d.groups.remove(&key);
        for group in d.groups.values_mut() {
            group.groups.remove(&key);
        }
    }

    /// The user's groups as the server resolves them (direct and nested), sorted, as spelled at creation.
    pub fn nested_groups_of(&self, user: &str) -> Vec<String> {
        let d = self.shared.lock();
        d.nested_groups(user)
            .iter()
            .map(|key| d.groups[key].name.clone())
            .collect()
    }

    // ---- SSO ----

    /// Creates an SSO session for `user` (as a login elsewhere would), bound to `remote_address` if given; the
    /// token.
    pub fn create_sso_token(&self, user: &str, remote_address: Option<&str>) -> String {
        let mut d = self.shared.lock();
        assert!(d.user(user).is_some(), "no test user {user:?}");
        d.create_session(user, remote_address.map(str::to_owned))
    }

    /// Ends an SSO session.
    pub fn end_sso_token(&self, token: &str) {
        self.shared.lock().sessions.remove(token);
    }

    /// Makes an SSO session expired.
    pub fn expire_sso_token(&self, token: &str) {
        if let Some(s) = self.shared.lock().sessions.get_mut(token) {
            s.expires = UNIX_EPOCH;
        }
    }

    // ---- faults ----

    /// Refuses (or again accepts) the application's address: every request gets a 403.
    pub fn refuse_application_address(&self, refuse: bool) {
        self.shared.lock().refuse_address = refuse;
    }

    /// Makes every request from now on hang: it is accepted and read, and never answered.
    pub fn set_hanging(&self, hanging: bool) {
        self.shared.lock().hanging = hanging;
    }

    /// Goes down: the port is closed and every open connection dropped. Returns when that is done.
    pub async fn go_down(&self) {
        let task = self.shared.running.lock().unwrap().take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Comes back up on the same port (with the same users, groups and sessions).
    pub async fn come_back(&self) -> std::io::Result<()> {
        let mut running = self.shared.running.lock().unwrap();
        if running.is_none() {
            // SO_REUSEADDR: the connections dropped when it went down may linger in TIME_WAIT on this port.
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(self.shared.address)?;
            let listener = socket.listen(1024)?;
            *running = Some(tokio::spawn(serve(listener, router(self.shared.clone()))));
        }
        Ok(())
    }

    /// Whether it is down ([`CrowdServer::go_down`]).
    pub fn is_down(&self) -> bool {
        self.shared.running.lock().unwrap().is_none()
    }

    // ---- requests ----

    /// How many requests it has received.
    pub fn request_count(&self) -> usize {
        self.shared.lock().requests.len()
    }

    /// The requests it has received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the requests received so far.
    pub fn reset_requests(&self) {
        self.shared.lock().requests.clear();
    }
}

impl Drop for CrowdServer {
    fn drop(&mut self) {
        if let Some(task) = self
            .shared
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// A base URL on loopback where nothing listens (a port that was just free).
pub fn closed_base_url() -> String {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}")
}

/// Accepts connections until aborted; the connections live in a `JoinSet` owned here, so aborting this task
/// drops them all and closes the port.
async fn serve(listener: TcpListener, app: Router) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
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
        .route(&format!("{API_PATH}/authentication"), post(authentication))
        .route(&format!("{API_PATH}/user"), get(user))
        .route(&format!("{API_PATH}/user/group/nested"), get(nested_groups))
        .route(&format!("{API_PATH}/user/group/direct"), get(direct_groups))
        .route(&format!("{API_PATH}/search"), get(search))
        .route(&format!("{API_PATH}/session"), post(create_session))
        .route(
            &format!("{API_PATH}/session/{{token}}"),
            post(validate_session).get(read_session).delete(end_session),
        )
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

/// Records the request, then: hanging, the application's credentials (401), its address (403), JSON (406/415).
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let uri = request.uri();
    let path = uri.path();
    let recorded = RecordedRequest {
        method: request.method().to_string(),
        path: path.strip_prefix(API_PATH).unwrap_or(path).to_owned(),
        query: uri.query().map(str::to_owned),
    };
    let (hanging, application_ok, refuse_address) = {
        let mut d = shared.lock();
        d.requests.push(recorded);
        let application_ok =
            basic_credentials(request.headers()).is_some_and(|(name, password)| {
                name == d.application_name && password == d.application_password
            });
        (d.hanging, application_ok, d.refuse_address)
    };
    if hanging {
        std::future::pending::<()>().await;
    }
    if !application_ok {
        return (
            StatusCode::UNAUTHORIZED,
            [
                (header::CONTENT_TYPE, "text/plain;charset=UTF-8"),
                (
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"Crowd REST Service\"",
                ),
            ],
            APPLICATION_AUTH_FAILED,
        )
            .into_response();
    }
    if refuse_address {
        return (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
            format!("HTTP Status 403 - {ADDRESS_REFUSED}"),
        )
            .into_response();
    }
    let accepts_json = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    if !accepts_json {
        return (
            StatusCode::NOT_ACCEPTABLE,
            "this Crowd test server answers JSON only: send Accept: application/json",
        )
            .into_response();
    }
    if request.method() == axum::http::Method::POST {
        let json_body = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json_body {
            return (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send Content-Type: application/json",
            )
                .into_response();
        }
    }
    next.run(request).await
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (name, password) = decoded.split_once(':')?;
    Some((name.to_owned(), password.to_owned()))
}

// ---- answers ----

fn json_response(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn error(status: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    json_response(status, json!({"reason": reason, "message": message.into()}))
}

fn illegal_argument(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "ILLEGAL_ARGUMENT", message)
}

fn user_not_found(status: StatusCode, name: &str) -> Response {
    error(
        status,
        "USER_NOT_FOUND",
        format!("User <{name}> does not exist"),
    )
}

fn invalid_token() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "INVALID_SSO_TOKEN",
        "Token does not validate.",
    )
}

/// Percent-encodes a query value for a `link`.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn link(href: String, rel: &str) -> Value {
    json!({"href": href, "rel": rel})
}

fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

fn user_entity(api: &str, user: &TestUser) -> Value {
    let name = encode(&user.name);
    json!({
        "expand": "attributes",
        "link": link(format!("{api}/user?username={name}"), "self"),
        "name": user.name,
        "first-name": user.first_name,
        "last-name": user.last_name,
        "display-name": user.display_name,
        "email": user.email,
        "password": {"link": link(format!("{api}/user/password?username={name}"), "edit")},
        "active": user.active,
        "attributes": {
            "attributes": [],
            "link": link(format!("{api}/user/attribute?username={name}"), "self"),
        },
    })
}

fn user_reference(api: &str, user: &TestUser) -> Value {
    json!({
        "link": link(format!("{api}/user?username={}", encode(&user.name)), "self"),
        "name": user.name,
    })
}

fn group_entity(api: &str, group: &Group, expand: bool) -> Value {
    let href = format!("{api}/group?groupname={}", encode(&group.name));
    if expand {
        json!({
            "link": link(href.clone(), "self"),
            "name": group.name,
            "description": group.description,
            "type": "GROUP",
            "active": group.active,
            "attributes": {"link": link(format!("{api}/group/attribute?groupname={}", encode(&group.name)), "self")},
        })
    } else {
        json!({"link": link(href, "self"), "name": group.name})
    }
}

fn session_entity(
    api: &str,
    token: &str,
    session: &Session,
    user: &TestUser,
    expand_user: bool,
) -> Value {
    json!({
        "expand": "user",
        "token": token,
        "user": if expand_user { user_entity(api, user) } else { user_reference(api, user) },
        "link": link(format!("{api}/session/{token}"), "self"),
        "created-date": millis(session.created),
        "expiry-date": millis(session.expires),
    })
}

/// `expand=a,b` or repeated `expand`s.
fn expands(query: &[(String, String)], what: &str) -> bool {
    query
        .iter()
        .filter(|(k, _)| k == "expand")
        .flat_map(|(_, v)| v.split(','))
        .any(|v| v.trim() == what)
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A reason-coded error, as Crowd's `ErrorEntity`, before it becomes a response.
struct CrowdError {
    status: StatusCode,
    reason: &'static str,
    message: String,
}

impl CrowdError {
    fn bad_request(reason: &'static str, message: String) -> Self {
        CrowdError {
            status: StatusCode::BAD_REQUEST,
            reason,
            message,
        }
    }
}

impl IntoResponse for CrowdError {
    fn into_response(self) -> Response {
        error(self.status, self.reason, self.message)
    }
}

fn parse_body(body: &Bytes) -> Result<Value, CrowdError> {
    serde_json::from_slice(body).map_err(|e| {
        CrowdError::bad_request("ILLEGAL_ARGUMENT", format!("unreadable JSON body: {e}"))
    })
}

/// Checks a password the way Crowd does: unknown, inactive, wrong password, expired. The user on success.
fn check_password(d: &Directory, name: &str, password: &str) -> Result<TestUser, CrowdError> {
    let Some(user) = d.user(name) else {
        return Err(CrowdError::bad_request(
            "USER_NOT_FOUND",
            format!("User <{name}> does not exist"),
        ));
    };
    if !user.active {
        return Err(CrowdError::bad_request(
            "INACTIVE_ACCOUNT",
            format!("Account with name <{}> is inactive", user.name),
        ));
    }
    if user.password != password {
        return Err(CrowdError::bad_request(
            "INVALID_USER_AUTHENTICATION",
            "Failed to authenticate principal, password was invalid".into(),
        ));
    }
    if user.expired_credential {
        return Err(CrowdError::bad_request(
            "EXPIRED_CREDENTIAL",
            format!("The password of <{}> has expired", user.name),
        ));
    }
    Ok(user.clone())
}

/// The `remote_address` factor of `{"validationFactors": [...]}` (also accepts the v602 doc's `validation-factor`).
fn remote_address(factors: Option<&Value>) -> Option<String> {
    let list = factors?;
    let list = list
        .get("validationFactors")
        .or_else(|| list.get("validation-factor"))?
        .as_array()?;
    list.iter()
        .find(|f| f.get("name").and_then(Value::as_str) == Some("remote_address"))
        .and_then(|f| f.get("value")?.as_str().map(str::to_owned))
}

// ---- handlers ----

type QueryList = Query<Vec<(String, String)>>;

async fn authentication(
    State(shared): State<Arc<Shared>>,
    Query(query): QueryList,
    body: Bytes,
) -> Response {
    let Some(name) = param(&query, "username").filter(|n| !n.is_empty()) else {
        return illegal_argument("username must be specified");
    };
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let Some(password) = body.get("value").and_then(Value::as_str) else {
        return illegal_argument("the password entity needs a value");
    };
    let d = shared.lock();
    match check_password(&d, name, password) {
        Ok(user) => json_response(StatusCode::OK, user_entity(&shared.api_url(), &user)),
        Err(e) => e.into_response(),
    }
}

async fn user(State(shared): State<Arc<Shared>>, Query(query): QueryList) -> Response {
    let Some(name) = param(&query, "username").filter(|n| !n.is_empty()) else {
        return illegal_argument("username must be specified");
    };
    let d = shared.lock();
    match d.user(name) {
        Some(user) => json_response(StatusCode::OK, user_entity(&shared.api_url(), user)),
        None => user_not_found(StatusCode::NOT_FOUND, name),
    }
}

async fn nested_groups(state: State<Arc<Shared>>, query: QueryList) -> Response {
    memberships(state, query, true)
}

async fn direct_groups(state: State<Arc<Shared>>, query: QueryList) -> Response {
    memberships(state, query, false)
}

fn memberships(
    State(shared): State<Arc<Shared>>,
    Query(query): QueryList,
    nested: bool,
) -> Response {
    let Some(name) = param(&query, "username").filter(|n| !n.is_empty()) else {
        return illegal_argument("username must be specified");
    };
    let (start, max) = match paging(&query) {
        Ok(paging) => paging,
        Err(e) => return e.into_response(),
    };
    let d = shared.lock();
    if d.user(name).is_none() {
        return user_not_found(StatusCode::NOT_FOUND, name);
    }
    let keys = if nested {
        d.nested_groups(name)
    } else {
        d.direct_groups(name)
    };
    let api = shared.api_url();
    let expand = expands(&query, "group");
    let groups: Vec<Value> = keys
        .iter()
        .skip(start)
        .take(max)
        .map(|key| group_entity(&api, &d.groups[key], expand))
        .collect();
    json_response(StatusCode::OK, json!({"expand": "group", "groups": groups}))
}

/// `start-index` (default 0) and `max-results` (default [`DEFAULT_MAX_RESULTS`]; -1 for all).
fn paging(query: &[(String, String)]) -> Result<(usize, usize), CrowdError> {
    let Ok(start) = param(query, "start-index").unwrap_or("0").parse::<usize>() else {
        return Err(CrowdError::bad_request(
            "ILLEGAL_ARGUMENT",
            "start-index must be a number of 0 or more".into(),
        ));
    };
    let max = match param(query, "max-results") {
        None => DEFAULT_MAX_RESULTS,
        Some(v) => match v.parse::<i64>() {
            Ok(-1) => usize::MAX,
            Ok(n) if n >= 0 => n as usize,
            _ => {
                return Err(CrowdError::bad_request(
                    "ILLEGAL_ARGUMENT",
                    "max-results must be a number of -1 or more".into(),
                ));
            }
        },
    };
    Ok((start, max))
}

/// The one CQL restriction this server understands: `active=true|false` (spaces and the value's case are free).
/// `None` for no restriction.
fn active_restriction(query: &[(String, String)]) -> Result<Option<bool>, CrowdError> {
    let Some(restriction) = param(query, "restriction").map(str::trim) else {
        return Ok(None);
    };
    if restriction.is_empty() {
        return Ok(None);
    }
    let parsed = match restriction.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("active") => {
            match value.trim().trim_matches('"').to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }
        }
        _ => None,
    };
    match parsed {
        Some(active) => Ok(Some(active)),
        None => Err(CrowdError::bad_request(
            "ILLEGAL_ARGUMENT",
            format!(
                "this test server understands only the restrictions active=true and active=false, not {restriction:?}"
            ),
        )),
    }
}

/// `GET /search?entity-type=group|user`: every group (or user), sorted by name ignoring case, paged.
async fn search(State(shared): State<Arc<Shared>>, Query(query): QueryList) -> Response {
    let entity_type = param(&query, "entity-type").unwrap_or("");
    let groups = if entity_type.eq_ignore_ascii_case("group") {
        true
    } else if entity_type.eq_ignore_ascii_case("user") {
        false
    } else {
        return illegal_argument("entity-type must be user or group");
    };
    let (start, max) = match paging(&query) {
        Ok(paging) => paging,
        Err(e) => return e.into_response(),
    };
    let active = match active_restriction(&query) {
        Ok(active) => active,
        Err(e) => return e.into_response(),
    };
    let d = shared.lock();
    let api = shared.api_url();
    if groups {
        let expand = expands(&query, "group");
        let found: Vec<Value> = d
            .groups
            .values()
            .filter(|g| active.is_none_or(|a| g.active == a))
            .skip(start)
            .take(max)
            .map(|g| group_entity(&api, g, expand))
            .collect();
        json_response(StatusCode::OK, json!({"expand": "group", "groups": found}))
    } else {
        let expand = expands(&query, "user");
        let found: Vec<Value> = d
            .users
            .values()
            .filter(|u| active.is_none_or(|a| u.active == a))
            .skip(start)
            .take(max)
            .map(|u| {
                if expand {
                    user_entity(&api, u)
                } else {
                    user_reference(&api, u)
                }
            })
            .collect();
        json_response(StatusCode::OK, json!({"expand": "user", "users": found}))
    }
}

async fn create_session(
    State(shared): State<Arc<Shared>>,
    Query(query): QueryList,
    body: Bytes,
) -> Response {
    let validate_password = match param(&query, "validate-password") {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(_) => return illegal_argument("validate-password must be true or false"),
    };
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let Some(name) = body.get("username").and_then(Value::as_str) else {
        return illegal_argument("username must be specified");
    };
    let mut d = shared.lock();
    let user = if validate_password {
        let password = body.get("password").and_then(Value::as_str).unwrap_or("");
        match check_password(&d, name, password) {
            Ok(user) => user,
            Err(e) => return e.into_response(),
        }
    } else {
        match d.user(name) {
            Some(user) if user.active => user.clone(),
            Some(user) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "INACTIVE_ACCOUNT",
                    format!("Account with name <{}> is inactive", user.name),
                );
            }
            None => return user_not_found(StatusCode::BAD_REQUEST, name),
        }
    };
    let address = remote_address(body.get("validation-factors"));
    let token = d.create_session(&user.name, address);
    let api = shared.api_url();
    let entity = session_entity(&api, &token, &d.sessions[&token], &user, false);
    let mut response = json_response(StatusCode::CREATED, entity);
    if let Ok(location) = HeaderValue::from_str(&format!("{api}/session/{token}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

async fn validate_session(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    Query(query): QueryList,
    body: Bytes,
) -> Response {
    let body = match parse_body(&body) {
        Ok(body) => body,
        Err(e) => return e.into_response(),
    };
    let supplied = remote_address(Some(&body));
    let mut d = shared.lock();
    let Some(session) = d.live_session(&token) else {
        return invalid_token();
    };
    // The factors must be those the session was created with.
    if session.remote_address.is_some() && session.remote_address != supplied {
        return invalid_token();
    }
    let user = d
        .user(&session.user)
        .cloned()
        .expect("live sessions have users");
    let session = d.sessions.get_mut(&token).expect("live");
    session.expires = SystemTime::now() + SESSION_LIFETIME;
    let entity = session_entity(
        &shared.api_url(),
        &token,
        session,
        &user,
        expands(&query, "user"),
    );
    json_response(StatusCode::OK, entity)
}

async fn read_session(
    State(shared): State<Arc<Shared>>,
    Path(token): Path<String>,
    Query(query): QueryList,
) -> Response {
    let d = shared.lock();
    let Some(session) = d.live_session(&token) else {
        return invalid_token();
    };
    let user = d.user(&session.user).expect("live sessions have users");
    let entity = session_entity(
        &shared.api_url(),
        &token,
        session,
        user,
        expands(&query, "user"),
    );
    json_response(StatusCode::OK, entity)
}

async fn end_session(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    shared.lock().sessions.remove(&token);
    StatusCode::NO_CONTENT.into_response()
}
