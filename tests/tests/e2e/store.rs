//! The store end to end: state surviving restarts, no secret on disk, key rotation, API keys, plugin
//! files, and the error codes.

use std::path::Path;
use std::time::{Duration, SystemTime};

use idfed::model::{
    Account, AccountCredentials, AccountInput, AccountSource, Connector, ConnectorId, Principal,
};
use idfed::store::seal::account_secret_aad;
use idfed::store::{DataStore, KeySource, Keyring, MasterKey, Store};
use serde_json::json;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const OTHER_SECRET: &str = "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY";

fn iam_user(name: &str, secret: Option<&str>) -> AccountInput {
    let mut source = json!({"type": "iam-user", "access_key_id": "AKIAIOSFODNN7EXAMPLE"});
    if let Some(secret) = secret {
        source["secret_access_key"] = json!(secret);
    }
    serde_json::from_value(json!({
        "name": name,
        "description": "test account",
        "source": source,
        "region": "eu-west-1",
    }))
    .unwrap()
}

fn host_account(name: &str) -> AccountInput {
    serde_json::from_value(json!({"name": name, "source": {"type": "host-credentials"}})).unwrap()
}

fn connector(name: &str, account: &str, system_scope: bool) -> Connector {
    serde_json::from_value(json!({
        "id": "00000000-0000-0000-0000-000000000000",
        "name": name,
        "account": account,
        "principal": {"type": "federated-user"},
        "policy_arns": ["arn:aws:iam::aws:policy/ReadOnlyAccess"],
        "groups": ["admins"],
        "system_scope": system_scope,
    }))
    .unwrap()
}

fn env_source() -> (KeySource, String) {
    let key = MasterKey::generate().unwrap();
    let encoded = key.to_base64().expose().to_owned();
    (KeySource::Env(encoded.clone()), encoded)
}

fn secret_of(store: &DataStore, name: &str) -> String {
    match store.account_credentials(name).unwrap().unwrap() {
        AccountCredentials::Static {
            secret_access_key, ..
        } => secret_access_key.expose().to_owned(),
        AccountCredentials::HostChain => panic!("{name} is not an iam-user account"),
    }
}

fn sealed_of(account: &Account) -> &idfed::model::SealedSecret {
    match &account.source {
        AccountSource::IamUser {
            secret_access_key, ..
        } => secret_access_key,
        AccountSource::HostCredentials => panic!("no secret"),
    }
}

/// The secret of an API key `idfed_<32 hex id>_<base64url secret>`, cut by position: the secret may
/// hold `_` itself, and a short tail after one would be found on disk by chance.
fn secret_part(key: &str) -> &str {
    &key["idfed_".len() + 32 + 1..]
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Asserts that no file under `dir` holds any of `needles`.
fn assert_nowhere_on_disk(dir: &Path, needles: &[&str], when: &str) {
    let files = files(dir);
    assert!(!files.is_empty());
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        for needle in needles {
            assert!(
                !bytes
                    .windows(needle.len())
                    .any(|window| window == needle.as_bytes()),
                "{when}: {} holds a secret",
                file.display()
            );
        }
    }
}

