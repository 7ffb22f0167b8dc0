use std::time::UNIX_EPOCH;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

fn setup(retention: Option<Duration>) -> (tempfile::TempDir, crate::store::Db, AuditLog) {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
    let log = AuditLog::open(&db, retention).unwrap();
    (dir, db, log)
}

fn event(caller: &str, connector: &str, outcome: Outcome) -> AuditEvent {
    AuditEvent {
        request_id: uuid::Uuid::new_v4().to_string(),
        action: "vend".into(),
        caller: Some(caller.into()),
        caller_kind: Some("user".into()),
        source_ip: Some("10.0.0.1".into()),
        connector_id: Some(format!("id-{connector}")),
        connector: Some(connector.into()),
        outcome,
        duration_seconds: Some(3600),
        ..AuditEvent::default()
    }
}

fn append_n(log: &AuditLog, n: usize) -> Vec<AuditRecord> {
    (0..n)
        .map(|i| {
            log.append(event(&format!("user{i}"), "dev", Outcome::Issued))
                .unwrap()
        })
        .collect()
}

fn records(db: &crate::store::Db) -> crate::store::db::Tree {
    db.open_tree(RECORDS_TREE).unwrap()
}

fn meta(db: &crate::store::Db) -> crate::store::db::Tree {
    db.open_tree(META_TREE).unwrap()
}

/// Rewrites record `seq`'s body with `edit`; with `rehash`, also stores the body's new hash (as someone
/// covering their tracks would).
fn tamper(db: &crate::store::Db, seq: u64, rehash: bool, edit: impl FnOnce(&mut Value)) {
    let tree = records(db);
    let value = tree.get(seq.to_be_bytes()).unwrap().expect("record exists");
    let (hash, body) = value.split_at(32);
    let mut body: Value = serde_json::from_slice(body).unwrap();
    edit(&mut body);
    let body = serde_json::to_vec(&body).unwrap();
    let mut new = if rehash {
        Sha256::digest(&body).to_vec()
    } else {
        hash.to_vec()
    };
    new.extend_from_slice(&body);
    tree.insert(seq.to_be_bytes(), new).unwrap();
}

fn assert_problem(report: &VerifyReport, needle: &str) {
    assert!(
        report.problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {:#?}",
        report.problems
    );
}

#[test]
fn appends_link_into_a_chain_that_verifies() {
    let (_dir, _db, log) = setup(None);
    let empty = log.verify().unwrap();
    assert!(empty.is_intact(), "{empty:?}");
    assert_eq!(
        (empty.records, empty.first_seq, empty.last_seq),
        (0, None, None)
    );
    assert_eq!(log.head().unwrap(), ChainLink::genesis());

    let recs = append_n(&log, 5);
    assert_eq!(recs[0].seq, 1);
    assert_eq!(recs[0].prev_hash, GENESIS);
    for pair in recs.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1);
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    assert_eq!(
        log.head().unwrap(),
        ChainLink {
            seq: 5,
            hash: recs[4].hash.clone()
        }
    );
    let report = log.verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (
            report.records,
            report.first_seq,
            report.last_seq,
            report.head_seq
        ),
        (5, Some(1), Some(5), Some(5))
    );
    // What query reads back is what append returned.
    let mut back = log
        .query(&AuditFilter {
            limit: 0,
            ..AuditFilter::default()
        })
        .unwrap();
    back.reverse();
    assert_eq!(back, recs);
}

