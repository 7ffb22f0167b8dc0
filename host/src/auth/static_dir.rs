//! A static directory: people listed in a TOML file, for local use, demos and tests.
//!
//! ```toml
//! # users.toml — keep it 0600: it holds password hashes.
//! [[users]]
//! name = "alice"                           # required, unique, compared as written
//! display_name = "Alice Example"           # optional; the name when omitted
//! email = "alice@example.com"              # optional
//! active = true                            # optional; true when omitted
//! groups = ["aws-admins", "developers"]    # optional; flat, compared as written
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$...$..."   # required: an argon2id PHC string
//!
//! [[users]]
//! name = "bob"
//! groups = ["developers"]
//! active = false
//! password_hash = "$argon2id$v=19$m=19456,t=2,p=1$...$..."
//! ```
//!
//! `idfed user add NAME --file users.toml` writes entries (see [`add_user`] and [`hash_password`]); the file
//! may also be written by hand. [`StaticDirectory::load`] refuses unknown keys, an empty name, a name with
//! surrounding white space, two users whose names are equal ignoring case, an empty group name and a hash
//! that is not a valid argon2id PHC string, naming the file, the user and what is wrong.
//!
//! The directory notices a changed file by itself: at most every [`RELOAD_CHECK_INTERVAL`] (when it is
//! asked something) it looks at the file's modification time, size and inode, and reloads when one of them
//! changed. A file that no longer loads is reported in the log and the users loaded before are kept.
//! [`StaticDirectory::reload`] reloads at once.
//!
//! [`Directory::list_groups`] names every group any user of the file lists (inactive users included), sorted.
//!
//! Authentication takes the same time, and gives the same [`AuthError::InvalidCredentials`], for an unknown
//! user (checked against a fixed dummy hash), a wrong password and an inactive account. Hashes are checked
//! on tokio's blocking pool, at most as many at once as the machine has cores. Neither passwords nor hashes
//! are ever logged or shown: [`UserEntry`]'s `Debug` leaves the hash out.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use argon2::{ARGON2ID_IDENT, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::{AuthError, Directory, Person, sort_group_names};
use crate::secret::Secret;
use crate::sts::BoxFuture;

/// How often, at most, the file is looked at for changes.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// An argon2id hash, with [`hash_password`]'s parameters, of a random password that was thrown away:
/// unknown users are checked against it so that they take as long as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$sBT+0+kgKWWQKIOUP/73hg$V0lNf81kVNg/hgi98/kJB65EVK6g1Ncw/ahazWoEj9A";

/// One user of the file.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The user name.
    pub name: String,
    /// A name for people; the user name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Their email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the account may log in.
    #[serde(default = "yes")]
    pub active: bool,
    /// Their groups (flat).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The argon2id PHC string of their password.
    pub password_hash: String,
}

fn yes() -> bool {
    true
}

impl UserEntry {
    /// The display name, or the user name when there is none.
    pub fn display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    /// The person this entry describes.
    pub fn person(&self) -> Person {
        Person {
            name: self.name.clone(),
            display_name: self.display_name().to_owned(),
            email: self.email.clone(),
            active: self.active,
            groups: self.groups.clone(),
        }
    }
}

/// The hash is left out.
impl std::fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserEntry")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("email", &self.email)
            .field("active", &self.active)
            .field("groups", &self.groups)
            .field("password_hash", &"***")
            .finish()
    }
}

/// The file as a whole.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: Vec<UserEntry>,
}

/// What went wrong with a users file. Messages name the file and never contain a password or a hash.
#[derive(Debug, thiserror::Error)]
pub enum StaticDirError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("{}: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column.
        message: String,
    },
    /// An entry breaks a rule (an empty or duplicate name, a bad hash, ...).
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the user.
        message: String,
    },
    /// The user exists and replacing was not asked for.
    #[error("{}: user {name:?} already exists (use --replace to replace it)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
        /// The user.
        name: String,
    },
    /// Hashing a password failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// Hashes a password for the file: argon2id, version 19, argon2's default (OWASP-recommended) costs
/// (19 MiB, 2 passes, 1 lane), a random 16-byte salt. The result is a PHC string.
pub fn hash_password(password: &Secret) -> Result<String, StaticDirError> {
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| StaticDirError::Hash(e.to_string()))
}

