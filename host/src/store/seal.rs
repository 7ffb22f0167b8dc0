//! Sealing secrets at rest: the master key, where it comes from, and the keyring that seals and opens
//! [`SealedSecret`]s with XChaCha20-Poly1305.
//!
//! Every sealed value carries the id of the key that sealed it (the key's fingerprint), a random 24-byte
//! nonce, and is bound by its associated data to what it is (e.g. `idfed:account:prod:secret_access_key`):
//! moved to another record, it no longer opens.
//!
//! The master key comes from `IDFED_MASTER_KEY` (base64 of 32 bytes) or from a key file, created with
//! mode 0600 on first start. A key file that its group or others may read is refused.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::StoreError;
use crate::model::SealedSecret;
use crate::secret::Secret;

/// The environment variable that holds the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "IDFED_MASTER_KEY";

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 24;

/// The associated data of an account's sealed secret access key.
pub fn account_secret_aad(account: &str) -> Vec<u8> {
    format!("idfed:account:{account}:secret_access_key").into_bytes()
}

/// Where the master key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// The value of `IDFED_MASTER_KEY`: base64 of 32 bytes. Rotation writes nothing: whoever rotates
    /// sets the variable to the new key (see [`MasterKey::to_base64`]) before the next start.
    Env(String),
    /// A key file, holding the key in base64; created (mode 0600) on first start if missing.
    File(PathBuf),
}

impl KeySource {
    /// `IDFED_MASTER_KEY` when it is set, else the key file `file`.
    pub fn from_env_or_file(file: PathBuf) -> KeySource {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(value) if !value.trim().is_empty() => KeySource::Env(value),
            _ => KeySource::File(file),
        }
    }
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Env(_) => write!(f, "KeySource::Env({MASTER_KEY_ENV})"),
            KeySource::File(path) => write!(f, "KeySource::File({})", path.display()),
        }
    }
}

impl Drop for KeySource {
    fn drop(&mut self) {
        if let KeySource::Env(value) = self {
            value.zeroize();
        }
    }
}

/// The master key: 32 random bytes, zeroed when dropped, never shown.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    bytes: [u8; KEY_BYTES],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey(id {})", self.fingerprint())
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Result<MasterKey, StoreError> {
        let mut key = MasterKey {
            bytes: [0; KEY_BYTES],
        };
        getrandom::fill(&mut key.bytes)
            .map_err(|e| StoreError::Sealing(format!("no randomness for a master key: {e}")))?;
        Ok(key)
    }

    /// A key from its base64 form (as `IDFED_MASTER_KEY` and key files hold it).
    pub fn from_base64(encoded: &str) -> Result<MasterKey, StoreError> {
        let bad = || {
            StoreError::Sealing(
                "a master key must be the base64 of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)"
                    .into(),
            )
        };
        let decoded = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| bad())?);
        let mut key = MasterKey {
            bytes: [0; KEY_BYTES],
        };
        if decoded.len() != KEY_BYTES {
            return Err(bad());
        }
        key.bytes.copy_from_slice(&decoded);
        Ok(key)
    }

    /// The key in base64, e.g. to set as `IDFED_MASTER_KEY` after a rotation.
    pub fn to_base64(&self) -> Secret {
        Secret::new(STANDARD.encode(self.bytes))
    }

    /// The key's id: the first 16 hex characters of its SHA-256.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.bytes);
        hex::encode(&digest[..8])
    }

    /// Loads the key from `source`; a missing key file is created with a new random key, mode 0600.
    pub fn load_or_create(source: &KeySource) -> Result<MasterKey, StoreError> {
        match source {
            KeySource::Env(value) => MasterKey::from_base64(value).map_err(|_| {
                StoreError::Sealing(format!(
                    "{MASTER_KEY_ENV} must be the base64 of 32 bytes (e.g. `head -c 32 /dev/urandom | base64`)"
                ))
            }),
            KeySource::File(path) => {
                if let Some(key) = read_key_file(path)? {
                    return Ok(key);
                }
                let key = MasterKey::generate()?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    create_private_dir_all(parent)?;
                }
                match write_key_file(path, &key) {
                    Ok(()) => {
                        tracing::info!(path = %path.display(), key_id = %key.fingerprint(), "created a new master key file");
                        Ok(key)
                    }
                    // Another process made it first: use theirs.
                    Err(e) if e.kind() == ErrorKind::AlreadyExists => read_key_file(path)?
                        .ok_or_else(|| {
                            StoreError::Io(format!("key file {} vanished", path.display()))
                        }),
                    Err(e) => Err(io_error("cannot create the key file", path, &e)),
                }
            }
        }
    }

    /// A second copy of the key (zeroed when dropped, like the first).
    pub(crate) fn duplicate(&self) -> MasterKey {
        MasterKey { bytes: self.bytes }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(&self.bytes))
    }
}

