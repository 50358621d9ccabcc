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

/// What the PostgreSQL and MariaDB helpers share: a server named by an environment
/// variable, on which each test creates a database of its own and drops it afterwards.
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod server {
    use diesel_async::{AsyncConnection, SimpleAsyncConnection};
    use std::future::Future;
    use std::time::Duration;

    /// A database server the tests use.
    pub(super) struct Server {
        /// Its name in messages.
        pub(super) name: &'static str,
        /// The variable that names its admin URL, and the URL without it.
        pub(super) url_var: &'static str,
        pub(super) default_url: &'static str,
        /// The variable that, set to 1, makes an unreachable server a failure.
        pub(super) require_var: &'static str,
    }

    async fn admin<C: AsyncConnection>(url: &str) -> Result<C, String> {
        match tokio::time::timeout(Duration::from_secs(5), C::establish(url)).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("timed out after 5 s".into()),
        }
    }

    impl Server {
        /// Creates a uniquely named database; its admin URL and name. `None`, with a
        /// notice on stderr, when the server cannot be reached — unless required, then it
        /// panics, so CI cannot skip silently.
        pub(super) async fn create<C>(&self) -> Option<(String, String)>
        where
            C: AsyncConnection + SimpleAsyncConnection,
        {
            let admin_url =
                std::env::var(self.url_var).unwrap_or_else(|_| self.default_url.to_string());
            let required = std::env::var(self.require_var).is_ok_and(|v| v == "1");
            let mut conn = match admin::<C>(&admin_url).await {
                Ok(c) => c,
                Err(e) if required => {
                    panic!(
                        "{}=1 but {} at {admin_url} is unreachable: {e}",
                        self.require_var, self.name
                    )
                }
                Err(e) => {
                    eprintln!(
                        "NOTICE: skipping a {} test: cannot reach {admin_url} ({e}). Set {}, or \
                         {}=1 to fail instead.",
                        self.name, self.url_var, self.require_var
                    );
                    return None;
                }
            };
            let name = format!("bildad_test_{}", uuid::Uuid::new_v4().simple());
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
            Some((admin_url, name))
        }

        /// The migrated store that `open` gives, or the database dropped (with
        /// `drop_sql`) and a panic.
        pub(super) async fn migrated<C, S, F>(
            admin_url: &str,
            name: &str,
            drop_sql: String,
            open: F,
        ) -> S
        where
            C: AsyncConnection + SimpleAsyncConnection + 'static,
            F: Future<Output = Result<S, bildad_core::StoreError>>,
        {
            match open.await {
                Ok(s) => s,
                Err(e) => {
                    drop_database::<C>(admin_url.to_owned(), drop_sql);
                    panic!("cannot migrate test database {name}: {e}");
                }
            }
        }
    }

    /// Runs `drop_sql` on the server from a short-lived thread with its own runtime, so
    /// that Drop works inside or outside any runtime.
    pub(super) fn drop_database<C>(admin_url: String, drop_sql: String)
    where
        C: AsyncConnection + SimpleAsyncConnection + 'static,
    {
        let joined = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for dropping the test database");
            rt.block_on(async {
                match admin::<C>(&admin_url).await {
                    Ok(mut c) => {
                        if let Err(e) = c.batch_execute(&drop_sql).await {
                            eprintln!("cannot drop a test database ({drop_sql}): {e}");
                        }
                    }
                    Err(e) => eprintln!("cannot drop a test database ({drop_sql}): {e}"),
                }
            });
        })
        .join();
        if joined.is_err() {
            eprintln!("dropping a test database panicked");
        }
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::server::{Server, drop_database};
    use super::{DEFAULT_URL, with_database};
    use crate::PgStore;
    use bildad_core::JobStore;
    use diesel_async::AsyncPgConnection;
    use std::sync::Arc;

    const POSTGRES: Server = Server {
        name: "PostgreSQL",
        url_var: "BILDAD_TEST_DATABASE_URL",
        default_url: DEFAULT_URL,
        require_var: "BILDAD_REQUIRE_POSTGRES",
    };

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

    fn drop_sql(name: &str) -> String {
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    }

    impl TestPg {
        /// Creates and migrates a fresh database on the server of
        /// `BILDAD_TEST_DATABASE_URL` (default [`DEFAULT_URL`]).
        ///
        /// `None`, with a notice on stderr, when the server cannot be reached — unless
        /// `BILDAD_REQUIRE_POSTGRES=1`, then it panics, so CI cannot skip silently.
        pub async fn fresh() -> Option<TestPg> {
            let (admin_url, name) = POSTGRES.create::<AsyncPgConnection>().await?;
            let url = with_database(&admin_url, &name);
            let open = async {
                let store = PgStore::connect(&url).await?;
                store.migrate().await?;
                Ok(store)
            };
            let store = Server::migrated::<AsyncPgConnection, _, _>(
                &admin_url,
                &name,
                drop_sql(&name),
                open,
            )
            .await;
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

    impl Drop for TestPg {
        fn drop(&mut self) {
            self.store.close();
            drop_database::<AsyncPgConnection>(self.admin_url.clone(), drop_sql(&self.name));
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
    use super::server::{Server, drop_database};
    use super::with_database;
    use crate::MysqlStore;
    use bildad_core::JobStore;
    use diesel_async::AsyncMysqlConnection;
    use std::sync::Arc;

    /// The MariaDB server tests use, unless `BILDAD_TEST_MYSQL_URL` names another.
    pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/mysql";

    const MARIADB: Server = Server {
        name: "MariaDB",
        url_var: "BILDAD_TEST_MYSQL_URL",
        default_url: DEFAULT_MYSQL_URL,
        require_var: "BILDAD_REQUIRE_MYSQL",
    };

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

    fn drop_sql(name: &str) -> String {
        format!("DROP DATABASE IF EXISTS {name}")
    }

    impl TestMysql {
        /// Creates and migrates a fresh database on the server of `BILDAD_TEST_MYSQL_URL`
        /// (default [`DEFAULT_MYSQL_URL`]).
        ///
        /// `None`, with a notice on stderr, when the server cannot be reached — unless
        /// `BILDAD_REQUIRE_MYSQL=1`, then it panics, so CI cannot skip silently.
        pub async fn fresh() -> Option<TestMysql> {
            let (admin_url, name) = MARIADB.create::<AsyncMysqlConnection>().await?;
            let url = with_database(&admin_url, &name);
            let open = async {
                let store = MysqlStore::connect(&url).await?;
                store.migrate().await?;
                Ok(store)
            };
            let store = Server::migrated::<AsyncMysqlConnection, _, _>(
                &admin_url,
                &name,
                drop_sql(&name),
                open,
            )
            .await;
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

    impl Drop for TestMysql {
        fn drop(&mut self) {
            self.store.close();
            drop_database::<AsyncMysqlConnection>(self.admin_url.clone(), drop_sql(&self.name));
        }
    }
}
