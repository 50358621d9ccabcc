//! The `bildad` binary (SPEC §5): `serve` runs one node (migrations, the HTTP API,
//! the killer, an optional engine ticker); `migrate`, `engine run` and `status` work
//! on the database from the shell.

use anyhow::{Context, Result, bail};
use bildad::demo;
use bildad::http::{ApiConfig, router};
use bildad::runtime::NodeRuntime;
use bildad_core::{Backoff, JobRegistry, JobStore, NodeConfig};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod logs;

/// Durable background jobs for nodes that share one SQL database.
#[derive(Debug, Parser)]
#[command(name = "bildad", version, about, propagate_version = true)]
struct Cli {
    /// The database: `postgres://user:pass@host/db`, `mysql://user:pass@host/db`
    /// (MariaDB 10.6+) or `sqlite://path` (created if missing).
    #[arg(
        long,
        env = "BILDAD_DATABASE_URL",
        default_value = "sqlite://bildad.db",
        global = true,
        hide_env_values = true
    )]
    database_url: String,

    /// How logs are written to stderr: `text`, or `json` (one object per line, with the
    /// run's fields) for log shippers.
    #[arg(
        long,
        env = "BILDAD_LOG_FORMAT",
        value_enum,
        default_value_t,
        global = true
    )]
    log_format: logs::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run one node: migrations, the HTTP API, the killer and (optionally) the engine
    /// ticker. Stops gracefully on SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Apply the database migrations, then exit.
    Migrate,
    /// Engine commands.
    #[command(subcommand)]
    Engine(EngineCommand),
    /// Print queue and run counts, and the known nodes.
    Status(StatusArgs),
}

#[derive(Debug, Subcommand)]
enum EngineCommand {
    /// Run one engine pass from this process and print its JSON report. Jobs it starts
    /// run here: the command waits for them (up to --wait-seconds) before exiting.
    Run(EngineRunArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The address the HTTP API listens on. Without --auth-token only a loopback
    /// address is allowed.
    #[arg(long, env = "BILDAD_LISTEN", default_value = "127.0.0.1:4000")]
    listen: String,

    /// Require `Authorization: Bearer <token>` on every route but GET /jobs/health.
    #[arg(long, env = "BILDAD_AUTH_TOKEN", hide_env_values = true)]
    auth_token: Option<String>,

    /// Seconds running jobs get to finish at shutdown before they are ended
    /// (`Shutdown`, retried by the normal rule).
    #[arg(long, env = "BILDAD_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    shutdown_grace_seconds: u64,

    /// Do not create the demo templates (demo.echo, demo.sleep, ...) on start.
    #[arg(long, env = "BILDAD_NO_DEMO_TEMPLATES")]
    no_demo_templates: bool,

    /// Seconds GET /jobs/metrics reuses the queue gauges before querying the database
    /// again (one query per period, however many scrapes).
    #[arg(long, env = "BILDAD_METRICS_CACHE_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    metrics_cache_seconds: u64,

    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Args)]
struct EngineRunArgs {
    /// Seconds to wait for the jobs this pass started before ending them.
    #[arg(long, env = "BILDAD_WAIT_SECONDS", default_value_t = 60)]
    wait_seconds: u64,

    #[command(flatten)]
    node: NodeArgs,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// The node settings of SPEC §5.
#[derive(Debug, Args)]
struct NodeArgs {
    /// This node's name (default: the host name).
    #[arg(long, env = "BILDAD_NODE_NAME")]
    node_name: Option<String>,

    /// How often the killer ticks: heartbeat, timeouts, aborts.
    #[arg(long, env = "BILDAD_KILLER_INTERVAL_SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    killer_interval_seconds: u64,

    /// Run the engine every N seconds in this process; 0 = off (cron drives it).
    #[arg(long, env = "BILDAD_ENGINE_INTERVAL_SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    engine_interval_seconds: u64,

    /// Entries claimed per engine run.
    #[arg(long, env = "BILDAD_BATCH_SIZE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    batch_size: u32,

    /// `expires_at = timeout_at + expiry grace`.
    #[arg(long, env = "BILDAD_EXPIRY_GRACE_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(0..=31_622_400))]
    expiry_grace_seconds: u64,

    /// A node whose heartbeat is older is dead (default: 3 × killer interval).
    #[arg(long, env = "BILDAD_NODE_DEAD_AFTER_SECONDS",
          value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    node_dead_after_seconds: Option<u64>,

    /// A failed run is retried after base × 2^retry seconds (±10 %, capped at 300 s);
    /// 0 retries at the next engine run.
    #[arg(long, env = "BILDAD_RETRY_BACKOFF_SECONDS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    retry_backoff_seconds: u64,