/// The keys that can open sealed secrets: the current one, which also seals, and others that only open
/// (a pending key while a rotation completes).
#[derive(Debug)]
pub struct Keyring {
    current: MasterKey,
    others: Vec<MasterKey>,
}

impl Keyring {
    /// A keyring with one key.
    pub fn new(current: MasterKey) -> Keyring {
        Keyring {
            current,
            others: Vec::new(),
        }
    }

    /// Adds a key that opens but does not seal.
    pub fn with_key(mut self, other: MasterKey) -> Keyring {
        if other.fingerprint() != self.current.fingerprint() {
            self.others.push(other);
        }
        self
    }

    /// The sealing key's id.
    pub fn current_id(&self) -> String {
        self.current.fingerprint()
    }

    /// The sealing key.
    pub fn current(&self) -> &MasterKey {
        &self.current
    }

    /// Whether a key of this keyring has id `key_id`.
    pub fn has_key(&self, key_id: &str) -> bool {
        self.key(key_id).is_some()
    }

    fn key(&self, key_id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(&self.others)
            .find(|k| k.fingerprint() == key_id)
    }

    /// Seals `secret` under the current key, bound to `aad`.
    pub fn seal(&self, secret: &Secret, aad: &[u8]) -> Result<SealedSecret, StoreError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce)
            .map_err(|e| StoreError::Sealing(format!("no randomness for a nonce: {e}")))?;
        let ciphertext = self
            .current
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.expose().as_bytes(),
                    aad,
                },
            )
            .map_err(|_| StoreError::Sealing("sealing failed".into()))?;
        Ok(SealedSecret {
            key_id: self.current.fingerprint(),
            nonce: STANDARD.encode(nonce),
            ciphertext: STANDARD.encode(ciphertext),
        })
    }

    /// Opens a sealed secret with whichever key sealed it; an error (never a panic) when that key is not
    /// here, or the value was altered or sealed for something else.
    pub fn open(&self, sealed: &SealedSecret, aad: &[u8]) -> Result<Secret, StoreError> {
        let key = self.key(&sealed.key_id).ok_or_else(|| {
            StoreError::Sealing(format!(
                "sealed under master key {}, which is not loaded (the current key is {})",
                sealed.key_id,
                self.current.fingerprint()
            ))
        })?;
        let nonce = STANDARD
            .decode(&sealed.nonce)
            .ok()
            .filter(|n| n.len() == NONCE_BYTES)
            .ok_or_else(|| StoreError::Sealing("malformed nonce".into()))?;
        let ciphertext = STANDARD
            .decode(&sealed.ciphertext)
            .map_err(|_| StoreError::Sealing("malformed ciphertext".into()))?;
        let plain = key
            .cipher()
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad,
                },
            )
            .map_err(|_| {
                StoreError::Sealing(
                    "a sealed secret does not open: altered, or sealed for another record".into(),
                )
            })?;
        match String::from_utf8(plain) {
            Ok(text) => Ok(Secret::new(text)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(StoreError::Sealing("a sealed secret is not UTF-8".into()))
            }
        }
    }
}

/// `<key file>.new`: the key a rotation is moving to, until the rotation is complete.
pub(crate) fn pending_path(path: &Path) -> PathBuf {
    with_suffix(path, ".new")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Writes `key` as the pending key `<path>.new`, atomically (via `<path>.new.tmp` and a rename) and
/// durably (file and directory synced): afterwards `<path>.new` is either absent or whole.
pub(crate) fn write_pending_key(path: &Path, key: &MasterKey) -> Result<(), StoreError> {
    let pending = pending_path(path);
    let temporary = with_suffix(path, ".new.tmp");
    match std::fs::remove_file(&temporary) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_error("cannot remove", &temporary, &e)),
    }
    write_key_file(&temporary, key)
        .map_err(|e| io_error("cannot write the new key file", &temporary, &e))?;
    std::fs::rename(&temporary, &pending)
        .map_err(|e| io_error("cannot rename the new key file to", &pending, &e))?;
    sync_parent(&pending)
}

