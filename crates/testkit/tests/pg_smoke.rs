//! The PostgreSQL fixture starts a real cluster and answers queries.
#![allow(clippy::unwrap_used)]

#[test]
fn throwaway_cluster_answers() {
    let pg = lifeboat_testkit::PgCluster::start();
    assert_eq!(pg.psql("postgres", "SELECT 40 + 2"), "42");
    pg.psql("postgres", "CREATE DATABASE app");
    pg.pgbench("app", &["-i", "-s", "1", "-q"]);
    assert_eq!(pg.psql("app", "SELECT count(*) FROM pgbench_accounts"), "100000");
}