    /// The engine claims no more than the node's free slots.
    #[arg(long, env = "BILDAD_MAX_CONCURRENT_JOBS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    max_concurrent_jobs: u32,

    /// Also run the engine the moment an entry is enqueued: on any node with PostgreSQL
    /// (LISTEN/NOTIFY); with MySQL at once through this process and within 100 ms on
    /// other nodes (a poll); through this process with SQLite. Off by default: cron
    /// drives the engine.
    #[arg(long, env = "BILDAD_WAKE_ON_ENQUEUE", default_value_t = false,
          value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true")]
    wake_on_enqueue: bool,

    /// Evaluate the schedules (periodic jobs) every N seconds on this node; 0 = off on
    /// this node. Every node may evaluate: each fire time is enqueued once.
    #[arg(long, env = "BILDAD_SCHEDULER_INTERVAL_SECONDS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    scheduler_interval_seconds: u64,

    /// A fire time older than this when first evaluated means every node was down: only
    /// the latest missed fire time of each schedule is enqueued.
    #[arg(long, env = "BILDAD_SCHEDULE_GRACE_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=31_622_400))]
    schedule_grace_seconds: u64,
    /// Claim only from these queues (comma-separated; default: every queue).
    #[arg(long, env = "BILDAD_QUEUES", value_delimiter = ',')]
    queues: Option<Vec<String>>,

    /// A local cap, NAME=N: at most N runs of queue NAME at once on this node
    /// (repeatable).
    #[arg(long = "queue-limit", value_name = "NAME=N", value_parser = parse_queue_limit)]
    queue_limits: Vec<(String, u32)>,
}

/// `NAME=N` of `--queue-limit`.
fn parse_queue_limit(s: &str) -> std::result::Result<(String, u32), String> {
    let (name, n) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected NAME=N"))?;
    let n: u32 = n
        .parse()
        .map_err(|_| format!("{s:?}: N must be a positive integer"))?;
    Ok((name.to_owned(), n))
}

impl NodeArgs {
    fn config(&self) -> Result<NodeConfig> {
        let killer = Duration::from_secs(self.killer_interval_seconds);
        let config = NodeConfig {
            node_name: self.node_name.clone().unwrap_or_else(host_name),
            killer_interval: killer,
            engine_interval: (self.engine_interval_seconds > 0)
                .then(|| Duration::from_secs(self.engine_interval_seconds)),
            batch_size: self.batch_size,
            expiry_grace: Duration::from_secs(self.expiry_grace_seconds),
            node_dead_after: self
                .node_dead_after_seconds
                .map_or(killer * 3, Duration::from_secs),
            backoff: if self.retry_backoff_seconds == 0 {
                Backoff::immediate()
            } else {
                Backoff::from_secs(self.retry_backoff_seconds)
            },
            max_concurrent_jobs: self.max_concurrent_jobs,
            wake_on_enqueue: self.wake_on_enqueue,
            scheduler_interval: (self.scheduler_interval_seconds > 0)
                .then(|| Duration::from_secs(self.scheduler_interval_seconds)),
            schedule_grace: Duration::from_secs(self.schedule_grace_seconds),
            queues: self.queues.clone(),
            queue_limits: self.queue_limits.iter().cloned().collect(),
        };
        if let Err(e) = config.validate() {
            let why: Vec<String> = e
                .violations()
                .iter()
                .map(|v| format!("--{}: {}", v.pointer.replace('_', "-"), v.message))
                .collect();
            bail!("invalid node settings: {}", why.join("; "));
        }
        Ok(config)
    }
}

fn host_name() -> String {
    gethostname::gethostname()
        .into_string()
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "bildad".to_owned())
}

fn main() -> ExitCode {
    // A child process started to run one process-isolated job runs it here and exits.
    bildad::isolation::child_main(demo::registry);
    let cli = Cli::parse();
    let _telemetry = logs::init(cli.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(&cli.database_url, args).await,
        Command::Migrate => {
            bildad::store::migrate(&cli.database_url)
                .await
                .with_context(|| format!("migrating {}", redact(&cli.database_url)))?;
            println!("migrations applied to {}", redact(&cli.database_url));
            Ok(())
        }
        Command::Engine(EngineCommand::Run(args)) => engine_run(&cli.database_url, args).await,
        Command::Status(args) => status(&cli.database_url, args).await,
    }
}

async fn connect(url: &str) -> Result<Arc<dyn JobStore>> {
    bildad::store::connect(url)
        .await
        .with_context(|| format!("cannot open the database {}", redact(url)))
}

