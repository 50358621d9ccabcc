//! Repository automation for Bildad: `cargo xtask install` copies Bildad's migrations into
//! a user's application and prints the lines to add; `cargo xtask tidy` runs the tidy checks.

mod install;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  install --app-dir PATH [--backend postgres|sqlite] [--dry-run] [--create-migrations-dir]
      Copy Bildad's migrations into an existing diesel application and print
      the lines to add to its Cargo.toml, router and main.
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
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}
