//! Subcommands and flags on an embedded SQLite database (and `migrate`, `engine run` and
//! `status` on MariaDB).

use crate::{Node, bildad, eventually};
use bildad_store_diesel::testing::TestMysql;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// A fresh, empty directory under the system temp dir.
pub(crate) fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("bildad-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let out = bildad()
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--database-url",
            "sqlite://unused.db",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--auth-token"), "{err}");
    assert!(err.contains("127.0.0.1"), "{err}");
    assert!(!std::path::Path::new("unused.db").exists());
}

#[test]
fn bad_flags_are_refused_with_a_message() {
    for args in [
        vec!["serve", "--killer-interval-seconds", "0"],
        vec!["serve", "--batch-size", "-3"],
        vec!["serve", "--max-concurrent-jobs", "lots"],
        vec![
            "serve",
            "--killer-interval-seconds",
            "10",
            "--node-dead-after-seconds",
            "5",
        ],
        vec!["engine", "fly"],
    ] {
        let out = bildad().args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!out.stderr.is_empty(), "{args:?} gave no message");
    }
    let help = bildad().args(["serve", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--database-url",
        "--listen",
        "--node-name",
        "--auth-token",
        "--killer-interval-seconds",
        "--engine-interval-seconds",
        "--batch-size",
        "--expiry-grace-seconds",
        "--node-dead-after-seconds",
        "--retry-backoff-seconds",
        "--max-concurrent-jobs",
        "--wake-on-enqueue",
        "BILDAD_WAKE_ON_ENQUEUE",
        "BILDAD_DATABASE_URL",
        "BILDAD_MAX_CONCURRENT_JOBS",
    ] {
        assert!(text.contains(flag), "{flag} missing from serve --help");
    }
}

#[test]
fn migrate_engine_run_and_status_work_from_the_shell() {
    let dir = scratch("cli");
    migrate_engine_run_and_status(&format!("sqlite://{}", dir.join("jobs.db").display()));
    let _ = std::fs::remove_dir_all(dir);
}

/// The same on an empty MariaDB database (on the server of `BILDAD_TEST_MYSQL_URL`;
/// skipped when none answers, unless `BILDAD_REQUIRE_MYSQL=1`). A failing run leaves its
/// `bildad_cli_*` database behind for a look.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_engine_run_and_status_work_from_the_shell_on_mysql() {
    // TestMysql says whether the server is there (and skips or panics as asked).
    if TestMysql::fresh().await.is_none() {
        return;
    }
    let server = std::env::var("BILDAD_TEST_MYSQL_URL")
        .unwrap_or_else(|_| bildad_store_diesel::testing::DEFAULT_MYSQL_URL.to_owned());
    let empty = bildad_chaos::db::FreshDatabase::create(&server, "cli")
        .await
        .unwrap();
    let url = empty.url.clone();
    tokio::task::spawn_blocking(move || migrate_engine_run_and_status(&url))
        .await
        .unwrap();
    empty.drop_database().await.unwrap();
}

fn migrate_engine_run_and_status(url: &str) {
    let url = url.to_owned();
    let out = bildad()
        .args(["migrate", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = bildad()
        .args(["engine", "run", "--database-url", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["start"]["ok_count"], 0);
    assert_eq!(report["expire"]["error_count"], 0);

    let out = bildad()
        .args(["status", "--json"])
        .env("BILDAD_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["queue"]["available"], 0);
    let text = bildad()
        .args(["status", "--database-url", &url])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("available"));
}

/// `--wake-on-enqueue` on the embedded SQLite default: an entry posted without
/// `trigger_engine` (no cron request, no ticker) runs at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_sqlite_with_wake_on_enqueue_runs_what_is_posted() {
    let dir = scratch("wake");
    let url = format!("sqlite://{}", dir.join("jobs.db").display());
    let node = Node::serve(&url, &["--wake-on-enqueue"]);
    let (s, e) = node
        .post(
            "/jobs/queue",
            Some(json!({"template": "demo.echo", "context": {"hi": 2},
                        "job_run_identifier": "woken-1"})),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let run = eventually("woken run done", Duration::from_secs(10), || async {
        let (_, r) = node.get("/jobs/runs?identifier=woken-1").await;
        (r["items"][0]["status"] == "DONE").then(|| r["items"][0].clone())
    })
    .await;
    assert_eq!(run["result"], "SUCCEEDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_sqlite_runs_the_demo_jobs_and_stops_cleanly_on_sigterm() {
    let dir = scratch("serve");
    let url = format!("sqlite://{}", dir.join("jobs.db").display());
    let node = Node::serve(
        &url,
        &[
            "--killer-interval-seconds",
            "1",
            "--retry-backoff-seconds",
            "0",
        ],
    );
    let (s, health) = node.get("/jobs/health").await;
    assert_eq!((s, health), (200, json!({"status": "ok"})));
    let (s, templates) = node.get("/jobs/templates").await;
    assert_eq!(s, 200);
    assert_eq!(
        templates["total"],
        bildad::demo::templates().len(),
        "{templates}"
    );

    let (s, e) = node
        .post(
            "/jobs/queue",
            Some(
                json!({"template": "demo.echo", "context": {"hi": 1}, "trigger_engine": true,
                        "job_run_identifier": "echo-1"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{e}");
    let run = eventually("echo run done", Duration::from_secs(10), || async {
        let (_, r) = node.get("/jobs/runs?identifier=echo-1").await;
        (r["items"][0]["status"] == "DONE").then(|| r["items"][0].clone())
    })
    .await;
    assert_eq!(run["result"], "SUCCEEDED");
    assert_eq!(run["output"], json!({"hi": 1}));

    // demo.panic: the panic message becomes the reason.
    node.post(
        "/jobs/queue",
        Some(
            json!({"template": "demo.panic", "context": {"message": "kaboom"},
                    "max_retries": 0, "job_run_identifier": "p1", "trigger_engine": true}),
        ),
    )
    .await;
    let run = eventually("panic run done", Duration::from_secs(10), || async {
        let (_, r) = node.get("/jobs/runs?identifier=p1").await;
        (r["items"][0]["status"] == "DONE").then(|| r["items"][0].clone())
    })
    .await;
    assert_eq!(run["result"], "FAILED");
    assert!(run["reason"].as_str().unwrap().contains("kaboom"), "{run}");

    let status = node.terminate();
    assert!(status.success(), "exit status {status:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// The default `bildad serve` (no token, loopback) refuses what a web page could send
/// it (a rebinding `Host`, a cross-site `Origin`) and serves the API viewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenless_serve_refuses_foreign_hosts_and_sites_and_serves_the_viewer() {
    let dir = scratch("tokenless");
    let url = format!("sqlite://{}", dir.join("jobs.db").display());
    let node = Node::serve(&url, &[]);
    let post = |extra: (&'static str, &'static str)| {
        node.http
            .post(node.url("/jobs/engine/run"))
            .header(extra.0, extra.1)
            .send()
    };
    let r = post(("host", "rebound.example:4000")).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = post(("origin", "http://evil.example")).await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "forbidden");
    let own = node.base.clone();
    let r = node
        .http
        .post(node.url("/jobs/engine/run"))
        .header("origin", own)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = node.http.get(node.url("/jobs/docs")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("/jobs/engine/run"));
}