/// Reads and checks a users file (every rule [`StaticDirectory::load`] applies).
pub fn read_users(path: &Path) -> Result<Vec<UserEntry>, StaticDirError> {
    let text = fs::read_to_string(path).map_err(|source| StaticDirError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_users(path, &text)
}

/// Whether [`add_user`] added a new user or replaced one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// The name was new.
    Added,
    /// A user of that name was replaced.
    Replaced,
}

/// Writes `entry` to the users file at `path`, creating it (mode 0600) when missing. A user of the same name
/// is replaced only when `replace` is set; otherwise that is [`StaticDirError::Exists`]. The entry and the
/// resulting file are checked like [`StaticDirectory::load`] checks them. The file is written atomically
/// (a temporary file in the same directory, synced, then renamed over it) and keeps its permissions. A new
/// user is appended to the existing text, so comments and layout survive; replacing rewrites the file.
pub fn add_user(
    path: &Path,
    entry: UserEntry,
    replace: bool,
) -> Result<AddOutcome, StaticDirError> {
    let existing = match fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(StaticDirError::Io {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut users = match &existing {
        Some(text) => parse_users(path, text)?,
        None => Vec::new(),
    };
    check_entry(path, &entry)?;
    let position = users.iter().position(|u| u.name == entry.name);
    if position.is_some() && !replace {
        return Err(StaticDirError::Exists {
            path: path.to_owned(),
            name: entry.name,
        });
    }
    let outcome = if position.is_some() {
        AddOutcome::Replaced
    } else {
        AddOutcome::Added
    };
    let serialize = |file: &UsersFile| {
        toml::to_string(file).map_err(|e| StaticDirError::Invalid {
            path: path.to_owned(),
            message: format!("cannot write the users: {e}"),
        })
    };
    // A new user goes at the end of the text as it is; when that does not give the same users (an inline
    // `users = [...]` array, say), or when replacing, the file is written afresh.
    let appended = match (&existing, position) {
        (Some(text), None) => {
            let mut text = text.clone();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&serialize(&UsersFile {
                users: vec![entry.clone()],
            })?);
            let mut expected = users.clone();
            expected.push(entry.clone());
            match parse_users(path, &text) {
                Ok(parsed) if parsed == expected => Some(text),
                _ => None,
            }
        }
        _ => None,
    };
    let text = match appended {
        Some(text) => text,
        None => {
            match position {
                Some(i) => users[i] = entry,
                None => users.push(entry),
            }
            let text = serialize(&UsersFile { users })?;
            parse_users(path, &text)?;
            text
        }
    };
    write_atomically(path, text.as_bytes())?;
    Ok(outcome)
}

/// Writes `path` through a temporary file in the same directory, renamed over it.
fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), StaticDirError> {
    let io = |source| StaticDirError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io(std::io::Error::other("not a file name")))?
        .to_string_lossy()
        .into_owned();
    let mode = match fs::metadata(path) {
        Ok(meta) => Some(meta.permissions()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(e)),
    };
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| io(std::io::Error::other(e.to_string())))?;
    let temp = dir.join(format!(".{file_name}.{}.tmp", hex::encode(suffix)));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&temp)?;
        if let Some(permissions) = mode {
            file.set_permissions(permissions)?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)?;
        // The rename itself is durable once the directory is synced (best effort: not every platform can).
        if let Ok(dir) = File::open(&dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(io)
}

fn parse_users(path: &Path, text: &str) -> Result<Vec<UserEntry>, StaticDirError> {
    let file: UsersFile = toml::from_str(text).map_err(|e| StaticDirError::Syntax {
        path: path.to_owned(),
        // The message and position only: toml's own rendering quotes the line, which may hold a hash.
        message: match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                format!("line {line}, column {column}: {}", e.message().trim_end())
            }
            None => e.message().trim_end().to_owned(),
        },
    })?;
    let mut seen = HashSet::new();
    for user in &file.users {
        check_entry(path, user)?;
        if !seen.insert(user.name.to_lowercase()) {
            return Err(StaticDirError::Invalid {
                path: path.to_owned(),
                message: format!(
                    "user {:?} is listed twice (names that differ only in case count as the same)",
                    user.name
                ),
            });
        }
    }
    Ok(file.users)
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The rules for one entry.
fn check_entry(path: &Path, user: &UserEntry) -> Result<(), StaticDirError> {
    let invalid = |message: String| StaticDirError::Invalid {
        path: path.to_owned(),
        message,
    };
    if user.name.is_empty() {
        return Err(invalid("a user has an empty name".to_owned()));
    }
    if user.name.trim() != user.name || user.name.chars().any(char::is_control) {
        return Err(invalid(format!(
            "user {:?}: the name has surrounding white space or control characters",
            user.name
        )));
    }
    if user.groups.iter().any(|g| g.trim().is_empty()) {
        return Err(invalid(format!(
            "user {:?}: a group name is empty",
            user.name
        )));
    }
    check_hash(&user.password_hash)
        .map_err(|why| invalid(format!("user {:?}: password_hash {why}", user.name)))
}

