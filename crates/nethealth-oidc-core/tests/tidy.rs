//! Tidy checks that run under `cargo test` (rust-analyzer style): the architecture invariants that a grep can see.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a readable folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            if !path.ends_with("target") && !path.ends_with("node_modules") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn code_lines(path: &Path) -> impl Iterator<Item = (usize, String)> {
    fs::read_to_string(path)
        .expect("a readable file")
        .lines()
        .map(str::to_owned)
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .into_iter()
}

#[test]
fn the_core_depends_on_no_http_client_runtime_or_tls() {
    let manifest =
        fs::read_to_string(root().join("crates/nethealth-oidc-core/Cargo.toml")).unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [dependencies] table");
    for banned in [
        "reqwest",
        "ureq",
        "tokio",
        "hyper",
        "async-std",
        "smol",
        "axum",
        "rustls",
        "native-tls",
        "curl",
    ] {
        assert!(
            !deps.lines().any(|l| l.trim_start().starts_with(banned)),
            "nethealth-oidc-core must stay sans-IO, but depends on {banned}"
        );
    }
}

#[test]
fn the_core_reads_no_clock_disk_network_or_global_rng() {
    let mut files = Vec::new();
    rust_files(&root().join("crates/nethealth-oidc-core/src"), &mut files);
    assert!(files.len() > 10, "the core's sources were found");
    for file in files {
        for (n, line) in code_lines(&file) {
            for banned in [
                "SystemTime::now",
                "Instant::now",
                "std::net",
                "std::fs",
                "thread_rng()",
                "rand::rng()",
                "rand::random",
            ] {
                assert!(
                    !line.contains(banned),
                    "{}:{}: the core must not use {banned}: take time and randomness as arguments",
                    file.display(),
                    n + 1
                );
            }
        }
    }
}

#[test]
fn no_stubs_remain() {
    let mut files = Vec::new();
    rust_files(&root().join("crates"), &mut files);
    rust_files(&root().join("xtask"), &mut files);
    let (todo, unimplemented) = (concat!("todo", "!("), concat!("unimplemented", "!("));
    for file in files {
        for (n, line) in code_lines(&file) {
            assert!(
                !line.contains(todo) && !line.contains(unimplemented),
                "{}:{}: a stub is left",
                file.display(),
                n + 1
            );
        }
    }
}

#[test]
fn the_architecture_doc_names_every_crate() {
    let doc = fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    for entry in fs::read_dir(root().join("crates")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            doc.contains(&name),
            "docs/architecture.md has no entry for crates/{name}"
        );
    }
}