#[test]
fn accounts_connectors_and_api_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = env_source();
    let (connector_id, key_id, api_key) = {
        let store = DataStore::open(dir.path(), source.clone()).unwrap();
        store.put_account(iam_user("prod", Some(SECRET))).unwrap();
        store.put_account(host_account("host")).unwrap();
        let c = store
            .create_connector(connector("deploy", "prod", true))
            .unwrap();
        store
            .create_connector(connector("people", "host", false))
            .unwrap();
        let (key, secret) = store.create_api_key("ci-deploy", vec![c.id], None).unwrap();
        (c.id, key.id, secret)
    };
    let store = DataStore::open(dir.path(), source).unwrap();
    let names: Vec<_> = store
        .list_accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(names, ["host", "prod"]);
    let prod = store.get_account("prod").unwrap().unwrap();
    assert_eq!(prod.region.as_deref(), Some("eu-west-1"));
    assert_eq!(secret_of(&store, "prod"), SECRET);
    assert!(matches!(
        store.account_credentials("host").unwrap(),
        Some(AccountCredentials::HostChain)
    ));
    assert!(store.account_credentials("absent").unwrap().is_none());

    let by_name = store.get_connector("deploy").unwrap().unwrap();
    assert_eq!(by_name.id, connector_id);
    assert_eq!(
        store.get_connector(&connector_id.to_string()).unwrap(),
        Some(by_name)
    );
    assert_eq!(store.list_connectors().unwrap().len(), 2);

    let keys = store.list_api_keys().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].id, key_id);
    let authenticated = store
        .authenticate_api_key(api_key.expose())
        .unwrap()
        .unwrap();
    assert_eq!(authenticated.name, "ci-deploy");
    assert_eq!(authenticated.connectors, [connector_id]);
}

#[test]
fn no_secret_is_ever_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    // The key file lives in the data directory too: it must not matter.
    let source = KeySource::File(dir.path().join("master.key"));
    let store = DataStore::open(dir.path(), source.clone()).unwrap();
    store.put_account(iam_user("prod", Some(SECRET))).unwrap();
    store
        .put_account(iam_user("dev", Some(OTHER_SECRET)))
        .unwrap();
    let c = store
        .create_connector(connector("deploy", "prod", true))
        .unwrap();
    let (_, api_key) = store.create_api_key("ci", vec![c.id], None).unwrap();
    let api_secret = secret_part(api_key.expose()).to_owned();
    assert_eq!(api_secret.len(), 43, "{api_secret}");
    let needles = [SECRET, OTHER_SECRET, api_key.expose(), api_secret.as_str()];
    assert_nowhere_on_disk(dir.path(), &needles, "after writes");

    store.flush().unwrap();
    drop(store);
    let store = DataStore::open(dir.path(), source.clone()).unwrap();
    assert_eq!(secret_of(&store, "prod"), SECRET);
    assert!(
        store
            .authenticate_api_key(api_key.expose())
            .unwrap()
            .is_some()
    );
    assert_nowhere_on_disk(dir.path(), &needles, "after a flush and a restart");

    assert_eq!(
        store
            .rotate_master_key(MasterKey::generate().unwrap())
            .unwrap(),
        2
    );
    store.flush().unwrap();
    assert_nowhere_on_disk(dir.path(), &needles, "after a key rotation");
    drop(store);
    let store = DataStore::open(dir.path(), source).unwrap();
    assert_eq!(secret_of(&store, "dev"), OTHER_SECRET);
    assert_nowhere_on_disk(dir.path(), &needles, "after a rotation and a restart");
}

#[test]
fn rotation_reseals_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys").join("master.key");
    let source = KeySource::File(key_file.clone());
    let store = DataStore::open(dir.path(), source.clone()).unwrap();
    store.put_account(iam_user("prod", Some(SECRET))).unwrap();
    store
        .put_account(iam_user("dev", Some(OTHER_SECRET)))
        .unwrap();
    store.put_account(host_account("host")).unwrap();
    let old = MasterKey::load_or_create(&source).unwrap();
    let old_id = old.fingerprint();
    assert_eq!(store.key_id(), old_id);

    let new = MasterKey::generate().unwrap();
    let new_id = new.fingerprint();
    assert_eq!(store.rotate_master_key(new).unwrap(), 2);
    assert_eq!(store.key_id(), new_id);
    assert!(!dir.path().join("keys/master.key.new").exists());
    assert_eq!(
        MasterKey::load_or_create(&source).unwrap().fingerprint(),
        new_id,
        "the key file now holds the new key"
    );

    let old_ring = Keyring::new(old);
    let new_ring = Keyring::new(MasterKey::load_or_create(&source).unwrap());
    for (name, secret) in [("prod", SECRET), ("dev", OTHER_SECRET)] {
        let account = store.get_account(name).unwrap().unwrap();
        let sealed = sealed_of(&account);
        assert_eq!(sealed.key_id, new_id);
        let aad = account_secret_aad(name);
        let e = old_ring.open(sealed, &aad).unwrap_err();
        assert_eq!(e.code(), "store_sealing_failed");
        assert_eq!(new_ring.open(sealed, &aad).unwrap().expose(), secret);
        assert_eq!(secret_of(&store, name), secret);
    }
    drop(store);
    let store = DataStore::open(dir.path(), source).unwrap();
    assert_eq!(secret_of(&store, "prod"), SECRET);
    assert_eq!(secret_of(&store, "dev"), OTHER_SECRET);
}

