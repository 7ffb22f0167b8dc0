//! `idfed admin migrate-store` (the real binary): a populated sled data directory — an account with its
//! sealed secret, connectors, a plugin component, sessions' and plugins' state, an audit chain — copied
//! into an empty PostgreSQL database, where it opens with the same master key, reads the same, and its
//! chain verifies (also with `idfed audit verify --database-url`); a second run into the now non-empty
//! database is refused and changes nothing.

use std::process::Command;

use idfed::audit::{AuditEvent, AuditLog, Outcome};
use idfed::secret::Secret;
use idfed::store::db::postgres::{Postgres, PostgresConfig};
use idfed::store::{DataStore, KeySource, Store};
use idfed_tests::fixtures;
use idfed_tests::postgres::PgCluster;
use idfed_tests::server::{ACCOUNT_SECRET, iam_account, role_connector};

fn idfed(args: &[&str]) -> std::process::Output {
    let mut command = Command::new(idfed_tests::idfed_binary());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("IDFED_") {
            command.env_remove(name);
        }
    }
    command.args(args).output().unwrap()
}

#[test]
fn a_sled_deployment_is_copied_whole_into_an_empty_database_and_only_an_empty_one() {
    let dir = tempfile::tempdir().unwrap();
    let key = KeySource::File(dir.path().join("master.key"));
    let (digest, connectors, records) = {
        let store = DataStore::open(dir.path(), key.clone()).unwrap();
        store
            .put_account(iam_account("main", "http://127.0.0.1:1"))
            .unwrap();
        let digest = store
            .put_plugin(&std::fs::read(fixtures::RATE_LIMIT).unwrap(), Some("limit"))
            .unwrap();
        let mut limited = role_connector("limited", "main", &["devs"]);
        limited.bindings = vec![idfed::model::BindingSpec {
            id: "limit".into(),
            plugin: digest.clone(),
            config: r#"{"max_requests": 4, "window_seconds": 3600}"#.into(),
            limits: None,
            tag_keys: vec![],
        }];
        store.create_connector(limited).unwrap();
        store
            .create_connector(role_connector("deploy", "main", &["devs"]))
            .unwrap();
        store
            .db()
            .open_tree("plugin-kv")
            .unwrap()
            .insert(b"limit/state", b"kept")
            .unwrap();
        let audit = AuditLog::open(store.db(), None).unwrap();
        for i in 0..30 {
            audit
                .append(AuditEvent {
                    action: "vend".into(),
                    caller: Some(format!("user{i}")),
                    outcome: Outcome::Issued,
                    ..AuditEvent::default()
                })
                .unwrap();
        }
        audit.flush().unwrap();
        store.flush().unwrap();
        (digest, store.list_connectors().unwrap(), 30u64)
    };

    let cluster = PgCluster::start();
    cluster.create_database("migrated");
    let url = cluster.url("migrated");
    let data_dir = dir.path().to_str().unwrap();
    let out = idfed(&[
        "admin",
        "migrate-store",
        "--from-data-dir",
        data_dir,
        "--to",
        &url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("audit: 30 record(s)"), "{stdout}");
    assert!(stdout.contains("1 plugin component(s)"), "{stdout}");

    // What a replica opens: the same key opens the secret, the same connectors, the component, the state.
    let pg = Postgres::connect(&PostgresConfig::new(Secret::new(url.clone()))).unwrap();
    let copy = DataStore::open_postgres(pg, dir.path(), key.clone()).unwrap();
    let credentials = copy.account_credentials("main").unwrap().unwrap();
    match credentials {
        idfed::model::AccountCredentials::Static {
            secret_access_key, ..
        } => assert_eq!(secret_access_key.expose(), ACCOUNT_SECRET),
        other => panic!("{other:?}"),
    }
    assert_eq!(copy.list_connectors().unwrap(), connectors);
    assert_eq!(
        copy.get_plugin(&digest).unwrap().unwrap(),
        std::fs::read(fixtures::RATE_LIMIT).unwrap()
    );
    assert_eq!(
        copy.db()
            .open_tree("plugin-kv")
            .unwrap()
            .get(b"limit/state")
            .unwrap()
            .as_deref(),
        Some(&b"kept"[..])
    );
    let report = AuditLog::open(copy.db(), None).unwrap().verify().unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records, records);
    let out = idfed(&[
        "audit",
        "verify",
        "--data-dir",
        data_dir,
        "--database-url",
        &url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok: 30 record(s)"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Again, into the database that now holds the copy: refused before anything is written.
    let rows = cluster.psql("migrated", "SELECT count(*) FROM idfed_kv");
    let out = idfed(&[
        "admin",
        "migrate-store",
        "--from-data-dir",
        data_dir,
        "--to",
        &url,
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not empty"), "{stderr}");
    assert_eq!(
        cluster.psql("migrated", "SELECT count(*) FROM idfed_kv"),
        rows
    );
}
