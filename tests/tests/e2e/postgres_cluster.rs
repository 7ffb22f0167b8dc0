//! The test harness's throw-away PostgreSQL cluster (`idfed_tests::postgres`), which the PostgreSQL
//! store's tests stand on: made, queried, restarted with its data, removed.

use std::process::Command;

use idfed_tests::postgres::{PgCluster, bin_dir};

#[test]
fn a_cluster_is_made_restarted_with_its_data_and_removed() {
    let cluster = PgCluster::start();
    assert_eq!(cluster.psql("postgres", "SELECT 40 + 2"), "42");
    cluster.create_database("idfed_test");
    cluster.psql(
        "idfed_test",
        "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before the restart')",
    );
    // Only on loopback.
    assert_eq!(
        cluster.psql("postgres", "SHOW listen_addresses"),
        "127.0.0.1"
    );

    cluster.stop();
    let refused = Command::new(bin_dir().unwrap().join("psql"))
        .args(["-X", "-h", "127.0.0.1", "-p", &cluster.port().to_string()])
        .args(["-U", "idfed", "-d", "postgres", "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "a stopped cluster answered");

    cluster.start_again();
    assert_eq!(
        cluster.psql("idfed_test", "SELECT v FROM kept"),
        "before the restart"
    );
    assert!(cluster.url("idfed_test").ends_with("/idfed_test"));

    let port = cluster.port();
    drop(cluster);
    // Gone: nothing answers on its port any more.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