#[test]
fn record_json_has_rfc3339_time_and_snake_case_outcome_and_round_trips() {
    let (_dir, _db, log) = setup(None);
    let record = log
        .append(event("alice", "dev", Outcome::PluginDenied))
        .unwrap();
    let json = serde_json::to_value(&record).unwrap();
    let time = json["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.contains('T'), "{time}");
    assert_eq!(json["event"]["outcome"], "plugin_denied");
    let back: AuditRecord = serde_json::from_value(json).unwrap();
    assert_eq!(back, record);
    // An event written before a field existed still reads.
    let old: AuditEvent =
        serde_json::from_value(json!({"request_id": "r", "action": "vend"})).unwrap();
    assert_eq!(old.outcome, Outcome::Issued);
}

/// A change to a record's body.
type Edit = fn(&mut Value);

#[test]
fn an_edited_record_is_detected_whatever_the_field() {
    let edits: [(&str, Edit); 7] = [
        ("caller", |b| b["event"]["caller"] = json!("mallory")),
        ("outcome", |b| b["event"]["outcome"] = json!("refused")),
        ("capped", |b| b["event"]["capped"] = json!(true)),
        ("time", |b| b["time"] = json!("2001-01-01T00:00:00Z")),
        ("prev_hash", |b| b["prev_hash"] = json!(GENESIS)),
        ("reason", |b| b["event"]["reason"] = json!("nothing to see")),
        ("seq", |b| b["seq"] = json!(30)),
    ];
    for (field, edit) in edits {
        let (_dir, db, log) = setup(None);
        append_n(&log, 5);
        tamper(&db, 3, false, edit);
        let report = log.verify().unwrap();
        assert_problem(&report, "record 3: hash mismatch (the record was edited)");
        // An edited prev_hash also breaks the link to record 2; an edited seq is also named.
        let expected = if matches!(field, "prev_hash" | "seq") {
            2
        } else {
            1
        };
        assert_eq!(
            report.problems.len(),
            expected,
            "{field}: {:?}",
            report.problems
        );
    }
}

#[test]
fn an_edited_record_with_its_hash_recomputed_is_detected_by_the_next_link() {
    let (_dir, db, log) = setup(None);
    append_n(&log, 5);
    tamper(&db, 3, true, |b| b["event"]["outcome"] = json!("refused"));
    let report = log.verify().unwrap();
    assert_problem(
        &report,
        "record 4: prev_hash does not match record 3's hash",
    );

    // The last record, rewritten with its hash: only the head can tell.
    let (_dir, db, log) = setup(None);
    append_n(&log, 5);
    tamper(&db, 5, true, |b| b["event"]["caller"] = json!("mallory"));
    let report = log.verify().unwrap();
    assert_problem(&report, "head does not match record 5's hash");
}

#[test]
fn a_record_copied_under_another_seq_is_detected() {
    let (_dir, db, log) = setup(None);
    append_n(&log, 5);
    let tree = records(&db);
    let two = tree.get(2u64.to_be_bytes()).unwrap().unwrap();
    tree.insert(3u64.to_be_bytes(), two).unwrap();
    let report = log.verify().unwrap();
    assert_problem(&report, "record 3: holds seq 2");
}

#[test]
fn a_record_removed_in_the_middle_is_detected() {
    let (_dir, db, log) = setup(None);
    append_n(&log, 6);
    records(&db).remove(3u64.to_be_bytes()).unwrap();
    let report = log.verify().unwrap();
    assert_problem(&report, "record 4: record 3 missing (removed)");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);

    records(&db).remove(4u64.to_be_bytes()).unwrap();
    records(&db).remove(5u64.to_be_bytes()).unwrap();
    let report = log.verify().unwrap();
    assert_problem(&report, "record 6: records 3..=5 missing (removed)");
}

