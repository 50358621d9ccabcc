//! Repository automation for Bildad: `cargo xtask install` copies Bildad's migrations into
//! a user's application and prints the lines to add; `cargo xtask tidy` runs the tidy checks.

use xtask::{install, tidy};

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  install --app-dir PATH [--backend postgres|sqlite|mysql] [--dry-run] [--create-migrations-dir]
      Copy Bildad's migrations into an existing diesel application and print
      the lines to add to its Cargo.toml, router and main.
  bench [--database-url URL] [--n N] [--nodes K] [--quick] [--count-statements] ...
      Build and run the benchmark in release mode (crates/bildad-bench; --help lists
      every flag): creates its own database on the server, enqueues and processes
      no-op jobs, prints one `bildad key=value` line per scenario.
  bench-peers [--rounds 5] [--n 20000[,100000,...]] [--curve] [--database-url URL]
      The throughput line of bildad-bench and of a peer (graphile-worker, in
      crates/bildad-bench/peers; needs node and npm), taken in turns in the same
      minutes; prints every raw line, the medians, and Bildad's ratios to the peer.
      Several sizes (--n a,b,c) give the backlog curve: `rounds` turns at each size
      and one table at the end; --curve is --n 20000,100000,500000.
  chaos [--nodes 4] [--jobs 10000] [--kill-every-secs 3] [--min-kills 50] [--runs N]
        [--database-url URL] [--seed S] | chaos outage [--outage-secs 10]
      (URL: a postgres:// or mysql:// server; a fresh database is created on it)
      Build bildad and crates/bildad-chaos in release mode and run the fault proof:
      nodes SIGKILLed and restarted under load (or the database cut by a proxy),
      checked from the database; exits non-zero on any violation.
  release-migrations
      Record every migration file in migrations/RELEASED (appends new ones only);
      the tidy test then refuses any edit of a recorded file.
";

fn main() {
    if let Err(e) = run(std::env::args().skip(1).collect()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Vec<String>) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("install") => {
            let opts = install::Options::parse(&args[1..])?;
            let report = install::install(&opts, &install::repo_migrations_dir())?;
            print!("{report}");
            Ok(())
        }
        Some("release-migrations") => release_migrations(),
        Some("chaos") => chaos(&args[1..]),
        Some("bench") => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["run", "--release", "--quiet", "-p", "bildad-bench", "--"])
                .args(&args[1..])
                .status()?;
            if !status.success() {
                bail!("the benchmark failed ({status})");
            }
            Ok(())
        }
        Some("bench-peers") => bench_peers(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// `cargo xtask bench-peers`: Bildad's and graphile-worker's throughput lines, in turns,
/// at one backlog size or along a curve of them.
fn bench_peers(args: &[String]) -> Result<()> {
    let mut rounds = 5usize;
    let mut sizes = "20000".to_string();
    // Without --database-url each bench uses its own default (the local server).
    let mut url: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--rounds" => rounds = value()?.parse()?,
            "--n" => sizes = value()?,
            "--curve" => sizes = "20000,100000,500000".into(),
            "--database-url" => url = Some(value()?),
            other => bail!(
                "unknown flag {other:?} (bench-peers: --rounds, --n, --curve, --database-url)"
            ),
        }
    }
    if rounds == 0 {
        bail!("--rounds must be positive");
    }
    let sizes: Vec<String> = sizes
        .split(',')
        .map(|s| s.trim().replace('_', ""))
        .collect();
    for n in &sizes {
        n.parse::<u64>()
            .map_err(|e| anyhow::anyhow!("--n {n:?}: {e}"))?;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let peer_dir = root.join("crates/bildad-bench/peers/graphile-worker");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = std::process::Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "--quiet", "-p", "bildad-bench"])
        .status()?;
    if !built.success() {
        bail!("cannot build bildad-bench");
    }
    if !peer_dir.join("node_modules").exists() {
        let npm = std::process::Command::new("npm")
            .current_dir(&peer_dir)
            .args(["ci", "--silent"])
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run npm (node and npm are needed): {e}"))?;
        if !npm.success() {
            bail!("npm ci failed in {}", peer_dir.display());
        }
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let bench = target.join("release/bildad-bench");
    let line = |cmd: &mut std::process::Command, prefix: &str| -> Result<String> {
        let out = cmd.output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "{prefix} bench failed: {}{}",
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no {prefix:?} line in {text:?}"))
    };
    let mut curve = Vec::new();
    for n in &sizes {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let peer = line(
                std::process::Command::new("node")
                    .current_dir(&peer_dir)
                    .args(["bench.mjs", "--n", n])
                    .args(url.iter().flat_map(|u| ["--database-url", u.as_str()])),
                "graphile-worker ",
            )?;
            println!("{peer}");
            theirs.push(peer);
            let own = line(
                std::process::Command::new(&bench)
                    .args(["--quick", "--n", n])
                    .args(url.iter().flat_map(|u| ["--database-url", u.as_str()])),
                "bildad enqueue_jobs_per_s=",
            )?;
            println!("{own}");
            ours.push(own);
        }
        let (op, oe) = (
            median(&ours, "process_jobs_per_s")?,
            median(&ours, "enqueue_jobs_per_s")?,
        );
        let (tp, te) = (
            median(&theirs, "process_jobs_per_s")?,
            median(&theirs, "enqueue_jobs_per_s")?,
        );
        println!(
            "median N={n} graphile-worker process_jobs_per_s={tp:.0} enqueue_jobs_per_s={te:.0} rounds={rounds}"
        );
        println!(
            "median N={n} bildad process_jobs_per_s={op:.0} enqueue_jobs_per_s={oe:.0} rounds={rounds}"
        );
        println!(
            "ratio N={n} bildad/graphile-worker process={:.2} enqueue={:.2}",
            op / tp,
            oe / te
        );
        curve.push((n.clone(), tp, op));
    }
    if curve.len() > 1 {
        println!("\nbacklog curve (processed jobs/s, medians of {rounds} interleaved rounds)");
        println!("| N | graphile-worker | Bildad | ratio |\n|---|---|---|---|");
        for (n, tp, op) in curve {
            println!("| {n} | {tp:.0} | {op:.0} | {:.2}× |", op / tp);
        }
    }
    Ok(())
}

