//! `cargo xtask install`: copy Bildad's migrations into an application's diesel
//! migrations folder under fresh timestamped names, and print what to add to the app.

use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The parsed command line of `install`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The root of the application (its Cargo.toml is there).
    pub app_dir: PathBuf,
    /// Which migrations to copy.
    pub backend: Backend,
    /// Say what would happen; write nothing.
    pub dry_run: bool,
    /// Create the migrations folder when the app has none.
    pub create_migrations_dir: bool,
}

/// Which database the application uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `migrations/postgres`.
    Postgres,
    /// `migrations/sqlite`.
    Sqlite,
    /// `migrations/mysql` (MySQL 8 and MariaDB 10.6+).
    Mysql,
}

impl Backend {
    /// Every backend, in the order the tidy checks and `release-migrations` walk them.
    pub const ALL: [Backend; 3] = [Backend::Postgres, Backend::Sqlite, Backend::Mysql];

    /// Its folder under `migrations/`.
    pub fn dir_name(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
            Self::Mysql => "mysql",
        }
    }
}

impl Options {
    /// Parses `--app-dir PATH [--backend postgres|sqlite|mysql] [--dry-run] [--create-migrations-dir]`.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut app_dir = None;
        let mut backend = Backend::Postgres;
        let mut dry_run = false;
        let mut create_migrations_dir = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) => (f, Some(v.to_string())),
                None => (a.as_str(), None),
            };
            let mut value = |name: &str| -> Result<String> {
                match inline.clone().or_else(|| it.next().cloned()) {
                    Some(v) => Ok(v),
                    None => bail!("{name} needs a value"),
                }
            };
            match flag {
                "--app-dir" => app_dir = Some(PathBuf::from(value("--app-dir")?)),
                "--backend" => {
                    backend = match value("--backend")?.as_str() {
                        "postgres" | "postgresql" | "pg" => Backend::Postgres,
                        "sqlite" => Backend::Sqlite,
                        "mysql" | "mariadb" => Backend::Mysql,
                        other => {
                            bail!("unknown backend {other:?}: use postgres, sqlite or mysql")
                        }
                    }
                }
                "--dry-run" => dry_run = true,
                "--create-migrations-dir" => create_migrations_dir = true,
                other => bail!("unknown flag {other:?} for install"),
            }
        }
        let Some(app_dir) = app_dir else {
            bail!("install needs --app-dir PATH (the root of your cargo project)")
        };
        Ok(Self {
            app_dir,
            backend,
            dry_run,
            create_migrations_dir,
        })
    }
}

/// The migrations folder of this repository.
///
/// The directory is read at run time from `CARGO_MANIFEST_DIR` (which `cargo run` and
/// `cargo test` set), so that a build reused from another checkout's target directory
/// reads this checkout's migrations; the compile-time value is the fallback.
pub fn repo_migrations_dir() -> PathBuf {
    let xtask = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("src/install.rs").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    xtask.join("../migrations")
}