/// The pending key `<path>.new`, if a rotation left one (a leftover `.new.tmp` is removed: it was never
/// used to seal anything).
pub(crate) fn read_pending_key(path: &Path) -> Result<Option<MasterKey>, StoreError> {
    let _ = std::fs::remove_file(with_suffix(path, ".new.tmp"));
    read_key_file(&pending_path(path))
}

/// Makes the pending key the key: renames `<path>.new` over `<path>`, and syncs the directory.
pub(crate) fn commit_pending_key(path: &Path) -> Result<(), StoreError> {
    let pending = pending_path(path);
    std::fs::rename(&pending, path)
        .map_err(|e| io_error("cannot rename the new key file over", path, &e))?;
    sync_parent(path)
}

/// Reads a key file; `None` if there is none. Refuses a file its group or others may use.
fn read_key_file(path: &Path) -> Result<Option<MasterKey>, StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot open the key file", path, &e)),
    };
    let metadata = file
        .metadata()
        .map_err(|e| io_error("cannot stat the key file", path, &e))?;
    if !metadata.is_file() {
        return Err(StoreError::Sealing(format!(
            "the key file {} is not a regular file",
            path.display()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Sealing(format!(
                "the key file {} has mode {mode:04o}: group and others may use it; it must be \
                 readable by its owner only (`chmod 600 {}`), and the key should be rotated",
                path.display(),
                path.display()
            )));
        }
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text)
        .map_err(|e| io_error("cannot read the key file", path, &e))?;
    MasterKey::from_base64(&text).map(Some).map_err(|_| {
        StoreError::Sealing(format!(
            "the key file {} does not hold the base64 of 32 bytes",
            path.display()
        ))
    })
}

/// Creates a key file that must not exist yet, mode 0600, synced with its directory.
fn write_key_file(path: &Path, key: &MasterKey) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    let mut text = Zeroizing::new(key.to_base64().expose().to_owned());
    text.push('\n');
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| io_error("cannot sync", parent, &e))
}