/// Whether `hash` is an argon2id PHC string argon2 can check against. The reason never quotes the hash.
fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| format!("is not a valid PHC string ({e}); make one with `idfed user add`"))?;
    if parsed.algorithm.as_str() != ARGON2ID_IDENT.as_str() {
        return Err(format!(
            "uses {}, not argon2id; make one with `idfed user add`",
            parsed.algorithm.as_str()
        ));
    }
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("has no salt or no hash output".to_owned());
    }
    Params::try_from(&parsed).map_err(|e| format!("has invalid argon2 parameters ({e})"))?;
    if let Some(version) = parsed.version {
        argon2::Version::try_from(version)
            .map_err(|e| format!("has an unknown argon2 version ({e})"))?;
    }
    Ok(())
}

/// What identifies a version of the file without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(path: &Path) -> std::io::Result<FileStamp> {
        let meta = fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

struct State {
    users: Arc<HashMap<String, UserEntry>>,
    stamp: Option<FileStamp>,
    checked_at: Instant,
}

/// A [`Directory`] over a users file (see the module documentation for its format).
pub struct StaticDirectory {
    path: PathBuf,
    state: Mutex<State>,
    /// `None`: never look at the file again by itself.
    check_interval: Option<Duration>,
    /// Bounds the password checks running at once (each takes 19 MiB and a core for a while).
    verifying: Arc<Semaphore>,
}

impl std::fmt::Debug for StaticDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticDirectory")
            .field("path", &self.path)
            .field("users", &self.users().len())
            .finish_non_exhaustive()
    }
}

impl StaticDirectory {
    /// Loads the users file at `path`; it is looked at again for changes at most every
    /// [`RELOAD_CHECK_INTERVAL`].
    pub fn load(path: impl Into<PathBuf>) -> Result<Self, StaticDirError> {
        let path = path.into();
        let (users, stamp) = Self::read(&path)?;
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(StaticDirectory {
            path,
            state: Mutex::new(State {
                users: Arc::new(users),
                stamp,
                checked_at: Instant::now(),
            }),
            check_interval: Some(RELOAD_CHECK_INTERVAL),
            verifying: Arc::new(Semaphore::new(parallel)),
        })
    }