/// Copies the migrations of `opts.backend` from `source_root` into the app and returns
/// the report to print. Never overwrites a file; a second run is a no-op that says so.
pub fn install(opts: &Options, source_root: &Path) -> Result<String> {
    let app = &opts.app_dir;
    if !app.is_dir() {
        bail!("{} does not exist or is not a directory", app.display());
    }
    if !app.join("Cargo.toml").is_file() {
        bail!(
            "{} is not a cargo project: it has no Cargo.toml",
            app.display()
        );
    }
    let target = migrations_dir_of(app)?;
    let mut out = String::new();
    if !target.is_dir() {
        if !opts.create_migrations_dir {
            bail!(
                "{} has no migrations folder ({}); run `diesel setup` in the app first, \
                 or pass --create-migrations-dir to create it",
                app.display(),
                target.display()
            );
        }
        if opts.dry_run {
            writeln!(out, "would create {}", target.display())?;
        } else {
            fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            writeln!(out, "created {}", target.display())?;
        }
    }

    let source = source_root.join(opts.backend.dir_name());
    let mut sources: Vec<PathBuf> = fs::read_dir(&source)
        .with_context(|| format!("reading Bildad's migrations in {}", source.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    sources.sort();
    if sources.is_empty() {
        bail!("no migrations found in {}", source.display());
    }

    let existing: Vec<String> = if target.is_dir() {
        fs::read_dir(&target)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    } else {
        Vec::new()
    };

    let stamp = diesel_timestamp(SystemTime::now());
    let mut copied = 0;
    for (i, src) in sources.iter().enumerate() {
        let name = src
            .file_name()
            .and_then(|n| n.to_str())
            .context("migration folder name is not UTF-8")?;
        let suffix = name.split_once('_').map_or(name, |(_, s)| s);
        let installed_name = format!("bildad_{suffix}");
        if let Some(found) = existing
            .iter()
            .find(|e| e.ends_with(&format!("_{installed_name}")))
        {
            writeln!(
                out,
                "already installed: {} (as {found}); nothing to do",
                name
            )?;
            continue;
        }
        let dest = target.join(format!("{stamp}{i:02}_{installed_name}"));
        if dest.exists() {
            bail!("{} exists; refusing to overwrite it", dest.display());
        }
        if opts.dry_run {
            writeln!(out, "would copy {name} -> {}", dest.display())?;
        } else {
            fs::create_dir(&dest).with_context(|| format!("creating {}", dest.display()))?;
            for file in ["up.sql", "down.sql"] {
                let from = src.join(file);
                if from.is_file() {
                    fs::copy(&from, dest.join(file))
                        .with_context(|| format!("copying {}", from.display()))?;
                }
            }
            writeln!(out, "copied {name} -> {}", dest.display())?;
        }
        copied += 1;
    }
    if copied == 0 {
        writeln!(out, "Bildad is already installed in {}.", app.display())?;
        return Ok(out);
    }
    out.push_str(&instructions(opts.backend));
    Ok(out)
}

/// The app's migrations folder: `diesel.toml`'s `[migrations_directory] dir`, else `migrations/`.
fn migrations_dir_of(app: &Path) -> Result<PathBuf> {
    let diesel_toml = app.join("diesel.toml");
    if let Ok(text) = fs::read_to_string(&diesel_toml) {
        let mut in_section = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_section = line == "[migrations_directory]";
            } else if in_section {
                let value = line
                    .strip_prefix("dir")
                    .map(str::trim_start)
                    .and_then(|v| v.strip_prefix('='));
                if let Some(v) = value {
                    return Ok(app.join(v.trim().trim_matches('"')));
                }
            }
        }
    }
    Ok(app.join("migrations"))
}