#[test]
fn the_last_record_removed_is_detected_by_the_head() {
    let (_dir, db, log) = setup(None);
    append_n(&log, 4);
    records(&db).remove(4u64.to_be_bytes()).unwrap();
    let report = log.verify().unwrap();
    assert_problem(&report, "head is at seq 4 but the last record is 3");

    // Every record removed.
    records(&db).clear().unwrap();
    let report = log.verify().unwrap();
    assert_problem(&report, "records 1..=4 removed from the tail");

    // The head removed too, with records left: noticed. A log opened now refuses to append (it would
    // start again at genesis, over record 1); the running log links its next record to the last one it
    // appended, overwriting nothing, so a tail cut back with its head rewound shows as a gap.
    let (_dir, db, log) = setup(None);
    let appended = append_n(&log, 3);
    meta(&db).remove(HEAD_KEY).unwrap();
    assert_problem(&log.verify().unwrap(), "head missing");
    let reopened = AuditLog::open(&db, None).unwrap();
    let err = reopened.append(AuditEvent::default()).unwrap_err();
    assert_eq!(err.code(), "audit_corrupt");
    let next = log.append(AuditEvent::default()).unwrap();
    assert_eq!((next.seq, &next.prev_hash), (4, &appended[2].hash));
    assert!(log.verify().unwrap().is_intact());

    let (_dir, db, log) = setup(None);
    let appended = append_n(&log, 4);
    records(&db).remove(4u64.to_be_bytes()).unwrap();
    records(&db).remove(3u64.to_be_bytes()).unwrap();
    meta(&db)
        .insert(
            HEAD_KEY,
            ChainLink {
                seq: 2,
                hash: appended[1].hash.clone(),
            }
            .encode(),
        )
        .unwrap();
    assert_eq!(log.append(AuditEvent::default()).unwrap().seq, 5);
    assert_problem(&log.verify().unwrap(), "records 3..=4");
}

#[test]
fn a_second_log_on_the_same_database_does_not_stall_the_first() {
    // Each keeps the tip it last appended; one behind the other's appends reads the head again.
    let (_dir, db, first) = setup(None);
    let second = AuditLog::open(&db, None).unwrap();
    for i in 0..3 {
        let a = first
            .append(event(&format!("a{i}"), "dev", Outcome::Issued))
            .unwrap();
        let b = second
            .append(event(&format!("b{i}"), "dev", Outcome::Issued))
            .unwrap();
        assert_eq!((a.seq, b.seq), (2 * i + 1, 2 * i + 2));
        assert_eq!(b.prev_hash, a.hash);
    }
    assert!(first.verify().unwrap().is_intact());
}

#[test]
fn a_record_inserted_out_of_band_is_detected() {
    // Appended after the head, perfectly linked: the head tells.
    let (_dir, db, log) = setup(None);
    let recs = append_n(&log, 3);
    let (value, _) = chain::seal(
        4,
        SystemTime::now(),
        &recs[2].hash,
        &event("mallory", "prod", Outcome::Issued),
    );
    records(&db).insert(4u64.to_be_bytes(), value).unwrap();
    let report = log.verify().unwrap();
    assert_problem(
        &report,
        "records 4..=4 beyond the head (seq 3): appended out of band",
    );
    // And the real next append does not overwrite it.
    let err = log.append(AuditEvent::default()).unwrap_err();
    assert!(matches!(err, AuditError::Corrupt(ref m) if m.contains("record 4 already exists")));

    // A key that is not a seq.
    let (_dir, db, log) = setup(None);
    append_n(&log, 2);
    records(&db).insert(b"extra", b"x").unwrap();
    assert_problem(&log.verify().unwrap(), "not a sequence number");

    // Before the retention anchor.
    let (_dir, db, log) = setup(Some(Duration::from_secs(60)));
    append_n(&log, 4);
    log.prune(SystemTime::now() + Duration::from_secs(3600))
        .unwrap();
    append_n(&log, 1);
    let (value, _) = chain::seal(2, SystemTime::now(), GENESIS, &AuditEvent::default());
    records(&db).insert(2u64.to_be_bytes(), value).unwrap();
    assert_problem(
        &log.verify().unwrap(),
        "record 2: at or before the retention anchor (seq 4)",
    );
}