/// Resolves `listen` and refuses a non-loopback address without a token.
async fn listen_addrs(listen: &str, token: Option<&str>) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("--listen {listen:?} is not a HOST:PORT address"))?
        .collect();
    if addrs.is_empty() {
        bail!("--listen {listen:?} resolves to no address");
    }
    if let Some(t) = token
        && t.trim().is_empty()
    {
        bail!("--auth-token (BILDAD_AUTH_TOKEN) is set but empty; give it a secret value");
    }
    if token.is_none()
        && let Some(open) = addrs.iter().find(|a| !a.ip().is_loopback())
    {
        bail!(
            "refusing to listen on {open} without an auth token: anyone who can reach \
             that address could create templates and run jobs. Set --auth-token \
             (or BILDAD_AUTH_TOKEN) to a secret, or listen on a loopback address such \
             as --listen 127.0.0.1:4000"
        );
    }
    Ok(addrs)
}

async fn serve(database_url: &str, args: ServeArgs) -> Result<()> {
    let config = args.node.config()?;
    let addrs = listen_addrs(&args.listen, args.auth_token.as_deref()).await?;
    let store = connect(database_url).await?;
    let mut registry = JobRegistry::new();
    demo::register(&mut registry);
    if !args.no_demo_templates {
        demo::declare_templates(&mut registry);
    }
    let node = NodeRuntime::start(store, registry, config)
        .await
        .context("starting the node")?;
    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;

    let mut api = ApiConfig::default();
    api.auth_token = args.auth_token.clone();
    api.metrics_cache = Duration::from_secs(args.metrics_cache_seconds);
    let app = router(node.engine().clone(), api);

    let auth = if args.auth_token.is_some() {
        " -H 'Authorization: Bearer <token>'"
    } else {
        ""
    };
    println!(
        "bildad node {:?} listening on http://{local}",
        node.node().name
    );
    #[cfg(feature = "dashboard")]
    println!(
        "dashboard: http://{}{}{}",
        browser_host(local),
        bildad::http::DASHBOARD_PATH,
        if args.auth_token.is_some() {
            " (sign in with the auth token)"
        } else {
            ""
        }
    );
    #[cfg(feature = "api-viewer")]
    println!(
        "API reference: http://{}{}",
        browser_host(local),
        bildad::http::VIEWER_PATH
    );
    println!(
        "try: curl -X POST http://{local}/jobs/queue{auth} -H 'Content-Type: application/json' \
         -d '{{\"template\": \"demo.echo\", \"context\": {{\"hello\": \"world\"}}, \"trigger_engine\": true}}'"
    );

    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    node.shutdown(Duration::from_secs(args.shutdown_grace_seconds))
        .await;
    Ok(())
}

/// The bound address as a browser should open it: an unspecified address
/// (`0.0.0.0`, `[::]`) becomes the loopback one of its family.
#[cfg(feature = "dashboard")]
fn browser_host(local: SocketAddr) -> SocketAddr {
    let mut addr = local;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}

async fn engine_run(database_url: &str, args: EngineRunArgs) -> Result<()> {
    let mut config = args.node.config()?;
    config.engine_interval = None;
    let store = connect(database_url).await?;
    let mut registry = JobRegistry::new();
    demo::register(&mut registry);
    let node = NodeRuntime::start(store, registry, config)
        .await
        .context("starting the node")?;
    let report = node.engine().run_once().await;
    if let Ok(r) = &report {
        println!("{}", serde_json::to_string_pretty(r)?);
    }
    // Let the jobs this pass started finish (or end them) before leaving.
    node.shutdown(Duration::from_secs(args.wait_seconds)).await;
    report.context("running the engine")?;
    Ok(())
}

async fn status(database_url: &str, args: StatusArgs) -> Result<()> {
    let store = connect(database_url).await?;
    let stats = store.stats().await.context("reading the counts")?;
    let nodes = store.list_nodes().await.context("listing the nodes")?;
    if args.json {
        let out = serde_json::json!({ "queue": stats, "nodes": nodes });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("queue");
    println!("  available  {}", stats.available);
    println!("  scheduled  {}", stats.scheduled);
    println!("  running    {}", stats.running);
    println!("runs");
    println!("  succeeded  {}", stats.succeeded);
    println!("  failed     {}", stats.failed);
    println!("templates    {}", stats.templates);
    println!("nodes");
    if nodes.is_empty() {
        println!("  (none)");
    }
    for n in nodes.iter().take(20) {
        let state = match n.stopped_at {
            Some(t) => format!("stopped {}", t.to_rfc3339()),
            None => format!("last heartbeat {}", n.last_heartbeat_at.to_rfc3339()),
        };
        println!("  {} {} ({state})", n.name, n.instance_id);
    }
    Ok(())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.rsplit_once('@')
    {
        let user = creds.split(':').next().unwrap_or_default();
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}