/// Diesel's migration prefix, `YYYY-MM-DD-HHMMSS`, in UTC.
fn diesel_timestamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn instructions(backend: Backend) -> String {
    let (feature, url) = match backend {
        Backend::Postgres => ("postgres", "postgres://user@localhost/myapp"),
        Backend::Sqlite => ("sqlite", "sqlite://myapp.db"),
        Backend::Mysql => ("mysql", "mysql://user@localhost/myapp"),
    };
    format!(
        r#"
Next steps (see docs/INSTALL.md for the whole walk-through):

1. Run the migrations:   diesel migration run   (or let Bildad run its own at start)

2. Cargo.toml:
   bildad-core = "0.1"
   bildad-runtime = "0.1"
   bildad-store-diesel = {{ version = "0.1", default-features = false, features = ["{feature}"] }}
   bildad-http = "0.1"

3. Register your job types and start the node (the killer runs on every node):
   let store = bildad_store_diesel::connect("{url}").await?;
   let mut registry = bildad_core::JobRegistry::new();
   registry.register("email.send", send_email);
   let node = bildad_runtime::NodeRuntime::start(store, registry, bildad_core::NodeConfig {{
       node_name: "web-1".into(),
       killer_interval: std::time::Duration::from_secs(20),
       ..Default::default()
   }}).await?;

4. Nest the API into your router, behind its bearer token:
   let api = bildad_http::router(
       node.engine().clone(),
       bildad_http::ApiConfig::default().with_auth_token(std::env::var("BILDAD_AUTH_TOKEN")?),
   );
   let app = axum::Router::new().merge(your_routes).merge(api);

5. Let cron drive the engine on one node (every minute):
   * * * * * curl -fsS -X POST -H "Authorization: Bearer $BILDAD_AUTH_TOKEN" https://myapp.example/jobs/engine/run
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "bildad-xtask-{tag}-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn app(tag: &str, with_migrations: bool) -> PathBuf {
        let d = temp_dir(tag);
        fs::write(d.join("Cargo.toml"), "[package]\nname = \"app\"\n").unwrap();
        if with_migrations {
            fs::create_dir(d.join("migrations")).unwrap();
        }
        d
    }

    fn opts(app: &Path, extra: &str) -> Options {
        Options::parse(&args(&format!("--app-dir {} {extra}", app.display()))).unwrap()
    }

    fn installed(app: &Path) -> Vec<String> {
        let mut v: Vec<_> = fs::read_dir(app.join("migrations"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn copies_then_second_run_is_a_no_op() {
        let a = app("copy", true);
        let report = install(&opts(&a, "--backend postgres"), &repo_migrations_dir()).unwrap();
        assert!(report.contains("copied"), "{report}");
        assert!(report.contains("bildad_http::router"), "{report}");
        let first = installed(&a);
        assert!(!first.is_empty());
        assert!(first.iter().all(|n| n.contains("_bildad_")));
        for n in &first {
            let up = fs::read_to_string(a.join("migrations").join(n).join("up.sql")).unwrap();
            assert!(up.contains("bildad_"), "{n}");
        }
        let again = install(&opts(&a, "--backend postgres"), &repo_migrations_dir()).unwrap();
        assert!(again.contains("already installed"), "{again}");
        assert_eq!(installed(&a), first);
    }

    #[test]
    fn every_backend_installs_its_own_migrations() {
        for backend in Backend::ALL {
            let name = backend.dir_name();
            let a = app(&format!("backend-{name}"), true);
            let report = install(
                &opts(&a, &format!("--backend {name}")),
                &repo_migrations_dir(),
            )
            .unwrap();
            assert!(
                report.contains(&format!(r#"features = ["{name}"]"#)),
                "{report}"
            );
            let source = repo_migrations_dir().join(name);
            let mut wanted: Vec<String> = fs::read_dir(&source)
                .unwrap()
                .map(|e| {
                    let dir = e.unwrap().path();
                    fs::read_to_string(dir.join("up.sql")).unwrap()
                })
                .collect();
            let mut got: Vec<String> = installed(&a)
                .iter()
                .map(|n| fs::read_to_string(a.join("migrations").join(n).join("up.sql")).unwrap())
                .collect();
            wanted.sort();
            got.sort();
            assert_eq!(
                got, wanted,
                "{name}: the installed up.sql files are the repository's"
            );
        }
        let mysql = app("backend-mariadb", true);
        install(&opts(&mysql, "--backend mariadb"), &repo_migrations_dir()).unwrap();
        let up = installed(&mysql)
            .iter()
            .map(|n| fs::read_to_string(mysql.join("migrations").join(n).join("up.sql")).unwrap())
            .collect::<String>();
        assert!(up.contains("DATETIME(6)"), "mariadb is an alias of mysql");
    }

    #[test]
    fn dry_run_writes_nothing() {
        let a = app("dry", true);
        let report = install(&opts(&a, "--dry-run"), &repo_migrations_dir()).unwrap();
        assert!(report.contains("would copy"), "{report}");
        assert!(installed(&a).is_empty());
    }

    #[test]
    fn errors_are_clear() {
        let missing = temp_dir("missing").join("nope");
        let e = install(&opts(&missing, ""), &repo_migrations_dir()).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");

        let not_cargo = temp_dir("notcargo");
        let e = install(&opts(&not_cargo, ""), &repo_migrations_dir()).unwrap_err();
        assert!(e.to_string().contains("not a cargo project"), "{e}");

        let no_mig = app("nomig", false);
        let e = install(&opts(&no_mig, ""), &repo_migrations_dir()).unwrap_err();
        assert!(e.to_string().contains("--create-migrations-dir"), "{e}");
        assert!(!no_mig.join("migrations").exists());

        let report = install(
            &opts(&no_mig, "--create-migrations-dir --backend sqlite"),
            &repo_migrations_dir(),
        )
        .unwrap();
        assert!(report.contains("created"), "{report}");
        assert!(!installed(&no_mig).is_empty());

        let e = Options::parse(&args("--backend oracle --app-dir x")).unwrap_err();
        assert!(e.to_string().contains("postgres, sqlite or mysql"), "{e}");
        assert!(Options::parse(&args("--dry-run")).is_err());
    }

    #[test]
    fn honours_diesel_toml() {
        let a = app("dieseltoml", false);
        fs::write(
            a.join("diesel.toml"),
            "[print_schema]\nfile = \"src/schema.rs\"\n\n[migrations_directory]\ndir = \"db/migrations\"\n",
        )
        .unwrap();
        fs::create_dir_all(a.join("db/migrations")).unwrap();
        install(&opts(&a, ""), &repo_migrations_dir()).unwrap();
        assert!(fs::read_dir(a.join("db/migrations")).unwrap().count() > 0);
    }

    #[test]
    fn timestamps_are_diesel_shaped() {
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        assert_eq!(diesel_timestamp(t), "2026-11-18-110640");
        assert_eq!(diesel_timestamp(UNIX_EPOCH), "1970-01-01-000000");
    }
}