#[test]
fn api_keys_authenticate_only_when_whole_and_live() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path(), env_source().0).unwrap();
    store.put_account(iam_user("prod", Some(SECRET))).unwrap();
    let system = store
        .create_connector(connector("ci", "prod", true))
        .unwrap();
    let personal = store
        .create_connector(connector("people", "prod", false))
        .unwrap();

    let (key, secret) = store
        .create_api_key("ci-deploy", vec![system.id, system.id], None)
        .unwrap();
    let presented = secret.expose();
    assert_eq!(key.connectors, [system.id], "duplicates dropped");
    assert!(presented.starts_with(&format!("idfed_{}_", key.id.simple())));
    assert_eq!(presented.len(), "idfed_".len() + 32 + 1 + 43);
    assert_eq!(key.hash.len(), 64);
    assert!(!format!("{key:?}").contains(secret_part(presented)));
    assert_eq!(
        store.authenticate_api_key(presented).unwrap().unwrap().id,
        key.id
    );

    // The stored record: a hash, not the key.
    let tree = store.db().open_tree("api-keys").unwrap();
    let stored = tree.get(key.id.to_string()).unwrap().unwrap();
    let record: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(record["hash"], json!(key.hash));
    let presented_secret = secret_part(presented);
    assert!(!String::from_utf8_lossy(&stored).contains(presented_secret));

    // Altered, wrong, malformed: not authenticated.
    let mut altered = presented.to_owned().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    let (_, other) = store
        .create_api_key("other", vec![system.id], None)
        .unwrap();
    let other_secret = secret_part(other.expose());
    let mixed = format!("idfed_{}_{other_secret}", key.id.simple());
    for bad in [
        altered.as_str(),
        mixed.as_str(),
        "",
        "idfed_",
        "not a key",
        &presented[..presented.len() - 1],
        &format!("{presented}A"),
        &format!("idfed_{}_{}", uuid_simple_zero(), &presented[39..]),
    ] {
        assert!(
            store.authenticate_api_key(bad).unwrap().is_none(),
            "{bad:?} authenticated"
        );
    }

    // Expired.
    let (_, short) = store
        .create_api_key(
            "short",
            vec![system.id],
            Some(SystemTime::now() + Duration::from_millis(300)),
        )
        .unwrap();
    assert!(
        store
            .authenticate_api_key(short.expose())
            .unwrap()
            .is_some()
    );
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        store
            .authenticate_api_key(short.expose())
            .unwrap()
            .is_none()
    );

    // Deleted.
    store.delete_api_key(key.id).unwrap();
    assert!(store.authenticate_api_key(presented).unwrap().is_none());
    assert_eq!(
        store.delete_api_key(key.id).unwrap_err().code(),
        "store_not_found"
    );

    // What a key may name.
    for (connectors, why) in [
        (vec![personal.id], "not system scope"),
        (vec![ConnectorId::new_v4()], "unknown connector"),
        (vec![], "no connector"),
    ] {
        assert_eq!(
            store
                .create_api_key("bad", connectors, None)
                .unwrap_err()
                .code(),
            "store_invalid",
            "{why}"
        );
    }
    assert_eq!(
        store
            .create_api_key(
                "past",
                vec![system.id],
                Some(SystemTime::now() - Duration::from_secs(1))
            )
            .unwrap_err()
            .code(),
        "store_invalid"
    );
    assert_eq!(
        store
            .create_api_key("other", vec![system.id], None)
            .unwrap_err()
            .code(),
        "store_conflict"
    );

    // Deleting a connector takes it out of the keys that named it.
    let (both, _) = store.create_api_key("both", vec![system.id], None).unwrap();
    store.delete_connector(system.id).unwrap();
    let both = store
        .list_api_keys()
        .unwrap()
        .into_iter()
        .find(|k| k.id == both.id)
        .unwrap();
    assert!(both.connectors.is_empty());
}

