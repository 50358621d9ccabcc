//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver) against a running `bildad serve`.
//!
//! Skips with a notice when `chromium` or `chromedriver` is missing, unless
//! `BILDAD_REQUIRE_BROWSER=1` (CI sets it). With `BILDAD_SAVE_SCREENSHOT=1` the overview's
//! screenshot is written to docs/dashboard.png.

use crate::Node;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "browser-test-token";
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn which(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A chromedriver process and one browser session; both ended when dropped.
struct Driver {
    child: Child,
    http: reqwest::Client,
    session: String,
    url: String,
}

impl Driver {
    async fn start(chromium: &Path, chromedriver: &Path, profile: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let mut driver = Driver {
            child,
            http,
            session: String::new(),
            url,
        };
        let status_url = format!("{}/status", driver.url);
        wait_until("chromedriver to be ready", Duration::from_secs(30), || {
            let http = driver.http.clone();
            let u = status_url.clone();
            async move {
                let r = http.get(&u).send().await.ok()?;
                let v: Value = r.json().await.ok()?;
                (v["value"]["ready"] == true).then_some(())
            }
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                         "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         "--disable-dev-shm-usage", "--window-size=1280,1000",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let v = driver.call("POST", "/session", Some(caps)).await;
        driver.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        driver
    }

    /// One WebDriver command; panics on a WebDriver error.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.try_call(method, path, body).await;
        if let Some(e) = v.get("error") {
            panic!("WebDriver {method} {path}: {e}: {}", v["message"]);
        }
        v
    }

    async fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.url)
        } else {
            format!("{}/session/{}{path}", self.url, self.session)
        };
        let req = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self
                .http
                .post(&url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let r = req
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .expect("WebDriver answers");
        let v: Value = r.json().await.expect("WebDriver answers JSON");
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    async fn current_url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn find(&self, css: &str) -> Option<String> {
        let v = self
            .try_call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.get(ELEMENT).and_then(Value::as_str).map(str::to_owned)
    }

    /// Waits for the element `css` to exist.
    async fn wait_for(&self, css: &str) -> String {
        wait_until(&format!("element {css}"), Duration::from_secs(20), || {
            self.find(css)
        })
        .await
    }

    async fn click(&self, css: &str) {
        let el = self.wait_for(css).await;
        self.call("POST", &format!("/element/{el}/click"), None)
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.wait_for(css).await;
        self.call("POST", &format!("/element/{el}/clear"), None)
            .await;
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The visible text of `css`, or empty when it does not exist (yet).
    async fn text(&self, css: &str) -> String {
        let Some(el) = self.find(css).await else {
            return String::new();
        };
        let v = self
            .try_call("GET", &format!("/element/{el}/text"), None)
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the text of `css` contains `needle`.
    async fn wait_text(&self, css: &str, needle: &str) {
        let limit = Duration::from_secs(20);
        wait_until(&format!("{css} to show {needle:?}"), limit, || async {
            self.text(css).await.contains(needle).then_some(())
        })
        .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": js, "args": []})),
        )
        .await
    }

    async fn screenshot(&self) -> Vec<u8> {
        let v = self.call("GET", "/screenshot", None).await;
        decode_base64(v.as_str().unwrap())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` until it returns `Some`, for at most `limit`.
async fn wait_until<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = probe().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= u32::from(value(*c)) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_in_a_real_browser() {
    let chromium = which(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = which(&["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        assert!(
            std::env::var("BILDAD_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "BILDAD_REQUIRE_BROWSER=1 but chromium or chromedriver is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "SKIPPED the_dashboard_works_in_a_real_browser: chromium or chromedriver not found \
             (apt-get install chromium chromium-driver)"
        );
        return;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = Scratch(
        std::env::temp_dir().join(format!("bildad-browser-{}-{nanos}", std::process::id())),
    );
    std::fs::create_dir_all(dir.0.join("profile")).unwrap();
    let db = format!("sqlite://{}", dir.0.join("bildad.db").display());
    let node = Node::serve(
        &db,
        &["--auth-token", TOKEN, "--killer-interval-seconds", "1"],
    );
    let api = reqwest::Client::new();
    let b = Driver::start(&chromium, &chromedriver, &dir.0.join("profile")).await;
    let dash = node.url("/jobs/dashboard");

    // Sign in once.
    b.goto(&dash).await;
    assert!(b.current_url().await.contains("/jobs/dashboard/login"));
    b.type_into("#token", TOKEN).await;
    b.click("button[type=submit]").await;
    b.wait_text("h1", "Overview").await;
    b.wait_text("main", "Nothing has run yet").await;

    // The enqueue form shows the server's schema errors inline.
    b.goto(&format!("{dash}/templates")).await;
    b.click("a[href$='/templates/demo.sleep']").await;
    b.type_into("#context", r#"{"seconds": "soon"}"#).await;
    b.click("#enqueue").await;
    b.wait_text("#context-errors", "/context/seconds").await;

    // Enqueue from a form; the job waits in the queue.
    b.goto(&format!("{dash}/templates/demo.echo")).await;
    b.type_into(
        "#context",
        r#"{"hello": "<script>window.__pwned = 1</script>"}"#,
    )
    .await;
    b.type_into("#job_run_identifier", "browser-echo").await;
    b.click("#trigger").await; // unchecked: enqueue only
    b.click("#enqueue").await;
    b.wait_text("main", "Enqueued browser-echo").await;
    b.wait_text("tr[data-identifier='browser-echo']", "AVAILABLE")
        .await;

    // Watch the runs page while the engine runs elsewhere: the run appears as
    // SUCCEEDED without a reload (the marker set on this page survives).
    b.goto(&format!("{dash}/runs?identifier=browser-echo"))
        .await;
    b.wait_text("#runs", "No run matches").await;
    b.script("window.__marker = 42;").await;
    let r = api
        .post(node.url("/jobs/engine/run"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    b.wait_text("#runs", "SUCCEEDED").await;
    assert_eq!(
        b.script("return window.__marker;").await,
        42,
        "the page reloaded"
    );
    b.click("#runs a[href*='/runs/']").await;
    b.wait_text("h1", "Run #").await;
    b.wait_text("main", "<script>window.__pwned = 1</script>")
        .await;
    assert_eq!(b.script("return window.__pwned === undefined;").await, true);

    // Stop, then remove, a running job.
    b.goto(&format!("{dash}/templates/demo.sleep")).await;
    b.type_into("#context", r#"{"seconds": 120}"#).await;
    b.type_into("#job_run_identifier", "browser-nap").await;
    b.click("#enqueue").await; // "run the engine right after" is checked
    b.wait_text("#runs", "RUNNING").await;
    b.goto(&format!("{dash}/queue")).await;
    b.wait_text("tr[data-identifier='browser-nap']", "RUNNING")
        .await;
    b.click("tr[data-identifier='browser-nap'] a[href$='/stop']")
        .await;
    b.wait_text("h1", "Stop this run?").await;
    b.click("#confirm").await;
    b.wait_text(".notice", "Stopped the run of browser-nap")
        .await;
    let entry: Value = api
        .get(node.url("/jobs/queue/browser-nap"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(entry["status"], "AVAILABLE", "{entry}");
    b.click("#run-engine").await;
    b.wait_text(".notice", "Engine pass: started 1").await;
    b.wait_text("tr[data-identifier='browser-nap']", "RUNNING")
        .await;
    b.click("tr[data-identifier='browser-nap'] a[href$='/remove']")
        .await;
    b.wait_text("h1", "Remove this entry?").await;
    b.click("#confirm").await;
    b.wait_text(".notice", "Removed browser-nap").await;
    let gone = api
        .get(node.url("/jobs/queue/browser-nap"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    b.goto(&format!("{dash}/runs?identifier=browser-nap")).await;
    b.wait_text("#runs", "Removed").await;
    b.wait_text("#runs", "Stopped").await;

    // A few more runs for a telling overview, then its screenshot.
    for (template, context) in [
        ("demo.echo", json!({"n": 1})),
        ("demo.echo", json!({"n": 2})),
        ("demo.fail", json!({"message": "card declined"})),
    ] {
        let r = api
            .post(node.url("/jobs/queue"))
            .bearer_auth(TOKEN)
            .json(
                &json!({"template": template, "context": context, "max_retries": 0,
                          "trigger_engine": true}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    b.goto(&dash).await;
    b.wait_text("#succeeded-hour", "3").await;
    b.wait_text("#failed-hour", "3").await;
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    if std::env::var("BILDAD_SAVE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/dashboard.png");
        std::fs::write(&docs, &png).unwrap();
        eprintln!("saved {}", docs.display());
    }
    let _ = b.try_call("DELETE", "", None).await;
}
