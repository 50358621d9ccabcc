//! `cargo xtask bench-peers`: Bildad's throughput line and a peer's, taken in turns in
//! the same minutes, at one backlog size or along a curve of them. The peer follows the
//! database: graphile-worker on PostgreSQL, apalis-sqlite on SQLite (both in
//! `crates/bildad-bench/peers`).

use anyhow::{Result, anyhow, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The job queue Bildad is measured next to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    /// graphile-worker (Node.js) on the PostgreSQL server of the URL.
    GraphileWorker,
    /// apalis with apalis-sqlite (Rust), a fresh file under the `sqlite://<dir>` of the URL.
    ApalisSqlite,
}

impl Peer {
    /// The peer for `url`'s database (none given: PostgreSQL, the bench's default).
    fn for_url(url: Option<&str>) -> Result<Self> {
        let Some(url) = url else {
            return Ok(Self::GraphileWorker);
        };
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Self::GraphileWorker)
        } else if lower.starts_with("sqlite:") {
            Ok(Self::ApalisSqlite)
        } else {
            bail!(
                "bench-peers has no peer for {url:?}: postgres://… (graphile-worker) or \
                 sqlite://<dir> (apalis-sqlite)"
            )
        }
    }

    /// The first word of the peer's result line.
    fn name(self) -> &'static str {
        match self {
            Self::GraphileWorker => "graphile-worker",
            Self::ApalisSqlite => "apalis-sqlite",
        }
    }

    fn dir(self, root: &Path) -> PathBuf {
        root.join("crates/bildad-bench/peers").join(self.name())
    }

    /// Installs (npm) or builds (cargo, release, from its committed lock file, into
    /// `target`) the peer.
    fn prepare(self, root: &Path, target: &Path, cargo: &str) -> Result<()> {
        let dir = self.dir(root);
        match self {
            Self::GraphileWorker => {
                if dir.join("node_modules").exists() {
                    return Ok(());
                }
                let npm = Command::new("npm")
                    .current_dir(&dir)
                    .args(["ci", "--silent"])
                    .status()
                    .map_err(|e| anyhow!("cannot run npm (node and npm are needed): {e}"))?;
                if !npm.success() {
                    bail!("npm ci failed in {}", dir.display());
                }
            }
            Self::ApalisSqlite => {
                let built = Command::new(cargo)
                    .current_dir(&dir)
                    .args(["build", "--release", "--quiet", "--locked", "--target-dir"])
                    .arg(target)
                    .status()?;
                if !built.success() {
                    bail!("cannot build the apalis-sqlite peer in {}", dir.display());
                }
            }
        }
        Ok(())
    }

    /// The command that prints the peer's line for `n` jobs.
    fn command(self, root: &Path, target: &Path, n: &str, url: Option<&str>) -> Command {
        let mut cmd = match self {
            Self::GraphileWorker => {
                let mut c = Command::new("node");
                c.current_dir(self.dir(root)).arg("bench.mjs");
                c
            }
            Self::ApalisSqlite => Command::new(target.join("release/apalis-sqlite-peer")),
        };
        cmd.args(["--n", n]);
        cmd.args(url.iter().flat_map(|u| ["--database-url", u]));
        cmd
    }
}