fn uuid_simple_zero() -> String {
    "0".repeat(32)
}

#[test]
fn plugin_files_are_named_only_by_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path(), env_source().0).unwrap();
    let wasm = b"\0asm\x0d\x00\x01\x00 a component".to_vec();
    let digest = store.put_plugin(&wasm, None).unwrap();
    assert_eq!(digest.len(), 64);
    assert!(dir.path().join(format!("plugins/{digest}.wasm")).is_file());
    assert_eq!(store.put_plugin(&wasm, None).unwrap(), digest, "idempotent");
    assert_eq!(store.get_plugin(&digest).unwrap().unwrap(), wasm);
    let listed = store.list_plugins().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, digest);
    assert_eq!(listed[0].size, wasm.len() as u64);

    for bad in [
        "../../etc/passwd",
        "/etc/passwd",
        "",
        &digest.to_uppercase(),
        &format!("{digest}.wasm"),
        &format!("../{}", &digest[3..]),
    ] {
        assert_eq!(
            store.get_plugin(bad).unwrap_err().code(),
            "store_invalid",
            "{bad:?}"
        );
        assert_eq!(
            store.remove_plugin(bad).unwrap_err().code(),
            "store_invalid"
        );
    }
    assert!(store.get_plugin(&"0".repeat(64)).unwrap().is_none());

    // A file altered on disk is not served.
    std::fs::write(dir.path().join(format!("plugins/{digest}.wasm")), b"evil").unwrap();
    assert_eq!(store.get_plugin(&digest).unwrap_err().code(), "store_io");

    store.remove_plugin(&digest).unwrap();
    assert!(store.get_plugin(&digest).unwrap().is_none());
    assert!(store.list_plugins().unwrap().is_empty());
    assert_eq!(
        store.remove_plugin(&digest).unwrap_err().code(),
        "store_not_found"
    );
}

#[test]
fn debug_output_never_shows_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let (source, encoded) = env_source();
    let store = DataStore::open(dir.path(), source.clone()).unwrap();
    let input = iam_user("prod", Some(SECRET));
    let shown_input = format!("{input:?}");
    let account = store.put_account(input).unwrap();
    let credentials = store.account_credentials("prod").unwrap().unwrap();
    let c = store
        .create_connector(connector("ci", "prod", true))
        .unwrap();
    let (api_key, whole) = store.create_api_key("ci", vec![c.id], None).unwrap();
    let key = MasterKey::load_or_create(&source).unwrap();
    let shown = format!(
        "{shown_input} {account:?} {credentials:?} {api_key:?} {whole:?} {key:?} {source:?} {store:?} {:?}",
        Keyring::new(MasterKey::from_base64(&encoded).unwrap())
    );
    for secret in [SECRET, whole.expose(), encoded.as_str()] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("AKIAIOSFODNN7EXAMPLE"));
    assert!(shown.contains(&key.fingerprint()));
}

