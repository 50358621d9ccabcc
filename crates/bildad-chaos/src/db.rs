//! The database side: a fresh database per run, the plan table, and the rows the checks
//! read. Everything the verdict rests on is read here, from the database alone.

use anyhow::{Context, Result};
use tokio_postgres::{Client, NoTls};

/// The server used when none is given: `BILDAD_TEST_DATABASE_URL` or the local one.
pub fn default_admin_url() -> String {
    std::env::var("BILDAD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| bildad_store_diesel::testing::DEFAULT_URL.to_owned())
}

/// Connects, driving the connection on a task.
///
/// # Errors
/// When the server cannot be reached.
pub async fn connect(url: &str) -> Result<Client> {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

pub use bildad_store_diesel::testing::with_database;

/// The URL without its password.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.rsplit_once('@')
    {
        let user = creds.split(':').next().unwrap_or_default();
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// A database created for one run on the server of `admin_url`.
#[derive(Debug)]
pub struct FreshDatabase {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    admin_url: String,
}

impl FreshDatabase {
    /// Creates `bildad_<tag>_<random>`.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn create(admin_url: &str, tag: &str) -> Result<Self> {
        let admin = connect(admin_url).await?;
        let name = format!(
            "bildad_{tag}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(Self {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    /// Drops the database (`WITH (FORCE)`).
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn drop_database(self) -> Result<()> {
        let admin = connect(&self.admin_url).await?;
        admin
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
            .with_context(|| format!("dropping database {}", self.name))?;
        Ok(())
    }
}

/// One row of `bildad_runs`, times as seconds since the epoch (database clock).
#[derive(Debug, Clone)]
pub struct RunRow {
    /// `job_run_identifier`.
    pub identifier: String,
    /// `retry`.
    pub retry: i32,
    /// `status`.
    pub status: String,
    /// `result`.
    pub result: Option<String>,
    /// `reason`.
    pub reason: Option<String>,
    /// `node` (instance id).
    pub node: String,
    /// `started_at`.
    pub started_at: f64,
    /// `ended_at`.
    pub ended_at: Option<f64>,
    /// `timeout_at`.
    pub timeout_at: f64,
}

/// One row of `bildad_nodes`.
#[derive(Debug, Clone)]
pub struct NodeRow {
    /// `instance_id`.
    pub instance_id: String,
    /// `name`.
    pub name: String,
    /// `last_heartbeat_at`.
    pub last_heartbeat_at: f64,
    /// Whether the instance recorded a clean departure.
    pub stopped: bool,
}

/// Every run.
///
/// # Errors
/// On a database error.
pub async fn runs(db: &Client) -> Result<Vec<RunRow>> {
    let rows = db
        .query(
            "SELECT job_run_identifier, retry, status, result, reason, node,
                    extract(epoch FROM started_at)::float8,
                    extract(epoch FROM ended_at)::float8,
                    extract(epoch FROM timeout_at)::float8
             FROM bildad_runs",
            &[],
        )
        .await
        .context("reading bildad_runs")?;
    Ok(rows
        .iter()
        .map(|r| RunRow {
            identifier: r.get(0),
            retry: r.get(1),
            status: r.get(2),
            result: r.get(3),
            reason: r.get(4),
            node: r.get(5),
            started_at: r.get(6),
            ended_at: r.get(7),
            timeout_at: r.get(8),
        })
        .collect())
}

/// Every node instance.
///
/// # Errors
/// On a database error.
pub async fn nodes(db: &Client) -> Result<Vec<NodeRow>> {
    let rows = db
        .query(
            "SELECT instance_id, name, extract(epoch FROM last_heartbeat_at)::float8,
                    stopped_at IS NOT NULL
             FROM bildad_nodes",
            &[],
        )
        .await
        .context("reading bildad_nodes")?;
    Ok(rows
        .iter()
        .map(|r| NodeRow {
            instance_id: r.get(0),
            name: r.get(1),
            last_heartbeat_at: r.get(2),
            stopped: r.get(3),
        })
        .collect())
}

/// Entries still in the queue, waiting or running: `(identifier, status)`.
///
/// # Errors
/// On a database error.
pub async fn queue(db: &Client) -> Result<Vec<(String, String)>> {
    let rows = db
        .query(
            "SELECT job_run_identifier, status FROM bildad_entries ORDER BY id",
            &[],
        )
        .await
        .context("reading bildad_queue")?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// `(entries in the queue, runs still RUNNING)`.
///
/// # Errors
/// On a database error.
pub async fn pending(db: &Client) -> Result<(i64, i64)> {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM bildad_entries),
                    (SELECT count(*) FROM bildad_runs WHERE status = 'RUNNING')",
            &[],
        )
        .await
        .context("counting pending work")?;
    Ok((row.get(0), row.get(1)))
}

/// The database clock, in seconds since the epoch.
///
/// # Errors
/// On a database error.
pub async fn now(db: &Client) -> Result<f64> {
    let row = db
        .query_one("SELECT extract(epoch FROM now())::float8", &[])
        .await?;
    Ok(row.get(0))
}