    /// How often, at most, to look at the file for changes; `None` to never reload by itself.
    pub fn with_reload_interval(mut self, interval: Option<Duration>) -> Self {
        self.check_interval = interval;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The users now loaded, sorted by name.
    pub fn users(&self) -> Vec<Person> {
        let users = self.lock().users.clone();
        let mut people: Vec<Person> = users.values().map(UserEntry::person).collect();
        people.sort_by(|a, b| a.name.cmp(&b.name));
        people
    }

    /// Reads the file again now; the number of users. When it fails, the users loaded before are kept.
    pub fn reload(&self) -> Result<usize, StaticDirError> {
        let (users, stamp) = Self::read(&self.path)?;
        let count = users.len();
        let mut state = self.lock();
        state.users = Arc::new(users);
        state.stamp = stamp;
        state.checked_at = Instant::now();
        Ok(count)
    }

    fn read(
        path: &Path,
    ) -> Result<(HashMap<String, UserEntry>, Option<FileStamp>), StaticDirError> {
        // The stamp is taken first: a change made while reading is seen at the next check.
        let stamp = FileStamp::of(path).ok();
        let users = read_users(path)?;
        Ok((
            users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            stamp,
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is replaced whole, never left half-updated: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The users, reloaded first when the check interval has passed and the file changed.
    fn current(&self) -> Arc<HashMap<String, UserEntry>> {
        let (users, previous) = {
            let mut state = self.lock();
            let due = self
                .check_interval
                .is_some_and(|interval| state.checked_at.elapsed() >= interval);
            if !due {
                return state.users.clone();
            }
            state.checked_at = Instant::now();
            (state.users.clone(), state.stamp.clone())
        };
        let stamp = FileStamp::of(&self.path).ok();
        if stamp == previous {
            return users;
        }
        match Self::read(&self.path) {
            Ok((fresh, stamp)) => {
                tracing::info!(file = %self.path.display(), users = fresh.len(), "static directory reloaded");
                let fresh = Arc::new(fresh);
                let mut state = self.lock();
                state.users = fresh.clone();
                state.stamp = stamp;
                fresh
            }
            Err(e) => {
                // Reported once per change of the file; the users loaded before stay.
                tracing::warn!(error = %e, "static directory not reloaded; keeping the users loaded before");
                self.lock().stamp = stamp;
                users
            }
        }
    }
}

impl Directory for StaticDirectory {
    fn kind(&self) -> &'static str {
        "static"
    }

    fn authenticate<'a>(
        &'a self,
        user: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<Person, AuthError>> {
        Box::pin(async move {
            let users = self.current();
            let entry = users.get(user).cloned();
            // Unknown users are checked against the dummy hash, so that every path costs one argon2 check.
            let hash = entry
                .as_ref()
                .map_or_else(|| DUMMY_HASH.to_owned(), |e| e.password_hash.clone());
            let password = password.clone();
            let _permit =
                self.verifying.clone().acquire_owned().await.map_err(|_| {
                    AuthError::Unavailable("password checks are shut down".to_owned())
                })?;
            let verified = tokio::task::spawn_blocking(move || {
                Argon2::default().verify_password(password.expose().as_bytes(), hash.as_str())
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "password check did not finish");
                AuthError::Unavailable("the password check failed".to_owned())
            })?;
            match (entry, verified) {
                (Some(entry), Ok(())) if entry.active => Ok(entry.person()),
                (Some(entry), Ok(())) => {
                    tracing::info!(user = %entry.name, "login refused: the account is inactive");
                    Err(AuthError::InvalidCredentials)
                }
                (Some(_), Err(argon2::password_hash::Error::PasswordInvalid)) => {
                    tracing::info!(user, "login refused: wrong password");
                    Err(AuthError::InvalidCredentials)
                }
                (Some(_), Err(e)) => {
                    tracing::warn!(user, error = %e, "login refused: the stored hash cannot be checked");
                    Err(AuthError::InvalidCredentials)
                }
                (None, _) => {
                    tracing::info!(user, "login refused: unknown user");
                    Err(AuthError::InvalidCredentials)
                }
            }
        })
    }

    fn groups<'a>(&'a self, user: &'a str) -> BoxFuture<'a, Result<Vec<String>, AuthError>> {
        Box::pin(async move {
            match self.current().get(user) {
                Some(entry) if entry.active => Ok(entry.groups.clone()),
                _ => Err(AuthError::InvalidCredentials),
            }
        })
    }

    /// Every group some user of the file (active or not) lists: the file's groups are flat, so there are no
    /// other groups to name. Duplicates are dropped as written (`Dev` and `dev` are two entries).
    fn list_groups<'a>(&'a self, limit: usize) -> BoxFuture<'a, Result<Vec<String>, AuthError>> {
        Box::pin(async move {
            let users = self.current();
            let mut groups: Vec<String> = users
                .values()
                .flat_map(|user| user.groups.iter().cloned())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            sort_group_names(&mut groups);
            groups.truncate(limit);
            Ok(groups)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap hashes for tests (the real costs are for real passwords).
    fn quick_hash(password: &str) -> String {
        let params = Params::new(256, 1, 1, None).unwrap();
        Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(password.as_bytes())
            .unwrap()
            .to_string()
    }

    fn entry(name: &str, password: &str) -> UserEntry {
        UserEntry {
            name: name.to_owned(),
            display_name: Some(format!("{name} Example")),
            email: Some(format!("{name}@example.com")),
            active: true,
            groups: vec!["developers".to_owned(), "Aws-Admins".to_owned()],
            password_hash: quick_hash(password),
        }
    }

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("users.toml");
        fs::write(&path, text).unwrap();
        path
    }

    fn file_of(users: &[UserEntry]) -> String {
        toml::to_string(&UsersFile {
            users: users.to_vec(),
        })
        .unwrap()
    }

    #[test]
    fn the_dummy_hash_has_the_default_costs() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        let params = Params::try_from(&parsed).unwrap();
        let defaults = Params::default();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (defaults.m_cost(), defaults.t_cost(), defaults.p_cost())
        );
        check_hash(DUMMY_HASH).unwrap();
    }

