//! Tidy checks, run as ordinary tests so CI needs nothing beyond `cargo test`.

use std::fs;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;

#[cfg(test)]
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository root")
        .to_path_buf()
}

#[cfg(test)]
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() {
            if name != "target"
                && name != "node_modules"
                && !name.to_string_lossy().starts_with('.')
            {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of a file's bytes.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `migrations/RELEASED`: one line per released migration file, `<fnv64 hex> <path>`.
pub fn released_lines(root: &Path) -> Vec<(String, String)> {
    fs::read_to_string(root.join("migrations/RELEASED"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(h, p)| (h.to_string(), p.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rust_file_starts_with_a_module_doc() {
        let root = repo_root();
        let mut files = Vec::new();
        for dir in ["crates", "xtask", "tests", "examples"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 10, "found only {} files", files.len());
        let bad: Vec<_> = files
            .iter()
            .filter(|f| {
                let text = fs::read_to_string(f).unwrap_or_default();
                !text.trim_start().starts_with("//!")
            })
            .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
            .collect();
        assert!(
            bad.is_empty(),
            "files without a leading `//!` line: {bad:#?}"
        );
    }

    /// The longest a library source file may grow: about 600 lines is the aim (STYLE),
    /// 650 the hard limit. A longer file holds more than one concern; split it.
    const MAX_SOURCE_LINES: usize = 650;

    #[test]
    fn no_source_file_under_crates_src_is_over_650_lines() {
        let root = repo_root();
        let mut files = Vec::new();
        for krate in fs::read_dir(root.join("crates")).unwrap().flatten() {
            rust_files(&krate.path().join("src"), &mut files);
        }
        assert!(files.len() > 10, "found only {} files", files.len());
        let long: Vec<String> = files
            .iter()
            .filter_map(|f| {
                let lines = fs::read_to_string(f).unwrap_or_default().lines().count();
                (lines > MAX_SOURCE_LINES).then(|| {
                    let path = f.strip_prefix(&root).unwrap_or(f).display();
                    format!("{path}: {lines} lines")
                })
            })
            .collect();
        assert!(
            long.is_empty(),
            "source files over {MAX_SOURCE_LINES} lines (aim for about 600; split them \
             by concern): {long:#?}"
        );
    }

    #[test]
    fn core_depends_on_no_runtime_storage_or_http_crate() {
        let toml = fs::read_to_string(repo_root().join("crates/bildad-core/Cargo.toml")).unwrap();
        let deps = toml
            .split("[dependencies]")
            .nth(1)
            .expect("core has a [dependencies] table")
            .split("\n[")
            .next()
            .unwrap_or_default();
        for forbidden in [
            "diesel", "tokio", "axum", "hyper", "tower", "deadpool", "sqlx",
        ] {
            assert!(
                !deps.lines().any(|l| l.trim_start().starts_with(forbidden)),
                "bildad-core must not depend on {forbidden}"
            );
        }
    }

    #[test]
    fn released_migrations_are_never_edited() {
        let root = repo_root();
        let lines = released_lines(&root);
        assert!(!lines.is_empty(), "migrations/RELEASED lists no migration");
        for (hash, path) in &lines {
            let bytes = fs::read(root.join(path))
                .unwrap_or_else(|e| panic!("released migration {path} is gone: {e}"));
            assert_eq!(
                &format!("{:016x}", fingerprint(&bytes)),
                hash,
                "{path} was released and must never be edited: add a new migration instead"
            );
        }
        // Every migration file is released (listed), so an edit is always caught.
        let mut files = Vec::new();
        for backend in crate::install::Backend::ALL.map(crate::install::Backend::dir_name) {
            for dir in fs::read_dir(root.join("migrations").join(backend))
                .unwrap()
                .flatten()
            {
                for f in fs::read_dir(dir.path()).unwrap().flatten() {
                    files.push(f.path().strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        for f in files {
            assert!(
                lines.iter().any(|(_, p)| *p == f),
                "{f} is not listed in migrations/RELEASED; run `cargo xtask release-migrations`"
            );
        }
    }
}