#[test]
fn a_broken_anchor_is_detected() {
    let pruned = || {
        let (dir, db, log) = setup(Some(Duration::from_secs(60)));
        append_n(&log, 5);
        let later = SystemTime::now() + Duration::from_secs(3600);
        // Keep the last two: prune up to record 3's time.
        assert_eq!(log.prune(later).unwrap(), 5);
        append_n(&log, 3);
        assert!(log.verify().unwrap().is_intact());
        (dir, db, log)
    };

    // Its hash altered.
    let (_dir, db, log) = pruned();
    let anchor = ChainLink {
        seq: 5,
        hash: "ab".repeat(32),
    };
    meta(&db).insert(ANCHOR_KEY, anchor.encode()).unwrap();
    assert_problem(
        &log.verify().unwrap(),
        "record 6: prev_hash does not match the retention anchor's hash",
    );

    // Its seq altered.
    let (_dir, db, log) = pruned();
    let mut anchor = ChainLink::decode(&meta(&db).get(ANCHOR_KEY).unwrap().unwrap()).unwrap();
    anchor.seq = 3;
    meta(&db).insert(ANCHOR_KEY, anchor.encode()).unwrap();
    assert_problem(
        &log.verify().unwrap(),
        "record 6: records 4..=5 missing (removed), or the retention anchor (seq 3) was altered",
    );

    // Removed.
    let (_dir, db, log) = pruned();
    meta(&db).remove(ANCHOR_KEY).unwrap();
    assert_problem(&log.verify().unwrap(), "record 6: records 1..=5 missing");

    // Unreadable.
    let (_dir, db, log) = pruned();
    meta(&db).insert(ANCHOR_KEY, b"garbage").unwrap();
    assert_problem(&log.verify().unwrap(), "retention anchor unreadable");
}

#[test]
fn prune_keeps_the_chain_verifiable_and_tampering_after_it_is_still_detected() {
    let retention = Duration::from_secs(60);
    let (_dir, db, log) = setup(Some(retention));
    let first = append_n(&log, 5);
    // Nothing is old yet.
    assert_eq!(log.prune(SystemTime::now()).unwrap(), 0);
    // An hour on, all five are.
    assert_eq!(
        log.prune(SystemTime::now() + Duration::from_secs(3600))
            .unwrap(),
        5
    );
    let report = log.verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.records, report.anchor_seq), (0, 5));
    assert_eq!(log.head().unwrap().hash, first[4].hash);

    let more = append_n(&log, 3);
    assert_eq!(more[0].seq, 6);
    assert_eq!(more[0].prev_hash, first[4].hash);
    let report = log.verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (
            report.records,
            report.first_seq,
            report.last_seq,
            report.anchor_seq
        ),
        (3, Some(6), Some(8), 5)
    );

    tamper(&db, 7, false, |b| b["event"]["caller"] = json!("mallory"));
    assert_problem(&log.verify().unwrap(), "record 7: hash mismatch");
}

#[test]
fn prune_removes_only_what_is_older_than_the_retention() {
    let retention = Duration::from_secs(60);
    let (_dir, _db, log) = setup(Some(retention));
    let mut recs = Vec::new();
    for i in 0..5 {
        recs.push(
            log.append(event(&format!("u{i}"), "dev", Outcome::Issued))
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // At record 3's time plus the retention, records 1 and 2 are older than the retention.
    assert_eq!(log.prune(recs[2].time + retention).unwrap(), 2);
    let report = log.verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.first_seq, report.anchor_seq), (Some(3), 2));
    // Without a retention, nothing is ever pruned.
    let (_dir, _db, forever) = setup(None);
    append_n(&forever, 2);
    assert_eq!(
        forever
            .prune(SystemTime::now() + Duration::from_secs(1 << 40))
            .unwrap(),
        0
    );
}

#[test]
fn prune_works_in_batches_over_many_records() {
    let (_dir, _db, log) = setup(Some(Duration::from_secs(1)));
    append_n(&log, PRUNE_BATCH * 2 + 10);
    let removed = log
        .prune(SystemTime::now() + Duration::from_secs(10))
        .unwrap();
    assert_eq!(removed, (PRUNE_BATCH * 2 + 10) as u64);
    let report = log.verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.anchor_seq, removed);
}

