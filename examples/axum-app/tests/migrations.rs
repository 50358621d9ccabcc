//! `cargo xtask install` copies migrations that, applied with diesel to a fresh PostgreSQL
//! database, give exactly the schema that Bildad's own store creates.

use bildad_store_diesel::testing::TestPg;
use diesel::QueryableByName;
use diesel::sql_types::Text;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use std::path::PathBuf;

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

/// Tables, columns, constraints and indexes of the `bildad_` tables, as sorted text.
async fn schema_of(url: &str) -> Vec<String> {
    let mut c = AsyncPgConnection::establish(url).await.unwrap();
    let q = "
      SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' '
             || is_nullable || ' ' || coalesce(column_default, '') AS line
        FROM information_schema.columns WHERE table_name LIKE 'bildad_%'
      UNION ALL
      SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' '
             || pg_get_constraintdef(oid)
        FROM pg_constraint WHERE conrelid::regclass::text LIKE 'bildad_%'
      UNION ALL
      SELECT 'index ' || indexdef FROM pg_indexes WHERE tablename LIKE 'bildad_%'
      UNION ALL
      SELECT 'options ' || relname || ' ' || coalesce(array_to_string(reloptions, ','), '')
        FROM pg_class WHERE relname LIKE 'bildad_%' AND relkind = 'r'";
    let mut lines: Vec<String> = diesel::sql_query(q)
        .load::<Line>(&mut c)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    lines.sort();
    lines
}

fn temp_app() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bildad-install-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[package]\nname = \"app\"\n").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn installed_migrations_give_bildads_schema() {
    let Some(own) = TestPg::fresh().await else {
        return;
    };
    let Some(copied) = TestPg::fresh().await else {
        return;
    };

    // A fresh app: the installer copies the migrations; the app applies them in order,
    // as `diesel migration run` does (each up.sql in its own transaction).
    let app = temp_app();
    let opts = xtask::install::Options::parse(&[
        "--app-dir".into(),
        app.display().to_string(),
        "--backend".into(),
        "postgres".into(),
    ])
    .unwrap();
    xtask::install::install(&opts, &xtask::install::repo_migrations_dir()).unwrap();
    let mut dirs: Vec<_> = std::fs::read_dir(app.join("migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty());

    // `copied` was migrated by the store when it was created; start it from nothing.
    let mut c = AsyncPgConnection::establish(copied.url()).await.unwrap();
    c.batch_execute(
        "DROP TABLE IF EXISTS bildad_runs, bildad_queue, bildad_templates, bildad_nodes, \
         bildad_queues, bildad_unique_keys, __diesel_schema_migrations CASCADE",
    )
    .await
    .unwrap();
    assert!(schema_of(copied.url()).await.is_empty());
    // Like `diesel migration run`, each migration is recorded under its version (the
    // digits of its directory's name before the `_`) in the same transaction, so the
    // store's own runner later skips it: re-running a migration that a later one
    // superseded (000005's view, widened by 000006) is not what an app ever does.
    c.batch_execute(
        "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
             version VARCHAR(50) PRIMARY KEY NOT NULL,
             run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
    )
    .await
    .unwrap();
    for d in &dirs {
        let up = std::fs::read_to_string(d.join("up.sql")).unwrap();
        let name = d.file_name().unwrap().to_string_lossy().into_owned();
        let version: String = name
            .split('_')
            .next()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let record =
            format!("INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}')");
        c.transaction::<_, diesel::result::Error, _>(async |t| {
            t.batch_execute(&up).await?;
            t.batch_execute(&record).await
        })
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    }

    let ours = schema_of(own.url()).await;
    assert!(ours.len() > 20, "{ours:#?}");
    assert_eq!(schema_of(copied.url()).await, ours);

    // The store's own embedded migrations, run after the app applied the copies, change
    // nothing and the store works.
    let store = bildad_store_diesel::connect(copied.url()).await.unwrap();
    assert_eq!(schema_of(copied.url()).await, ours);
    store.ping().await.unwrap();
    assert_eq!(store.stats().await.unwrap().templates, 0);
    let _ = std::fs::remove_dir_all(&app);
}

/// Bildad's migrations run through diesel-async's harness (`bildad_store_diesel::harness`,
/// as the app's `Database::migrate` does) give exactly the schema the store's own
/// `migrate` gives, under the same versions: the store's `migrate` afterwards applies
/// nothing.
#[tokio::test(flavor = "multi_thread")]
async fn harness_gives_bildads_schema_on_postgres() {
    let Some(own) = TestPg::fresh().await else {
        return;
    };
    let Some(app) = TestPg::fresh().await else {
        return;
    };
    let mut c = AsyncPgConnection::establish(app.url()).await.unwrap();
    c.batch_execute(
        "DROP TABLE bildad_runs, bildad_queue, bildad_templates, bildad_nodes, \
         bildad_queues, bildad_unique_keys, __diesel_schema_migrations CASCADE",
    )
    .await
    .unwrap();
    assert!(schema_of(app.url()).await.is_empty());

    let db = bildad_example_app::Database::connect(app.url())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let ours = schema_of(own.url()).await;
    assert_eq!(schema_of(app.url()).await, ours);
    assert_eq!(versions(&mut c).await, {
        let mut o = AsyncPgConnection::establish(own.url()).await.unwrap();
        let mut v = versions(&mut o).await;
        v.push("20261202100000".into()); // the app's users table
        v.sort(); // in version order, as `versions` reads them
        v
    });
    app.pg().migrate().await.unwrap();
    assert_eq!(schema_of(app.url()).await, ours);
}

/// The same on SQLite: the harness first, then the store's `migrate` applies nothing and
/// the store works.
#[tokio::test(flavor = "multi_thread")]
async fn harness_then_store_migrate_on_sqlite() {
    let dir = temp_app();
    let url = format!("sqlite://{}", dir.join("app.db").display());
    let db = bildad_example_app::Database::connect(&url).await.unwrap();
    db.migrate().await.unwrap();
    let bildad_example_app::Database::Sqlite { store, pool } = &db else {
        panic!("an SQLite URL gives the SQLite database");
    };
    let recorded = async || {
        let mut c = pool.get().await.unwrap();
        diesel::sql_query("SELECT version AS line FROM __diesel_schema_migrations ORDER BY version")
            .load::<Line>(&mut c)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.line)
            .collect::<Vec<_>>()
    };
    let before = recorded().await;
    let bildads = diesel::migration::MigrationSource::<diesel::sqlite::Sqlite>::migrations(
        &bildad_store_diesel::harness::SQLITE,
    )
    .unwrap()
    .len();
    assert_eq!(before.len(), bildads + 1, "{before:?}"); // and the app's users table
    store.migrate().await.unwrap();
    assert_eq!(recorded().await, before);
    let store = db.store();
    assert_eq!(store.stats().await.unwrap().templates, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The versions recorded in `__diesel_schema_migrations`, in order.
async fn versions(c: &mut AsyncPgConnection) -> Vec<String> {
    diesel::sql_query("SELECT version AS line FROM __diesel_schema_migrations ORDER BY version")
        .load::<Line>(c)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}
