//! Repository automation for Bildad: `cargo xtask install` copies Bildad's migrations into
//! a user's application and prints the lines to add; `cargo xtask tidy` runs the tidy checks.

mod peers;

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
      every flag): enqueues and processes no-op jobs, prints one `bildad key=value`
      line per scenario. URL: postgres://... (default; a database of its own per
      scenario on that server, dropped after) or sqlite://DIR (a fresh SQLite file per
      scenario in a directory of its own under DIR, deleted after).
  bench-peers [--rounds 5] [--n 20000[,100000,...]] [--curve] [--database-url URL]
      The throughput line of bildad-bench and of a peer, taken in turns in the same
      minutes; prints every raw line, the medians, and Bildad's ratios to the peer.
      The peer follows URL: graphile-worker on postgres://... (the default; needs node
      and npm), apalis-sqlite on sqlite://DIR (built with cargo from its lock file);
      both in crates/bildad-bench/peers. Several sizes (--n a,b,c) give the backlog
      curve: `rounds` turns at each size and one table at the end; --curve is
      --n 20000,100000,500000.
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
        Some("bench-peers") => peers::bench_peers(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
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
