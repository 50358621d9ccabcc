//! The conformance suite against `PgStore`, each case on its own fresh database.
//! Skips (with a notice) when PostgreSQL is unreachable, unless BILDAD_REQUIRE_POSTGRES=1.

use bildad_store_diesel::testing::TestPg;

bildad_conformance::conformance_suite!(make);

async fn make() -> Option<bildad_conformance::Harness> {
    let db = TestPg::fresh().await?;
    Some(bildad_conformance::Harness::new(db.store(), db))
}