/// Creates a directory and its parents, new ones with mode 0700.
pub(crate) fn create_private_dir_all(path: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(path)
        .map_err(|e| io_error("cannot create the directory", path, &e))
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Io(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn keyring() -> Keyring {
        Keyring::new(MasterKey::generate().unwrap())
    }

    #[test]
    fn seals_and_opens() {
        let ring = keyring();
        let aad = account_secret_aad("prod");
        let sealed = ring.seal(&Secret::new(SECRET), &aad).unwrap();
        assert_eq!(sealed.key_id, ring.current_id());
        assert_eq!(sealed.key_id.len(), 16);
        assert!(!sealed.ciphertext.contains("wJalr"));
        assert_eq!(ring.open(&sealed, &aad).unwrap().expose(), SECRET);
        // A fresh nonce every time.
        let again = ring.seal(&Secret::new(SECRET), &aad).unwrap();
        assert_ne!(again.nonce, sealed.nonce);
        assert_ne!(again.ciphertext, sealed.ciphertext);
    }

    #[test]
    fn another_record_another_key_or_tampering_do_not_open() {
        let ring = keyring();
        let sealed = ring
            .seal(&Secret::new(SECRET), &account_secret_aad("prod"))
            .unwrap();
        let moved = ring.open(&sealed, &account_secret_aad("dev")).unwrap_err();
        assert_eq!(moved.code(), "store_sealing_failed");

        let other = keyring();
        let wrong_key = other
            .open(&sealed, &account_secret_aad("prod"))
            .unwrap_err();
        assert!(
            wrong_key.to_string().contains(&sealed.key_id),
            "{wrong_key}"
        );

        // A key with the same id claimed but other bytes: still an error, not a panic.
        let mut claimed = sealed.clone();
        claimed.key_id = other.current_id();
        assert!(other.open(&claimed, &account_secret_aad("prod")).is_err());

        let mut bytes = STANDARD.decode(&sealed.ciphertext).unwrap();
        bytes[0] ^= 1;
        let mut tampered = sealed.clone();
        tampered.ciphertext = STANDARD.encode(&bytes);
        assert!(ring.open(&tampered, &account_secret_aad("prod")).is_err());

        let mut bad_nonce = sealed.clone();
        bad_nonce.nonce = "AAAA".into();
        assert!(ring.open(&bad_nonce, &account_secret_aad("prod")).is_err());
        let mut garbage = sealed;
        garbage.ciphertext = "!!".into();
        assert!(ring.open(&garbage, &account_secret_aad("prod")).is_err());
    }

    #[test]
    fn a_keyring_with_two_keys_opens_either_and_seals_with_the_current() {
        let old = MasterKey::generate().unwrap();
        let new = MasterKey::generate().unwrap();
        let aad = account_secret_aad("a");
        let old_sealed = Keyring::new(MasterKey::from_base64(old.to_base64().expose()).unwrap())
            .seal(&Secret::new(SECRET), &aad)
            .unwrap();
        let ring = Keyring::new(new).with_key(old);
        assert_eq!(ring.open(&old_sealed, &aad).unwrap().expose(), SECRET);
        let sealed = ring.seal(&Secret::new(SECRET), &aad).unwrap();
        assert_eq!(sealed.key_id, ring.current_id());
        assert!(ring.has_key(&old_sealed.key_id));
    }

    #[test]
    fn debug_hides_keys() {
        let key = MasterKey::generate().unwrap();
        let encoded = key.to_base64().expose().to_owned();
        let shown = format!(
            "{key:?} {:?} {:?}",
            Keyring::new(MasterKey::from_base64(&encoded).unwrap()),
            KeySource::Env(encoded.clone())
        );
        assert!(!shown.contains(&encoded), "{shown}");
        assert!(!shown.contains(&hex::encode(key.bytes)), "{shown}");
        assert!(shown.contains(&key.fingerprint()), "{shown}");
    }

    #[test]
    fn env_keys_must_be_32_bytes_of_base64() {
        let key = MasterKey::generate().unwrap();
        let encoded = key.to_base64().expose().to_owned();
        let loaded = MasterKey::load_or_create(&KeySource::Env(format!("{encoded}\n"))).unwrap();
        assert_eq!(loaded.fingerprint(), key.fingerprint());
        for bad in ["", "not base64!", &STANDARD.encode([0u8; 16])] {
            let e = MasterKey::load_or_create(&KeySource::Env(bad.into())).unwrap_err();
            assert_eq!(e.code(), "store_sealing_failed");
            assert!(e.to_string().contains(MASTER_KEY_ENV), "{e}");
        }
    }

    #[test]
    fn key_files_are_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let source = KeySource::File(path.clone());
        let created = MasterKey::load_or_create(&source).unwrap();
        let loaded = MasterKey::load_or_create(&source).unwrap();
        assert_eq!(created.fingerprint(), loaded.fingerprint());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&KeySource::File(path.clone())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = MasterKey::load_or_create(&KeySource::File(path.clone())).unwrap_err();
        assert_eq!(e.code(), "store_sealing_failed");
        assert!(e.to_string().contains("0640"), "{e}");
        assert!(e.to_string().contains("chmod 600"), "{e}");
    }

    #[test]
    fn a_corrupt_key_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(&path).unwrap().write_all(b"short").unwrap();
        let e = MasterKey::load_or_create(&KeySource::File(path)).unwrap_err();
        assert_eq!(e.code(), "store_sealing_failed");
    }

    #[test]
    fn pending_keys_are_written_whole_and_committed_by_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let old = MasterKey::load_or_create(&KeySource::File(path.clone())).unwrap();
        assert!(read_pending_key(&path).unwrap().is_none());
        let new = MasterKey::generate().unwrap();
        write_pending_key(&path, &new).unwrap();
        assert_eq!(
            read_pending_key(&path).unwrap().unwrap().fingerprint(),
            new.fingerprint()
        );
        let current = MasterKey::load_or_create(&KeySource::File(path.clone())).unwrap();
        assert_eq!(current.fingerprint(), old.fingerprint());
        commit_pending_key(&path).unwrap();
        let current = MasterKey::load_or_create(&KeySource::File(path.clone())).unwrap();
        assert_eq!(current.fingerprint(), new.fingerprint());
        assert!(read_pending_key(&path).unwrap().is_none());
    }
}
