//! Fresh databases for tests — this crate's and other crates' (feature `testing`).
//!
//! Every test gets its own database, dropped when the guard is dropped, so tests never
//! share state and can run in parallel.

#[cfg(feature = "postgres")]
pub use pg::TestPg;

/// The PostgreSQL server tests, the bench and the chaos run use, unless
/// `BILDAD_TEST_DATABASE_URL` (or their `--database-url`) names another. The one copy.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
#[cfg(feature = "mysql")]
pub use mysql::{DEFAULT_MYSQL_URL, TestMysql};
#[cfg(feature = "sqlite")]
pub use sqlite::TestSqlite;

/// `base` (a database URL) with its database name replaced by `name`, the query string
/// kept: how tests, the bench and the chaos run address the databases they create.
pub fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let host_part = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use crate::PgStore;
    use bildad_core::JobStore;
    use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
    use std::sync::Arc;
    use std::time::Duration;

    use super::DEFAULT_URL;

    /// A uniquely named, migrated PostgreSQL database, dropped (`WITH (FORCE)`) on Drop.
    pub struct TestPg {
        name: String,
        admin_url: String,
        url: String,
        store: PgStore,
    }

    impl std::fmt::Debug for TestPg {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TestPg").field("url", &self.url).finish()
        }
    }

    use super::with_database;

    async fn admin(url: &str) -> Result<AsyncPgConnection, String> {
        match tokio::time::timeout(Duration::from_secs(5), AsyncPgConnection::establish(url)).await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out after 5 s".into()),
        }
    }

    impl TestPg {
        /// Creates and migrates a fresh database on the server of
        /// `BILDAD_TEST_DATABASE_URL` (default [`DEFAULT_URL`]).
        ///
        /// `None`, with a notice on stderr, when the server cannot be reached — unless
        /// `BILDAD_REQUIRE_POSTGRES=1`, then it panics, so CI cannot skip silently.
        pub async fn fresh() -> Option<TestPg> {
            let admin_url = std::env::var("BILDAD_TEST_DATABASE_URL")
                .unwrap_or_else(|_| DEFAULT_URL.to_string());
            let required = std::env::var("BILDAD_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            let mut conn = match admin(&admin_url).await {
                Ok(c) => c,
                Err(e) if required => {
                    panic!(
                        "BILDAD_REQUIRE_POSTGRES=1 but PostgreSQL at {admin_url} is unreachable: {e}"
                    )
                }
                Err(e) => {
                    eprintln!(
                        "NOTICE: skipping a PostgreSQL test: cannot reach {admin_url} ({e}). \
                         Set BILDAD_TEST_DATABASE_URL, or BILDAD_REQUIRE_POSTGRES=1 to fail instead."
                    );
                    return None;
                }
            };
            let name = format!("bildad_test_{}", uuid::Uuid::new_v4().simple());
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
            drop(conn);
            let url = with_database(&admin_url, &name);
            let guard_name = name.clone();
            let store = async {
                let store = PgStore::connect(&url).await?;
                store.migrate().await?;
                Ok::<_, bildad_core::StoreError>(store)
            }
            .await;
            let store = match store {
                Ok(s) => s,
                Err(e) => {
                    drop_database(admin_url.clone(), guard_name);
                    panic!("cannot migrate test database {name}: {e}");
                }
            };
            Some(TestPg {
                name,
                admin_url,
                url,
                store,
            })
        }

        /// The test database's URL.
        pub fn url(&self) -> &str {
            &self.url
        }

        /// The store on the test database, for `Arc<dyn JobStore>` callers.
        pub fn store(&self) -> Arc<dyn JobStore> {
            Arc::new(self.store.clone())
        }

        /// The concrete store (shares the pool with [`TestPg::store`]).
        pub fn pg(&self) -> &PgStore {
            &self.store
        }

        /// `EXPLAIN (ANALYZE, BUFFERS)` of the real claim, kill, expiry and finalize
        /// statements on this database, as (title, plan); every change is rolled back.
        pub async fn explain_hot_paths(
            &self,
            job_types: Vec<String>,
            node: &str,
        ) -> Result<Vec<(&'static str, String)>, bildad_core::StoreError> {
            self.store
                .explain_hot_paths(job_types, node.to_string())
                .await
        }
    }

    /// Drops `name` from a short-lived thread with its own runtime, so that Drop works
    /// inside or outside any runtime.
    fn drop_database(admin_url: String, name: String) {
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            rt.block_on(async {
                match admin(&admin_url).await {
                    Ok(mut c) => {
                        if let Err(e) = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                            .await
                        {
                            eprintln!("cannot drop test database {name}: {e}");
                        }
                    }
                    Err(e) => eprintln!("cannot drop test database {name}: {e}"),
                }
            });
        })
        .join();
        if joined.is_err() {
            eprintln!("dropping a test database panicked");
        }
    }

    impl Drop for TestPg {
        fn drop(&mut self) {
            self.store.close();
            drop_database(self.admin_url.clone(), self.name.clone());
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn database_name_is_replaced() {
            let f = super::with_database;
            assert_eq!(
                f("postgres://u@h:5432/postgres", "t"),
                "postgres://u@h:5432/t"
            );
            assert_eq!(
                f("postgres://u@h/postgres?sslmode=disable", "t"),
                "postgres://u@h/t?sslmode=disable"
            );
            assert_eq!(f("postgresql://h", "t"), "postgresql://h/t");
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use crate::SqliteStore;
    use bildad_core::JobStore;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// A migrated SQLite file in its own temporary directory, removed on Drop.
    #[derive(Debug)]
    pub struct TestSqlite {
        dir: PathBuf,
        url: String,
        store: SqliteStore,
    }

    impl TestSqlite {
        /// Creates and migrates a fresh SQLite file. Panics when the temporary directory
        /// cannot be written.
        pub async fn fresh() -> TestSqlite {
            let dir = std::env::temp_dir().join(format!("bildad-test-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            let url = format!("sqlite://{}", dir.join("bildad.db").display());
            let store = SqliteStore::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
            store
                .migrate()
                .await
                .unwrap_or_else(|e| panic!("cannot migrate {url}: {e}"));
            TestSqlite { dir, url, store }
        }

        /// The database's URL (`sqlite://…`).
        pub fn url(&self) -> &str {
            &self.url
        }

        /// The store, for `Arc<dyn JobStore>` callers.
        pub fn store(&self) -> Arc<dyn JobStore> {
            Arc::new(self.store.clone())
        }

        /// The concrete store (shares the pool with [`TestSqlite::store`]).
        pub fn sqlite(&self) -> &SqliteStore {
            &self.store
        }
    }

    impl Drop for TestSqlite {
        fn drop(&mut self) {
            self.store.close();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql {
    use super::with_database;
    use crate::MysqlStore;
    use bildad_core::JobStore;
    use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};
    use std::sync::Arc;
    use std::time::Duration;

    /// The MariaDB server tests use, unless `BILDAD_TEST_MYSQL_URL` names another.
    pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/mysql";

    /// A uniquely named, migrated MariaDB database, dropped on Drop.
    pub struct TestMysql {
        name: String,
        admin_url: String,
        url: String,
        store: MysqlStore,
    }

    impl std::fmt::Debug for TestMysql {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TestMysql").field("url", &self.url).finish()
        }
    }

    async fn admin(url: &str) -> Result<AsyncMysqlConnection, String> {
        match tokio::time::timeout(Duration::from_secs(5), AsyncMysqlConnection::establish(url))
            .await
        {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out after 5 s".into()),
        }
    }

    impl TestMysql {
        /// Creates and migrates a fresh database on the server of `BILDAD_TEST_MYSQL_URL`
        /// (default [`DEFAULT_MYSQL_URL`]).
        ///
        /// `None`, with a notice on stderr, when the server cannot be reached — unless
        /// `BILDAD_REQUIRE_MYSQL=1`, then it panics, so CI cannot skip silently.
        pub async fn fresh() -> Option<TestMysql> {
            let admin_url = std::env::var("BILDAD_TEST_MYSQL_URL")
                .unwrap_or_else(|_| DEFAULT_MYSQL_URL.to_string());
            let required = std::env::var("BILDAD_REQUIRE_MYSQL").is_ok_and(|v| v == "1");
            let mut conn = match admin(&admin_url).await {
                Ok(c) => c,
                Err(e) if required => {
                    panic!("BILDAD_REQUIRE_MYSQL=1 but MariaDB at {admin_url} is unreachable: {e}")
                }
                Err(e) => {
                    eprintln!(
                        "NOTICE: skipping a MariaDB test: cannot reach {admin_url} ({e}). \
                         Set BILDAD_TEST_MYSQL_URL, or BILDAD_REQUIRE_MYSQL=1 to fail instead."
                    );
                    return None;
                }
            };
            let name = format!("bildad_test_{}", uuid::Uuid::new_v4().simple());
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
            drop(conn);
            let url = with_database(&admin_url, &name);
            let store = async {
                let store = MysqlStore::connect(&url).await?;
                store.migrate().await?;
                Ok::<_, bildad_core::StoreError>(store)
            }
            .await;
            let store = match store {
                Ok(s) => s,
                Err(e) => {
                    drop_database(admin_url.clone(), name.clone());
                    panic!("cannot migrate test database {name}: {e}");
                }
            };
            Some(TestMysql {
                name,
                admin_url,
                url,
                store,
            })
        }

        /// The test database's URL.
        pub fn url(&self) -> &str {
            &self.url
        }

        /// The store on the test database, for `Arc<dyn JobStore>` callers.
        pub fn store(&self) -> Arc<dyn JobStore> {
            Arc::new(self.store.clone())
        }

        /// The concrete store (shares the pool with [`TestMysql::store`]).
        pub fn mysql(&self) -> &MysqlStore {
            &self.store
        }
    }

    /// Drops `name` from a short-lived thread with its own runtime, so that Drop works
    /// inside or outside any runtime.
    fn drop_database(admin_url: String, name: String) {
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            rt.block_on(async {
                match admin(&admin_url).await {
                    Ok(mut c) => {
                        if let Err(e) = c
                            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                            .await
                        {
                            eprintln!("cannot drop test database {name}: {e}");
                        }
                    }
                    Err(e) => eprintln!("cannot drop test database {name}: {e}"),
                }
            });
        })
        .join();
        if joined.is_err() {
            eprintln!("dropping a test database panicked");
        }
    }

    impl Drop for TestMysql {
        fn drop(&mut self) {
            self.store.close();
            drop_database(self.admin_url.clone(), self.name.clone());
        }
    }
}
