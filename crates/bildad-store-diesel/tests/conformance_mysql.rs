//! The conformance suite against `MysqlStore` on MariaDB, each case on its own fresh
//! database. Skips (with a notice) when MariaDB is unreachable, unless
//! BILDAD_REQUIRE_MYSQL=1.

use bildad_store_diesel::testing::TestMysql;

bildad_conformance::conformance_suite!(make);

async fn make() -> Option<bildad_conformance::Harness> {
    let db = TestMysql::fresh().await?;
    Some(bildad_conformance::Harness::new(db.store(), db))
}