    #[test]
    fn hash_password_makes_an_argon2id_phc_string_that_verifies() {
        let secret = Secret::new("correct horse battery staple");
        let hash = hash_password(&secret).unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        check_hash(&hash).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery staple", hash.as_str())
                .is_ok()
        );
        assert_ne!(hash, hash_password(&secret).unwrap(), "salted");
    }

    #[tokio::test]
    async fn authenticates_and_refuses_alike() {
        let dir = tempfile::tempdir().unwrap();
        let mut carol = entry("carol", "carol-password");
        carol.active = false;
        let path = write(
            dir.path(),
            &file_of(&[entry("alice", "alice-password"), carol]),
        );
        let directory = StaticDirectory::load(&path).unwrap();
        assert_eq!(directory.kind(), "static");

        let alice = directory
            .authenticate("alice", &Secret::new("alice-password"))
            .await
            .unwrap();
        assert_eq!(
            alice,
            Person {
                name: "alice".into(),
                display_name: "alice Example".into(),
                email: Some("alice@example.com".into()),
                active: true,
                groups: vec!["developers".into(), "Aws-Admins".into()],
            }
        );
        for (user, password) in [
            ("alice", "wrong"),
            ("alice", ""),
            ("Alice", "alice-password"),
            ("nobody", "alice-password"),
            ("carol", "carol-password"),
        ] {
            assert_eq!(
                directory.authenticate(user, &Secret::new(password)).await,
                Err(AuthError::InvalidCredentials),
                "{user}"
            );
        }
        assert_eq!(
            directory.groups("alice").await.unwrap(),
            vec!["developers".to_owned(), "Aws-Admins".to_owned()]
        );
        assert_eq!(
            directory.groups("carol").await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(
            directory.groups("nobody").await,
            Err(AuthError::InvalidCredentials)
        );
        let token = Secret::new("t");
        assert_eq!(
            directory.validate_sso_token(&token, None).await,
            Err(AuthError::Unsupported)
        );
    }

    #[tokio::test]
    async fn lists_every_group_of_the_file_sorted_without_duplicates_up_to_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        // alice: developers, Aws-Admins; bob (inactive): ops, developers; carol: aws-admins, Zeta; dave: none.
        let mut bob = entry("bob", "bob-password");
        bob.active = false;
        bob.groups = vec!["ops".into(), "developers".into()];
        let mut carol = entry("carol", "carol-password");
        carol.groups = vec!["aws-admins".into(), "Zeta".into()];
        let mut dave = entry("dave", "dave-password");
        dave.groups.clear();
        let path = write(
            dir.path(),
            &file_of(&[entry("alice", "alice-password"), bob, carol, dave]),
        );
        let directory = StaticDirectory::load(&path)
            .unwrap()
            .with_reload_interval(None);
        let all = ["Aws-Admins", "aws-admins", "developers", "ops", "Zeta"];
        assert_eq!(directory.list_groups(100).await.unwrap(), all);
        assert_eq!(directory.list_groups(5).await.unwrap(), all);
        assert_eq!(directory.list_groups(3).await.unwrap(), all[..3]);
        assert!(directory.list_groups(0).await.unwrap().is_empty());

        // A reloaded file is listed as it is now; a file of nobody has no groups.
        fs::write(&path, file_of(&[entry("erin", "erin-password")])).unwrap();
        directory.reload().unwrap();
        assert_eq!(
            directory.list_groups(100).await.unwrap(),
            ["Aws-Admins", "developers"]
        );
        fs::write(&path, "").unwrap();
        directory.reload().unwrap();
        assert!(directory.list_groups(100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn unknown_users_cost_one_full_argon2_check() {
        // With real costs, an unknown user takes as long as a wrong password (both check one hash).
        let dir = tempfile::tempdir().unwrap();
        let mut alice = entry("alice", "x");
        alice.password_hash = hash_password(&Secret::new("alice-password")).unwrap();
        let path = write(dir.path(), &file_of(&[alice]));
        let directory = StaticDirectory::load(&path).unwrap();
        let time = |user: &'static str| {
            let directory = &directory;
            async move {
                let started = Instant::now();
                let result = directory
                    .authenticate(user, &Secret::new("guess-guess"))
                    .await;
                assert_eq!(result, Err(AuthError::InvalidCredentials));
                started.elapsed()
            }
        };
        // Warm up, then compare the best of three each.
        time("alice").await;
        let mut known = Duration::MAX;
        let mut unknown = Duration::MAX;
        for _ in 0..3 {
            known = known.min(time("alice").await);
            unknown = unknown.min(time("nobody").await);
        }
        let ratio = unknown.as_secs_f64() / known.as_secs_f64();
        assert!(
            (0.3..3.0).contains(&ratio),
            "known {known:?}, unknown {unknown:?}"
        );
    }

    #[test]
    fn the_format_documented_loads_with_its_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let hash = quick_hash("pw");
        let path = write(
            dir.path(),
            &format!(
                "# people\n[[users]]\nname = \"alice\"\ndisplay_name = \"Alice Example\"\nemail = \"alice@example.com\"\n\
                 active = true\ngroups = [\"aws-admins\", \"developers\"]\npassword_hash = \"{hash}\"\n\n\
                 [[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\n"
            ),
        );
        let directory = StaticDirectory::load(&path).unwrap();
        let users = directory.users();
        assert_eq!(users.len(), 2);
        assert_eq!(users[0].display_name, "Alice Example");
        assert_eq!(users[1].name, "bob");
        assert_eq!(users[1].display_name, "bob");
        assert!(users[1].active);
        assert!(users[1].groups.is_empty());
        assert_eq!(users[1].email, None);
        // An empty file is a directory with nobody in it.
        let empty = write(dir.path(), "");
        assert!(StaticDirectory::load(&empty).unwrap().users().is_empty());
    }

    #[test]
    fn bad_files_are_refused_with_the_file_and_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let hash = quick_hash("pw");
        let cases = [
            (
                format!("[[users]]\nname = \"\"\npassword_hash = \"{hash}\"\n"),
                "empty name",
            ),
            (
                format!(
                    "[[users]]\nname = \"a\"\npassword_hash = \"{hash}\"\n[[users]]\nname = \"a\"\npassword_hash = \"{hash}\"\n"
                ),
                "\"a\" is listed twice",
            ),
            (
                format!(
                    "[[users]]\nname = \"a\"\npassword_hash = \"{hash}\"\n[[users]]\nname = \"A\"\npassword_hash = \"{hash}\"\n"
                ),
                "listed twice",
            ),
            (
                "[[users]]\nname = \"a\"\npassword_hash = \"hunter22\"\n".to_owned(),
                "user \"a\": password_hash is not a valid PHC string",
            ),
            (
                "[[users]]\nname = \"a\"\npassword_hash = \"$argon2i$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n"
                    .to_owned(),
                "uses argon2i, not argon2id",
            ),
            (
                "[[users]]\nname = \"a\"\npassword_hash = \"$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA\"\n"
                    .to_owned(),
                "invalid argon2 parameters",
            ),
            (
                "[[users]]\nname = \"a\"\n".to_owned(),
                "missing field `password_hash`",
            ),
            (
                format!("[[users]]\nname = \"a\"\ngroup = [\"x\"]\npassword_hash = \"{hash}\"\n"),
                "line 3, column 1: unknown field `group`",
            ),
            (
                format!("[[users]]\nname = \" a\"\npassword_hash = \"{hash}\"\n"),
                "white space",
            ),
            (
                format!("[[users]]\nname = \"a\"\ngroups = [\"\"]\npassword_hash = \"{hash}\"\n"),
                "a group name is empty",
            ),
            (
                format!("[[users]]\nname = \"a\"\npassword_hash = \"{hash}\n"),
                "line 3",
            ),
        ];
        for (text, expected) in cases {
            let path = write(dir.path(), &text);
            let error = StaticDirectory::load(&path).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{}: ", path.display())),
                "{error}"
            );
            assert!(error.contains(expected), "{error} (expected {expected:?})");
            assert!(
                !error.contains("$argon2"),
                "the hash is never quoted: {error}"
            );
        }
        let missing = dir.path().join("missing.toml");
        let error = StaticDirectory::load(&missing).unwrap_err().to_string();
        assert!(error.starts_with(&missing.display().to_string()), "{error}");
    }

    #[test]
    fn debug_leaves_the_hash_out() {
        let alice = entry("alice", "pw");
        let shown = format!("{alice:?}");
        assert!(!shown.contains("$argon2"), "{shown}");
        assert!(shown.contains("alice"));
    }

    #[test]
    fn add_user_creates_a_private_file_and_replaces_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        assert_eq!(
            add_user(&path, entry("alice", "one"), false).unwrap(),
            AddOutcome::Added
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(
            add_user(&path, entry("bob", "two"), false).unwrap(),
            AddOutcome::Added
        );
        let error = add_user(&path, entry("alice", "three"), false).unwrap_err();
        assert!(matches!(error, StaticDirError::Exists { .. }), "{error}");
        let before = read_users(&path).unwrap();
        assert_eq!(before.len(), 2);

        let mut replacement = entry("alice", "three");
        replacement.groups = vec!["ops".into()];
        assert_eq!(
            add_user(&path, replacement.clone(), true).unwrap(),
            AddOutcome::Replaced
        );
        let after = read_users(&path).unwrap();
        assert_eq!(after.len(), 2);
        assert_eq!(after[0], replacement);
        assert_eq!(after[1], before[1]);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("users.toml")]);
        // An invalid entry is refused and the file left as it was.
        let mut bad = entry("", "x");
        bad.name = String::new();
        assert!(add_user(&path, bad, false).is_err());
        assert_eq!(read_users(&path).unwrap(), after);
    }

    #[test]
    fn adding_keeps_comments_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let alice = entry("alice", "one");
        let path = write(
            dir.path(),
            &format!(
                "# our demo people\n{}",
                file_of(std::slice::from_ref(&alice))
            ),
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        }
        add_user(&path, entry("bob", "two"), false).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# our demo people\n"), "{text}");
        assert_eq!(read_users(&path).unwrap().len(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640);
        }
        // An inline array cannot take an appended table: the file is rewritten instead.
        let hash = quick_hash("pw");
        let inline = write(
            dir.path(),
            &format!("users = [{{ name = \"a\", password_hash = \"{hash}\" }}]\n"),
        );
        add_user(&inline, entry("b", "x"), false).unwrap();
        let names: Vec<_> = read_users(&inline)
            .unwrap()
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[tokio::test]
    async fn notices_a_changed_file_and_keeps_the_old_users_when_it_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.toml");
        add_user(&path, entry("alice", "alice-password"), false).unwrap();
        let directory = StaticDirectory::load(&path)
            .unwrap()
            .with_reload_interval(Some(Duration::ZERO));
        assert_eq!(
            directory.groups("bob").await,
            Err(AuthError::InvalidCredentials)
        );
        add_user(&path, entry("bob", "bob-password"), false).unwrap();
        assert!(directory.groups("bob").await.is_ok());
        directory
            .authenticate("bob", &Secret::new("bob-password"))
            .await
            .unwrap();

        // A broken file is not loaded: the users from before stay.
        fs::write(&path, "this is not toml [").unwrap();
        assert!(directory.groups("bob").await.is_ok());
        assert!(directory.reload().is_err());
        assert!(directory.groups("alice").await.is_ok());

        // Without the automatic check, only reload() sees changes.
        let mut alice = entry("alice", "alice-password");
        alice.active = false;
        fs::write(&path, file_of(&[alice])).unwrap();
        let still = StaticDirectory::load(&path)
            .unwrap()
            .with_reload_interval(None);
        fs::write(&path, file_of(&[entry("alice", "alice-password")])).unwrap();
        assert_eq!(
            still.groups("alice").await,
            Err(AuthError::InvalidCredentials)
        );
        assert_eq!(still.reload().unwrap(), 1);
        assert!(still.groups("alice").await.is_ok());
    }
}
