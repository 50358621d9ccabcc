//! The conformance suite against `SqliteStore`, each case on its own fresh file.

use bildad_store_diesel::testing::TestSqlite;

bildad_conformance::conformance_suite!(make);

async fn make() -> Option<bildad_conformance::Harness> {
    let db = TestSqlite::fresh().await;
    Some(bildad_conformance::Harness::new(db.store(), db))
}
