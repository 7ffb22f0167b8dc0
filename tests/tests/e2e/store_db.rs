//! The database engines behind every store (`idfed::store::db`): the same contract checked on sled and on a
//! real PostgreSQL (a throw-away cluster), then what only a shared database must do — two "replicas" (two
//! pools on one database) agreeing, and a database that goes away answering `Unavailable` within the
//! timeout, then recovering by itself.

use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use idfed::secret::Secret;
use idfed::store::db::postgres::{Postgres, PostgresConfig};
use idfed::store::db::{Db, DbError, TransactionError, TxError};
use idfed_tests::postgres::PgCluster;

fn postgres(cluster: &PgCluster, database: &str) -> Db {
    Db::Postgres(connect(cluster, database, Duration::from_secs(5)))
}

fn connect(cluster: &PgCluster, database: &str, timeout: Duration) -> Arc<Postgres> {
    let mut config = PostgresConfig::new(Secret::new(cluster.url(database)));
    config.timeout = timeout;
    config.pool_size = 4;
    Postgres::connect(&config).expect("connect")
}

fn sled_db() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::Sled(sled::open(dir.path()).unwrap());
    (dir, db)
}

/// What every engine must do alike.
fn contract(db: &Db) {
    let tree = db.open_tree("contract").unwrap();
    let other = db.open_tree("contract-other").unwrap();
    assert_eq!(tree.get("a").unwrap(), None);
    tree.insert("a", b"1").unwrap();
    tree.insert("a", b"2").unwrap();
    assert_eq!(tree.get("a").unwrap().as_deref(), Some(&b"2"[..]));
    assert!(tree.contains_key("a").unwrap());
    assert_eq!(other.get("a").unwrap(), None, "trees are apart");

    // Compare-and-swap in each form.
    assert!(
        tree.compare_and_swap("a", Some(b"1"), Some(b"3"))
            .unwrap()
            .is_err()
    );
    let failed = tree
        .compare_and_swap("a", Some(b"x"), Some(b"3"))
        .unwrap()
        .unwrap_err();
    assert_eq!(failed.current.as_deref(), Some(&b"2"[..]));
    tree.compare_and_swap("a", Some(b"2"), Some(b"3"))
        .unwrap()
        .unwrap();
    tree.compare_and_swap("b", None::<&[u8]>, Some(b"new"))
        .unwrap()
        .unwrap();
    assert!(
        tree.compare_and_swap("b", None::<&[u8]>, Some(b"again"))
            .unwrap()
            .is_err(),
        "an insert-if-absent of a present key fails"
    );
    tree.compare_and_swap("b", Some(b"new"), None::<&[u8]>)
        .unwrap()
        .unwrap();
    assert_eq!(tree.get("b").unwrap(), None);
    assert_eq!(tree.remove("a").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(tree.remove("a").unwrap(), None);

    // update_and_fetch: a counter.
    for _ in 0..3 {
        tree.update_and_fetch("n", |old| {
            let n = old.map_or(0, |v| u64::from_be_bytes(v.try_into().unwrap()));
            Some((n + 1).to_be_bytes().to_vec())
        })
        .unwrap();
    }
    assert_eq!(
        tree.get("n").unwrap().as_deref(),
        Some(&3u64.to_be_bytes()[..])
    );
    tree.remove("n").unwrap();

    // Scans in byte order, over more than one page of PostgreSQL's (256 rows).
    for i in 0u32..600 {
        tree.insert(i.to_be_bytes(), i.to_string()).unwrap();
    }
    other.insert(b"zz", b"not mine").unwrap();
    let keys: Vec<u32> = tree
        .iter()
        .map(|e| u32::from_be_bytes(e.unwrap().0.as_ref().try_into().unwrap()))
        .collect();
    assert_eq!(keys, (0..600).collect::<Vec<_>>());
    let reversed: Vec<u32> = tree
        .iter_rev()
        .map(|e| u32::from_be_bytes(e.unwrap().0.as_ref().try_into().unwrap()))
        .collect();
    assert_eq!(reversed, (0..600).rev().collect::<Vec<_>>());
    let from = 590u32.to_be_bytes();
    let tail: Vec<u32> = tree
        .range_from(Bound::Excluded(&from))
        .map(|e| u32::from_be_bytes(e.unwrap().0.as_ref().try_into().unwrap()))
        .collect();
    assert_eq!(tail, (591..600).collect::<Vec<_>>());
    let included: Vec<u32> = tree
        .range_from(Bound::Included(&from))
        .map(|e| u32::from_be_bytes(e.unwrap().0.as_ref().try_into().unwrap()))
        .collect();
    assert_eq!(included.first(), Some(&590));
    // Keys 0x00000100..=0x000001ff share the prefix [0, 0, 1].
    let prefixed = tree.scan_prefix([0u8, 0, 1]).count();
    assert_eq!(prefixed, 256);
    assert_eq!(tree.len().unwrap(), 600);
    tree.clear().unwrap();
    assert!(tree.is_empty().unwrap());
    assert_eq!(
        other.len().unwrap(),
        1,
        "clearing one tree leaves the others"
    );

    // Transactions: all or nothing.
    let aborted: Result<(), TransactionError<&str>> = db.transaction([&tree, &other], |[t, o]| {
        t.insert("x", b"1")?;
        o.insert("y", b"1")?;
        Err(TxError::Abort("no"))
    });
    assert!(matches!(aborted, Err(TransactionError::Abort("no"))));
    assert_eq!(tree.get("x").unwrap(), None, "an aborted write is not kept");
    assert_eq!(other.get("y").unwrap(), None);
    let seen = db
        .transaction::<2, _, ()>([&tree, &other], |[t, o]| {
            t.insert("x", b"1")?;
            o.insert("y", b"2")?;
            // A transaction reads its own writes.
            Ok(t.get("x")?.map(|v| v.to_vec()))
        })
        .unwrap();
    assert_eq!(seen.as_deref(), Some(&b"1"[..]));
    assert_eq!(other.get("y").unwrap().as_deref(), Some(&b"2"[..]));
    db.transaction::<1, _, ()>([&tree], |[t]| {
        t.remove("x")?;
        Ok(())
    })
    .unwrap();
    assert_eq!(tree.get("x").unwrap(), None);

    // insert_new: all the entries and then the other key, or, if one key exists, nothing; committed
    // with that statement when asked to.
    let entries = |keys: &[&str]| -> Vec<(Vec<u8>, Vec<u8>)> {
        keys.iter()
            .map(|k| (k.as_bytes().to_vec(), b"v".to_vec()))
            .collect()
    };
    let stored = db
        .transaction::<2, _, ()>([&tree, &other], |[t, o]| {
            t.commit_with_next();
            Ok(t.insert_new(&entries(&["n1", "n2"]), Some((o, b"head", b"2")))?)
        })
        .unwrap();
    assert_eq!(stored, 2);
    assert_eq!(tree.get("n2").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(other.get("head").unwrap().as_deref(), Some(&b"2"[..]));
    let refused: Result<(), TransactionError<&str>> = db.transaction([&tree, &other], |[t, o]| {
        t.commit_with_next();
        match t.insert_new(&entries(&["n3", "n2", "n4"]), Some((o, b"head", b"4")))? {
            0 => Err(TxError::Abort("a key exists")),
            _ => Ok(()),
        }
    });
    assert!(matches!(
        refused,
        Err(TransactionError::Abort("a key exists"))
    ));
    assert_eq!(
        tree.get("n3").unwrap(),
        None,
        "nothing of a refused batch is kept"
    );
    assert_eq!(tree.get("n4").unwrap(), None);
    assert_eq!(other.get("head").unwrap().as_deref(), Some(&b"2"[..]));
    // The pool's connection is usable after (no transaction left open on it).
    tree.insert("after", b"1").unwrap();
    assert_eq!(tree.get("after").unwrap().as_deref(), Some(&b"1"[..]));
}

/// Read-modify-write transactions from many threads (on PostgreSQL: over two pools, as two replicas
/// would) lose no update.
fn concurrent_increments(dbs: &[Db]) {
    let trees: Vec<_> = dbs
        .iter()
        .map(|db| db.open_tree("counter").unwrap())
        .collect();
    let threads = 8;
    let each = 25;
    std::thread::scope(|scope| {
        for i in 0..threads {
            let db = &dbs[i % dbs.len()];
            let tree = &trees[i % dbs.len()];
            scope.spawn(move || {
                for _ in 0..each {
                    db.transaction::<1, _, ()>([tree], |[t]| {
                        let n = t
                            .get("n")?
                            .map_or(0, |v| u64::from_be_bytes(v.as_ref().try_into().unwrap()));
                        t.insert("n", (n + 1).to_be_bytes())?;
                        Ok(())
                    })
                    .unwrap();
                }
            });
        }
    });
    let n = trees[0].get("n").unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(n.as_ref().try_into().unwrap()),
        (threads * each) as u64
    );
}

#[test]
fn sled_keeps_the_contract() {
    let (_dir, db) = sled_db();
    contract(&db);
    concurrent_increments(&[db]);
}

#[test]
fn postgres_keeps_the_contract_and_replicas_lose_no_update() {
    let cluster = PgCluster::start();
    cluster.create_database("contract");
    let db = postgres(&cluster, "contract");
    contract(&db);
    // Two pools on one database: two replicas.
    let second = postgres(&cluster, "contract");
    concurrent_increments(&[db, second]);
    // The schema is versioned, applied once however many replicas connected.
    assert_eq!(
        cluster.psql("contract", "SELECT count(*) FROM idfed_migrations"),
        "1"
    );
}

#[test]
fn a_database_that_goes_away_is_unavailable_within_the_timeout_and_comes_back_by_itself() {
    let cluster = PgCluster::start();
    cluster.create_database("away");
    let pg = connect(&cluster, "away", Duration::from_secs(2));
    let db = Db::Postgres(pg.clone());
    let tree = db.open_tree("t").unwrap();
    tree.insert("k", b"before").unwrap();
    db.ping().unwrap();

    cluster.stop();
    let started = Instant::now();
    let e = tree.get("k").unwrap_err();
    assert!(matches!(e, DbError::Unavailable(_)), "{e:?}");
    let e = db
        .transaction::<1, (), ()>([&tree], |[t]| {
            t.insert("k", b"during")?;
            Ok(())
        })
        .unwrap_err();
    assert!(
        matches!(e, TransactionError::Storage(DbError::Unavailable(_))),
        "{e:?}"
    );
    assert!(db.ping().is_err());
    // Bounded: a few timeouts at most, never a hang (not a timing assertion: a generous ceiling).
    assert!(started.elapsed() < Duration::from_secs(30));

    cluster.start_again();
    let mut back = None;
    for _ in 0..100 {
        if let Ok(value) = tree.get("k") {
            back = value;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        back.as_deref(),
        Some(&b"before"[..]),
        "recovered, data kept"
    );
    tree.insert("k", b"after").unwrap();
    db.ping().unwrap();
}

/// The uid and gid of `user`.
fn ids_of(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, user])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

#[test]
fn the_database_is_reached_over_tls_trusting_the_ca_given_and_refused_without_it() {
    let cluster = PgCluster::start();
    cluster.create_database("tls");
    // A CA and a server certificate for 127.0.0.1, handed to the server (as its user, key 0600).
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = idfed_tests::oidc::certificates(certs.path());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(certs.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap();
    if root {
        let (uid, gid) = ids_of("postgres");
        for file in [&cert, &key] {
            std::os::unix::fs::chown(file, Some(uid), Some(gid)).unwrap();
        }
    }
    cluster.psql(
        "postgres",
        &format!("ALTER SYSTEM SET ssl_cert_file = '{}'", cert.display()),
    );
    cluster.psql(
        "postgres",
        &format!("ALTER SYSTEM SET ssl_key_file = '{}'", key.display()),
    );
    cluster.psql("postgres", "ALTER SYSTEM SET ssl = on");
    cluster.psql("postgres", "SELECT pg_reload_conf()");
    let url = format!("{}?sslmode=require", cluster.url("tls"));

    // Trusting the CA given: connected, and over TLS.
    let mut config = PostgresConfig::new(Secret::new(url.clone()));
    config.ca_file = Some(ca.clone());
    let mut connected = None;
    for _ in 0..50 {
        // The reload takes a moment.
        match Postgres::connect(&config) {
            Ok(pg) => {
                connected = Some(pg);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let pg = connected.expect("no TLS connection with the CA given");
    let db = Db::Postgres(pg);
    db.open_tree("t").unwrap().insert("k", b"v").unwrap();
    assert_eq!(
        cluster.psql(
            "postgres",
            "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'idfed'"
        ),
        "t",
        "idfed's connections are encrypted"
    );

    // The system's roots alone do not trust the test CA: refused, not connected in the clear.
    let config = PostgresConfig::new(Secret::new(url));
    let e = Postgres::connect(&config)
        .err()
        .expect("an unknown CA was trusted");
    assert!(matches!(e, DbError::Unavailable(_)), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("tls"), "{e}");

    // A CA file that holds no certificate is a clear error.
    let empty = certs.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let mut config = PostgresConfig::new(Secret::new(cluster.url("tls")));
    config.ca_file = Some(empty);
    let e = Postgres::connect(&config).err().expect("an empty CA file");
    assert!(e.to_string().contains("holds no certificate"), "{e}");
}

#[test]
fn a_replicas_cache_hears_other_replicas_writes_and_checks_before_a_write_read_the_database() {
    let cluster = PgCluster::start();
    cluster.create_database("cached");
    let a = connect(&cluster, "cached", Duration::from_secs(5));
    let b = connect(&cluster, "cached", Duration::from_secs(5));
    for pg in [&a, &b] {
        pg.cache_tree("hot");
    }
    let a_pool = a.clone();
    let (a, b) = (Db::Postgres(a), Db::Postgres(b));
    let (on_a, on_b) = (a.open_tree("hot").unwrap(), b.open_tree("hot").unwrap());
    on_b.insert("k", b"1").unwrap();
    // A's listener is up once a read is cached; wait for it, then A holds "1" in memory.
    let deadline = Instant::now() + Duration::from_secs(10);
    while on_a.get("k").unwrap().as_deref() != Some(&b"1"[..]) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    // B's own announcement of "1" may still be on its way (it empties A's cache once): let it land.
    std::thread::sleep(Duration::from_millis(200));
    let hits = a_pool.cache_hits();
    for _ in 0..10 {
        assert_eq!(on_a.get("k").unwrap().as_deref(), Some(&b"1"[..]));
    }
    assert!(
        a_pool.cache_hits() >= hits + 9,
        "reads from memory: {} of 10",
        a_pool.cache_hits() - hits
    );
    // B writes: a check made before a write on A reads the database itself, at once…
    on_b.insert("k", b"2").unwrap();
    {
        let _fresh = idfed::store::db::postgres::fresh_reads();
        assert_eq!(on_a.get("k").unwrap().as_deref(), Some(&b"2"[..]));
    }
    // …and A's ordinary reads see it as soon as the change is announced.
    let heard = Instant::now();
    while on_a.get("k").unwrap().as_deref() != Some(&b"2"[..]) {
        assert!(
            heard.elapsed() < Duration::from_secs(5),
            "A's cache never heard B's write"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("A saw B's write {:?} after it was made", heard.elapsed());
    // A's own write is seen by A at once, and by B once announced.
    on_a.remove("k").unwrap();
    assert_eq!(on_a.get("k").unwrap(), None);
    let deadline = Instant::now() + Duration::from_secs(5);
    while on_b.get("k").unwrap().is_some() {
        assert!(
            Instant::now() < deadline,
            "B's cache never heard A's removal"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn replicas_appending_at_once_make_one_audit_chain() {
    use idfed::audit::{AuditEvent, AuditFilter, AuditLog, Outcome};
    let cluster = PgCluster::start();
    cluster.create_database("chain");
    let logs: Vec<AuditLog> = (0..2)
        .map(|_| AuditLog::open(&postgres(&cluster, "chain"), None).unwrap())
        .collect();
    std::thread::scope(|scope| {
        for thread in 0..8 {
            let log = &logs[thread % 2];
            scope.spawn(move || {
                for i in 0..25 {
                    log.append(AuditEvent {
                        action: "vend".into(),
                        caller: Some(format!("t{thread}-{i}")),
                        outcome: Outcome::Issued,
                        ..AuditEvent::default()
                    })
                    .unwrap();
                }
            });
        }
    });
    for log in &logs {
        let report = log.verify().unwrap();
        assert!(report.is_intact(), "{:?}", report.problems);
        assert_eq!(report.records, 200);
        assert_eq!(report.head_seq, Some(200));
    }
    let callers: std::collections::BTreeSet<String> = logs[1]
        .query(&AuditFilter {
            limit: 0,
            ..AuditFilter::default()
        })
        .unwrap()
        .into_iter()
        .filter_map(|r| r.event.caller)
        .collect();
    assert_eq!(callers.len(), 200, "every append its own record");

    // A record slipped in past the head is never overwritten: the append is refused.
    let db = postgres(&cluster, "chain");
    let records = db.open_tree(idfed::audit::RECORDS_TREE).unwrap();
    records
        .insert(201u64.to_be_bytes(), b"out of band")
        .unwrap();
    let e = logs[0]
        .append(AuditEvent {
            action: "vend".into(),
            outcome: Outcome::Issued,
            ..AuditEvent::default()
        })
        .unwrap_err();
    assert_eq!(e.code(), "audit_corrupt", "{e}");
    assert_eq!(
        records.get(201u64.to_be_bytes()).unwrap().as_deref(),
        Some(&b"out of band"[..])
    );
}

/// Durable appends that arrive while another replica holds the chain's head join the batch already
/// waiting for it: one turn at the head for all of them, not one for the first and one for the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_arriving_while_the_head_is_held_join_the_waiting_batch() {
    use idfed::audit::{AuditEvent, AuditLog, META_TREE, Outcome};
    use idfed::store::db::Isolation;
    use std::future::Future;
    use std::task::{Context, Waker};

    let cluster = PgCluster::start();
    cluster.create_database("batch");
    let log = AuditLog::open(&postgres(&cluster, "batch"), None).unwrap();
    let event = |i: usize| AuditEvent {
        action: "vend".into(),
        caller: Some(format!("caller-{i}")),
        outcome: Outcome::Issued,
        ..AuditEvent::default()
    };

    // Another replica takes its turn at the head and keeps it until told.
    let other = postgres(&cluster, "batch");
    let (held, is_held) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let meta = other.open_tree(META_TREE).unwrap();
        other
            .transaction_with::<1, _, ()>(Isolation::Locking, [&meta], |[meta]| {
                meta.get_for_update(b"head")?; // the chain's head, as every batch locks it
                held.send(()).unwrap();
                released.recv().unwrap();
                Ok(())
            })
            .unwrap();
    });
    is_held.recv().unwrap();
    let before = log.durability_stats();

    // The first append's batch waits for the head's lock in the database...
    let first = tokio::spawn({
        let log = log.clone();
        let event = event(0);
        async move { log.append_durable(event).await }
    });
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'batch' \
                   AND wait_event_type = 'Lock'";
    let mut polls = 0;
    while cluster.psql("batch", waiting) != "1" {
        polls += 1;
        assert!(polls < 3000, "the first batch never waited for the head");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...while nine more arrive: each is queued by its first poll.
    let mut rest: Vec<_> = (1..10)
        .map(|i| Box::pin(log.append_durable(event(i))))
        .collect();
    let mut context = Context::from_waker(Waker::noop());
    for append in &mut rest {
        assert!(append.as_mut().poll(&mut context).is_pending());
    }
    release.send(()).unwrap();
    holder.join().unwrap();

    first.await.unwrap().unwrap();
    for append in rest {
        append.await.unwrap();
    }
    let after = log.durability_stats();
    assert_eq!(after.durable_appends - before.durable_appends, 10);
    assert_eq!(
        after.flushes - before.flushes,
        1,
        "the ten appends were committed in one batch"
    );
    let report = log.verify().unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.records, 10);
}