/// The median of `key` over `key=value …` lines.
fn median(lines: &[String], key: &str) -> Result<f64> {
    let mut v = lines
        .iter()
        .map(|l| field(l, key))
        .collect::<Result<Vec<f64>>>()?;
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// The number after `key=` in a `key=value …` line.
fn field(line: &str, key: &str) -> Result<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .ok_or_else(|| anyhow::anyhow!("no {key} in {line:?}"))?
        .parse()
        .map_err(|e| anyhow::anyhow!("{key} in {line:?}: {e}"))
}

/// Builds the release `bildad` binary, then runs `bildad-chaos` (which finds it beside
/// itself) with `args`.
fn chaos(args: &[String]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let cmd = |a: &[&str]| std::process::Command::new(&cargo).args(a).status();
    if !cmd(&[
        "build",
        "--release",
        "--quiet",
        "-p",
        "bildad",
        "--bin",
        "bildad",
    ])?
    .success()
    {
        bail!("building bildad failed");
    }
    let status = std::process::Command::new(&cargo)
        .args(["run", "--release", "--quiet", "-p", "bildad-chaos", "--"])
        .args(args)
        .status()?;
    if !status.success() {
        bail!("the chaos run failed ({status})");
    }
    Ok(())
}

/// Appends every migration file not yet in `migrations/RELEASED`; never rewrites a line.
fn release_migrations() -> Result<()> {
    use std::io::Write as _;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let listed = tidy::released_lines(&root);
    let mut new = Vec::new();
    for backend in install::Backend::ALL.map(install::Backend::dir_name) {
        let mut dirs: Vec<_> = std::fs::read_dir(root.join("migrations").join(backend))?
            .flatten()
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for dir in dirs {
            let mut files: Vec<_> = std::fs::read_dir(&dir)?
                .flatten()
                .map(|e| e.path())
                .collect();
            files.sort();
            for f in files {
                let rel = f.strip_prefix(&root)?.display().to_string();
                if !listed.iter().any(|(_, p)| *p == rel) {
                    let hash = tidy::fingerprint(&std::fs::read(&f)?);
                    new.push(format!("{hash:016x} {rel}"));
                }
            }
        }
    }
    let path = root.join("migrations/RELEASED");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    if listed.is_empty() {
        writeln!(
            file,
            "# Released migrations: <fnv64> <path>. Never edit a listed file; add a migration."
        )?;
    }
    for line in &new {
        writeln!(file, "{line}")?;
        println!("released {line}");
    }
    if new.is_empty() {
        println!("every migration is already released");
    }
    Ok(())
}