#[test]
fn prune_does_not_launder_a_tampered_record_into_the_anchor() {
    let (_dir, db, log) = setup(Some(Duration::from_secs(60)));
    append_n(&log, 5);
    tamper(&db, 3, false, |b| b["event"]["caller"] = json!("mallory"));
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(log.prune(later).unwrap(), 2, "stops before record 3");
    let report = log.verify().unwrap();
    assert_eq!(report.anchor_seq, 2);
    assert_problem(&report, "record 3: hash mismatch");

    // A gap stops it too.
    let (_dir, db, log) = setup(Some(Duration::from_secs(60)));
    append_n(&log, 5);
    records(&db).remove(2u64.to_be_bytes()).unwrap();
    assert_eq!(log.prune(later).unwrap(), 1);
    assert_problem(&log.verify().unwrap(), "record 3: record 2 missing");
}

#[test]
fn concurrent_appends_make_one_linear_chain() {
    let (_dir, _db, log) = setup(None);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| {
                        log.append(event(&format!("t{t}-{i}"), "dev", Outcome::Issued))
                            .unwrap()
                            .seq
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=400).collect::<Vec<_>>());
    let report = log.verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 400);
}

#[test]
fn verify_while_appending_reports_no_false_problems() {
    let (_dir, _db, log) = setup(None);
    append_n(&log, 50);
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || append_n(&log, 300))
    };
    for _ in 0..5 {
        let report = log.verify().unwrap();
        assert!(report.is_intact(), "{report:?}");
    }
    writer.join().unwrap();
    assert!(log.verify().unwrap().is_intact());
}

#[test]
fn query_filters_newest_first_with_a_limit() {
    let (_dir, _db, log) = setup(None);
    let a1 = log.append(event("alice", "dev", Outcome::Issued)).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let b1 = log.append(event("bob", "prod", Outcome::Refused)).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let a2 = log
        .append(event("alice", "prod", Outcome::PluginDenied))
        .unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let s1 = log
        .append(event("system:ci", "dev", Outcome::Issued))
        .unwrap();

    let query = |filter: AuditFilter| -> Vec<u64> {
        log.query(&filter)
            .unwrap()
            .into_iter()
            .map(|r| r.seq)
            .collect()
    };
    assert_eq!(query(AuditFilter::default()), [4, 3, 2, 1]);
    assert_eq!(
        query(AuditFilter {
            limit: 2,
            ..AuditFilter::default()
        }),
        [4, 3]
    );
    assert_eq!(
        query(AuditFilter {
            caller: Some("alice".into()),
            ..AuditFilter::default()
        }),
        [a2.seq, a1.seq]
    );
    assert_eq!(
        query(AuditFilter {
            connector: Some("prod".into()),
            ..AuditFilter::default()
        }),
        [a2.seq, b1.seq]
    );
    assert_eq!(
        query(AuditFilter {
            connector: Some("id-dev".into()),
            ..AuditFilter::default()
        }),
        [s1.seq, a1.seq]
    );
    assert_eq!(
        query(AuditFilter {
            outcome: Some(Outcome::Issued),
            ..AuditFilter::default()
        }),
        [s1.seq, a1.seq]
    );
    assert_eq!(
        query(AuditFilter {
            since: Some(b1.time),
            until: Some(s1.time),
            ..AuditFilter::default()
        }),
        [a2.seq, b1.seq]
    );
    let denied_by = |binding: &str, plugin: Option<&str>| {
        let mut e = event("carol", "prod", Outcome::PluginDenied);
        e.binding = Some(binding.into());
        e.plugin = plugin.map(str::to_owned);
        log.append(e).unwrap().seq
    };
    let d1 = denied_by("b-1", None);
    let _d2 = denied_by("b-2", None);
    let d3 = denied_by("b-3", Some("p-1"));
    let _d4 = denied_by("b-1", Some("p-2"));
    let of_plugin = |digest: &str, bindings: &[&str]| AuditFilter {
        plugin: Some(PluginRecords {
            digest: digest.into(),
            bindings: bindings.iter().map(|b| b.to_string()).collect(),
        }),
        ..AuditFilter::default()
    };
    // Records that name the plugin, and older ones (naming none) of the bindings given.
    assert_eq!(query(of_plugin("p-1", &["b-1"])), [d3, d1]);
    assert_eq!(query(of_plugin("p-1", &[])), [d3]);
    assert_eq!(query(of_plugin("p-3", &[])), Vec::<u64>::new());
    assert_eq!(
        query(AuditFilter {
            caller: Some("alice".into()),
            connector: Some("prod".into()),
            outcome: Some(Outcome::Issued),
            ..AuditFilter::default()
        }),
        Vec::<u64>::new()
    );
}