#[test]
fn conflicts_and_absences_have_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = DataStore::open(dir.path(), env_source().0).unwrap();
    assert_eq!(
        store
            .put_account(iam_user("prod", None))
            .unwrap_err()
            .code(),
        "store_invalid",
        "a new iam-user account needs its secret"
    );
    store.put_account(iam_user("prod", Some(SECRET))).unwrap();
    store.put_account(iam_user("prod", None)).unwrap();
    assert_eq!(secret_of(&store, "prod"), SECRET, "kept on replace");
    assert_eq!(
        store
            .put_account(iam_user("../prod", Some(SECRET)))
            .unwrap_err()
            .code(),
        "store_invalid"
    );

    let c = store
        .create_connector(connector("deploy", "prod", false))
        .unwrap();
    assert_eq!(
        store
            .create_connector(connector("deploy", "prod", false))
            .unwrap_err()
            .code(),
        "store_conflict"
    );
    let mut same_id = connector("other", "prod", false);
    same_id.id = c.id;
    assert_eq!(
        store.create_connector(same_id).unwrap_err().code(),
        "store_conflict"
    );
    assert_eq!(
        store
            .create_connector(connector("x", "absent", false))
            .unwrap_err()
            .code(),
        "store_invalid"
    );
    assert_eq!(
        store
            .create_connector(connector(&"x".repeat(65), "prod", false))
            .unwrap_err()
            .code(),
        "store_invalid"
    );
    let mut ghost = connector("ghost", "prod", false);
    ghost.id = ConnectorId::new_v4();
    assert_eq!(
        store
            .update_connector(ghost.clone(), &ghost)
            .unwrap_err()
            .code(),
        "store_not_found"
    );
    assert_eq!(
        store.delete_connector(ghost.id).unwrap_err().code(),
        "store_not_found"
    );
    let second = store
        .create_connector(connector("second", "prod", false))
        .unwrap();
    let mut renamed = second.clone();
    renamed.name = "deploy".into();
    assert_eq!(
        store.update_connector(renamed, &second).unwrap_err().code(),
        "store_conflict"
    );
    let mut updated = second.clone();
    updated.principal = Principal::IamUser;
    let refused = store
        .update_connector(updated.clone(), &second)
        .unwrap_err();
    assert_eq!(
        refused.code(),
        "store_invalid",
        "STS's rules apply on every save: {refused}"
    );
    updated.policy_arns.clear();
    assert_eq!(
        store.update_connector(updated.clone(), &second).unwrap(),
        updated
    );
    // An edit based on what is no longer stored is refused: no change undoes another unseen.
    let mut stale = second.clone();
    stale.description = "from an old read".into();
    assert_eq!(
        store.update_connector(stale, &second).unwrap_err().code(),
        "store_conflict"
    );
    assert_eq!(store.get_connector("second").unwrap().unwrap(), updated);
    let mut powerless = connector("powerless", "prod", false);
    powerless.policy_arns.clear();
    let refused = store.create_connector(powerless).unwrap_err();
    assert!(
        refused.to_string().contains("no permissions"),
        "a federated user without any session policy: {refused}"
    );
    assert_eq!(store.get_connector("second").unwrap(), Some(updated));

    let e = store.delete_account("prod").unwrap_err();
    assert_eq!(e.code(), "store_conflict");
    assert!(e.to_string().contains("deploy"), "{e}");
    assert!(!e.to_string().contains(SECRET));
    assert_eq!(
        store.delete_account("absent").unwrap_err().code(),
        "store_not_found"
    );
    store.delete_connector(c.id).unwrap();
    store.delete_connector(second.id).unwrap();
    assert!(store.get_connector("deploy").unwrap().is_none());
    store.delete_account("prod").unwrap();
    assert!(store.get_account("prod").unwrap().is_none());
    assert!(store.account_credentials("prod").unwrap().is_none());
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("master.key");
    let source = KeySource::File(key_file.clone());
    drop(DataStore::open(dir.path(), source.clone()).unwrap());
    assert_eq!(
        std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = DataStore::open(dir.path(), source).unwrap_err();
    assert_eq!(e.code(), "store_sealing_failed");
    assert!(e.to_string().contains("0644"), "{e}");
}