/// Runs `bench-peers` with its flags: `--rounds`, `--n a,b,c`, `--curve`, `--database-url`.
pub(crate) fn bench_peers(args: &[String]) -> Result<()> {
    let mut rounds = 5usize;
    let mut sizes = "20000".to_string();
    // Without --database-url each bench uses its own default (the local server).
    let mut url: Option<String> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow!("{a} needs a value"))
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
    let peer = Peer::for_url(url.as_deref())?;
    let sizes: Vec<String> = sizes
        .split(',')
        .map(|s| s.trim().replace('_', ""))
        .collect();
    for n in &sizes {
        n.parse::<u64>().map_err(|e| anyhow!("--n {n:?}: {e}"))?;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(&cargo)
        .current_dir(&root)
        .args(["build", "--release", "--quiet", "-p", "bildad-bench"])
        .status()?;
    if !built.success() {
        bail!("cannot build bildad-bench");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    peer.prepare(&root, &target, &cargo)?;
    let bench = target.join("release/bildad-bench");
    let name = peer.name();
    let mut curve = Vec::new();
    for n in &sizes {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let line = result_line(
                &mut peer.command(&root, &target, n, url.as_deref()),
                &format!("{name} "),
            )?;
            println!("{line}");
            theirs.push(line);
            let own = result_line(
                Command::new(&bench)
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
            "median N={n} {name} process_jobs_per_s={tp:.0} enqueue_jobs_per_s={te:.0} rounds={rounds}"
        );
        println!(
            "median N={n} bildad process_jobs_per_s={op:.0} enqueue_jobs_per_s={oe:.0} rounds={rounds}"
        );
        println!(
            "ratio N={n} bildad/{name} process={:.2} enqueue={:.2}",
            op / tp,
            oe / te
        );
        curve.push((n.clone(), tp, op));
    }
    if curve.len() > 1 {
        println!("\nbacklog curve (processed jobs/s, medians of {rounds} interleaved rounds)");
        println!("| N | {name} | Bildad | ratio |\n|---|---|---|---|");
        for (n, tp, op) in curve {
            println!("| {n} | {tp:.0} | {op:.0} | {:.2}× |", op / tp);
        }
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout's line that starts with `prefix`.
fn result_line(cmd: &mut Command, prefix: &str) -> Result<String> {
    let out = cmd.output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{prefix}bench failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.lines()
        .find(|l| l.starts_with(prefix))
        .map(str::to_string)
        .ok_or_else(|| anyhow!("no {prefix:?} line in {text:?}"))
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
        .ok_or_else(|| anyhow!("no {key} in {line:?}"))?
        .parse()
        .map_err(|e| anyhow!("{key} in {line:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_picks_the_peer() {
        let cases = [
            (None, Peer::GraphileWorker),
            (
                Some("postgres://postgres@127.0.0.1:5432/postgres"),
                Peer::GraphileWorker,
            ),
            (Some("postgresql://u@h/db"), Peer::GraphileWorker),
            (Some("sqlite:///tmp/bench"), Peer::ApalisSqlite),
            (Some("sqlite:bench"), Peer::ApalisSqlite),
        ];
        for (url, peer) in cases {
            assert_eq!(Peer::for_url(url).unwrap(), peer, "{url:?}");
        }
        let err = Peer::for_url(Some("mysql://root@127.0.0.1:3306/mysql"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no peer"), "{err}");
    }

    #[test]
    fn the_peer_gets_the_size_and_the_url() {
        let root = Path::new("/repo");
        let cmd =
            Peer::ApalisSqlite.command(root, Path::new("/t"), "20000", Some("sqlite:///tmp/bench"));
        assert_eq!(cmd.get_program(), "/t/release/apalis-sqlite-peer");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(
            args,
            ["--n", "20000", "--database-url", "sqlite:///tmp/bench"]
        );
        let cmd = Peer::GraphileWorker.command(root, Path::new("/t"), "5", None);
        assert_eq!(cmd.get_program(), "node");
        assert_eq!(
            cmd.get_args().collect::<Vec<_>>(),
            ["bench.mjs", "--n", "5"]
        );
        assert_eq!(
            cmd.get_current_dir(),
            Some(Path::new("/repo/crates/bildad-bench/peers/graphile-worker"))
        );
    }

    #[test]
    fn medians_read_the_lines() {
        let lines: Vec<String> = [
            "apalis-sqlite enqueue_jobs_per_s=30 process_jobs_per_s=3 N=5",
            "apalis-sqlite enqueue_jobs_per_s=10 process_jobs_per_s=1 N=5",
            "apalis-sqlite enqueue_jobs_per_s=20 process_jobs_per_s=2 N=5",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(median(&lines, "process_jobs_per_s").unwrap(), 2.0);
        assert_eq!(median(&lines, "enqueue_jobs_per_s").unwrap(), 20.0);
        assert!(field(&lines[0], "rss_mib").is_err());
    }
}