#[test]
fn a_reopened_database_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
        let log = AuditLog::open(&db, None).unwrap();
        let recs = append_n(&log, 3);
        log.flush().unwrap();
        recs[2].clone()
    };
    let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
    let log = AuditLog::open(&db, None).unwrap();
    let next = log.append(event("alice", "dev", Outcome::Failed)).unwrap();
    assert_eq!(next.seq, 4);
    assert_eq!(next.prev_hash, last.hash);
    let report = log.verify().unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 4);
}

#[test]
fn long_free_text_is_cut_on_a_char_boundary() {
    let (_dir, _db, log) = setup(None);
    let record = log
        .append(AuditEvent {
            reason: Some("é".repeat(MAX_TEXT_BYTES)),
            user_agent: Some("short".into()),
            ..AuditEvent::default()
        })
        .unwrap();
    let reason = record.event.reason.unwrap();
    assert!(reason.len() <= MAX_TEXT_BYTES && reason.ends_with('…'));
    assert_eq!(record.event.user_agent.as_deref(), Some("short"));
    assert!(record.time > UNIX_EPOCH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_appends_share_flushes() {
    let (_dir, _db, log) = setup(None);
    assert!(log.is_durable(), "durable by default");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                log.append_durable(event(&format!("user{i}"), "dev", Outcome::Issued))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in tasks {
        let record = task.await.unwrap();
        // Once append_durable returns, a flush that started after the append has finished.
        assert!(log.inner.synced.load(Ordering::Acquire) >= record.seq);
        seqs.push(record.seq);
    }
    seqs.sort();
    assert_eq!(seqs, (1..=64).collect::<Vec<u64>>());
    let stats = log.durability_stats();
    assert_eq!(stats.durable_appends, 64);
    assert!(log.verify().unwrap().is_intact());

    // One flush covers every record appended before it began; waiting for any of them then costs none.
    let appended: Vec<u64> = (0..10)
        .map(|i| {
            log.append(event(&format!("batch{i}"), "dev", Outcome::Issued))
                .unwrap()
                .seq
        })
        .collect();
    log.sync_through(*appended.last().unwrap()).await.unwrap();
    assert_eq!(log.durability_stats().flushes, stats.flushes + 1);
    for seq in appended {
        log.sync_through(seq).await.unwrap();
    }
    assert_eq!(
        log.durability_stats().flushes,
        stats.flushes + 1,
        "records already flushed wait for nothing"
    );
    let stats = log.durability_stats();

    // Off, nothing waits for the disk.
    log.set_durable(false);
    log.append_durable(event("late", "dev", Outcome::Issued))
        .await
        .unwrap();
    assert_eq!(log.durability_stats().flushes, stats.flushes);
    assert_eq!(log.durability_stats().durable_appends, 64);
}

#[test]
fn cached_is_recorded_only_when_set() {
    let (_dir, _db, log) = setup(None);
    let plain = log.append(event("alice", "dev", Outcome::Issued)).unwrap();
    let cached = log
        .append(AuditEvent {
            cached: true,
            access_key_id: Some("ASIAEXAMPLE".into()),
            ..event("alice", "dev", Outcome::Issued)
        })
        .unwrap();
    let shown = |r: &AuditRecord| serde_json::to_value(&r.event).unwrap();
    assert!(
        shown(&plain).get("cached").is_none(),
        "older records' bodies are unchanged"
    );
    assert_eq!(shown(&cached)["cached"], json!(true));
    let found = log.query(&AuditFilter::default()).unwrap();
    assert!(found[0].event.cached && !found[1].event.cached);
    assert!(log.verify().unwrap().is_intact());
}

#[test]
fn an_append_interrupted_before_its_head_is_completed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::store::Db::Sled(sled::open(dir.path()).unwrap());
    let log = AuditLog::open(&db, None).unwrap();
    let recs = append_n(&log, 3);
    // A crash between the record and its head: record 4 is there, linked, the head still at 3.
    let (value, record) = chain::seal(
        4,
        SystemTime::now(),
        &recs[2].hash,
        &event("alice", "dev", Outcome::Issued),
    );
    records(&db).insert(4u64.to_be_bytes(), value).unwrap();
    assert!(
        !log.verify().unwrap().is_intact(),
        "until the log is opened again"
    );
    drop(log);
    let log = AuditLog::open(&db, None).unwrap();
    assert_eq!(log.head().unwrap().seq, 4);
    assert_eq!(log.head().unwrap().hash, record.hash);
    assert!(log.verify().unwrap().is_intact());
    assert_eq!(
        log.append(event("bob", "dev", Outcome::Issued))
            .unwrap()
            .seq,
        5
    );

    // Durable appends leave the head to their flush, so a crash can leave several records past it:
    // each linked to the one before is completed, up to one that is not (left for verify).
    let recs = append_n(&log, 1);
    let mut prev = recs[0].hash.clone();
    for seq in 7u64..=9 {
        let (value, record) = chain::seal(
            seq,
            SystemTime::now(),
            &prev,
            &event("m", "x", Outcome::Issued),
        );
        records(&db).insert(seq.to_be_bytes(), value).unwrap();
        prev = record.hash;
    }
    let (value, _) = chain::seal(
        10,
        SystemTime::now(),
        &recs[0].hash,
        &event("m", "x", Outcome::Issued),
    );
    records(&db).insert(10u64.to_be_bytes(), value).unwrap();
    drop(log);
    let log = AuditLog::open(&db, None).unwrap();
    assert_eq!(
        log.head().unwrap(),
        ChainLink { seq: 9, hash: prev },
        "completed through 9; 10 does not link to 9"
    );
    assert!(!log.verify().unwrap().is_intact());
}

/// The head as stored, not caught up.
fn stored_head_seq(db: &crate::store::Db) -> u64 {
    ChainLink::decode(&meta(db).get(HEAD_KEY).unwrap().unwrap())
        .unwrap()
        .seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_append_leaves_its_head_to_the_flush() {
    let (_dir, db, log) = setup(None);
    assert_eq!(
        stored_head_seq(&db),
        0,
        "a fresh log has its head at genesis"
    );
    let first = log
        .append_durable(event("alice", "dev", Outcome::Issued))
        .await
        .unwrap();
    assert_eq!(stored_head_seq(&db), first.seq, "written by its flush");

    // Appended, its flush not yet run: the head is behind until it is read, verified or flushed.
    log.append_record(event("bob", "dev", Outcome::Issued), false)
        .unwrap();
    assert_eq!(stored_head_seq(&db), 1);
    assert!(log.verify().unwrap().is_intact());
    assert_eq!(stored_head_seq(&db), 2);
    log.append_record(event("carol", "dev", Outcome::Issued), false)
        .unwrap();
    assert_eq!(log.head().unwrap().seq, 3);
    log.append_record(event("dan", "dev", Outcome::Issued), false)
        .unwrap();
    log.flush().unwrap();
    assert_eq!(stored_head_seq(&db), 4);

    // An administrator's change appends after the last record, not over it.
    log.append_record(event("erin", "dev", Outcome::Issued), false)
        .unwrap();
    let admin = {
        let _held = log.lock_appends().unwrap();
        db.transaction([&records(&db), &meta(&db)], |[records, meta]| {
            append_in(
                records,
                meta,
                &event("admin", "dev", Outcome::Issued),
                SystemTime::now(),
            )
        })
        .unwrap()
    };
    assert_eq!(admin.seq, 6);
    let next = log.append(event("fay", "dev", Outcome::Issued)).unwrap();
    assert_eq!((next.seq, &next.prev_hash), (7, &admin.hash));
    assert!(log.verify().unwrap().is_intact());
}
