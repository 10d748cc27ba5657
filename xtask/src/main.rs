//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: everything CI checks: formatting, clippy with warnings denied, all tests, the docs with warnings
//!   denied, and a short run of every fuzz target (built on a thread of its own from the start). This is the README's test command. It starts what the tests need itself: the oidc-provider peer
//!   (`peer`), installed with npm when missing, and redis-server (`redis`), installed with apt when missing, each on a
//!   free loopback port, stopped by its pid afterwards, also on failure and on Ctrl-C (`service`).
//! - `with-peers COMMAND...`: starts the peers as `ci` does, runs one command with their issuers in the
//!   environment (e.g. `cargo xtask with-peers cargo test -p nethealth-oidc --test oidc_provider`), then stops them.
//! - `bench`: the criterion benchmarks (with redis-server started for the `RedisStore` benches), with their ratios
//!   checked against the stated targets.
//! - `demo`: the four steps of the Net Health guide, with both clients, against the local Accounts site.
//! - `fuzz [SECONDS]`: every cargo-fuzz target in `fuzz/` in turn, SECONDS each (default 60); see `fuzz.rs`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::{Command, ExitCode};

mod fuzz;
mod peer;
mod redis;
mod service;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("demo") => demo(),
        Some("with-peers") => with_peers(&args[1..]),
        Some("fuzz") => fuzz::main(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <ci|bench|demo|fuzz [SECONDS]|with-peers COMMAND...>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result<(), String> {
    let shown = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    eprintln!("xtask: running {shown}");
    let status = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .status()
        .map_err(|e| format!("could not start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed with {status}"))
    }
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The README's first command: the four steps of the Net Health guide against the local Accounts site.
fn demo() -> Result<(), String> {
    run(
        &cargo(),
        &[
            "run",
            "--quiet",
            "--package",
            "nethealth-oidc",
            "--example",
            "demo",
        ],
        &[],
    )
}

/// The peers' issuers (and redis-server's URL), by the variable that names each to the tests, and the guards that
/// stop them when dropped.
struct Peers {
    issuers: Vec<(&'static str, String)>,
    _services: Vec<service::Service>,
    _redis: redis::RedisServer,
}

impl Peers {
    /// Checks for node, installs the peer's packages when missing, starts every [`peer::PEERS`] instance, then
    /// redis-server (installed with apt when missing).
    fn start() -> Result<Peers, String> {
        peer::check_node()?;
        peer::install()?;
        service::install_signal_handler()?;
        let mut issuers = Vec::new();
        let mut services = Vec::new();
        for instance in peer::PEERS {
            let (issuer, service) = peer::start(instance)?;
            eprintln!(
                "xtask: {} is up; {}={issuer}",
                service.name(),
                instance.issuer_var
            );
            issuers.push((instance.issuer_var, issuer));
            services.push(service);
        }
        let redis = redis::RedisServer::start()?;
        issuers.push((redis::ENV, redis.url().to_owned()));
        Ok(Peers {
            issuers,
            _services: services,
            _redis: redis,
        })
    }

    /// The environment for a test run.
    fn env(&self) -> Vec<(&str, &str)> {
        self.issuers
            .iter()
            .map(|(var, issuer)| (*var, issuer.as_str()))
            .collect()
    }
}

/// Starts the peers, runs `command` with their issuers in its environment, and stops them.
fn with_peers(command: &[String]) -> Result<(), String> {
    let Some((program, args)) = command.split_first() else {
        return Err("usage: cargo xtask with-peers COMMAND [ARGS...]".into());
    };
    let peers = Peers::start()?;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(program, &args, &peers.env())
}

fn ci() -> Result<(), String> {
    let cargo = cargo();
    // Fail fast, before the long build, when the peer cannot run here.
    peer::check_node()?;
    peer::install()?;
    // The fuzz targets' first build (cargo-fuzz install, nightly, aws-lc-sys) takes minutes: start it now, beside
    // clippy and the tests; its result is awaited before the fuzzing itself.
    let fuzz_build = std::thread::spawn(fuzz::prepare);
    run(&cargo, &["fmt", "--all", "--check"], &[])?;
    run(
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    // Dropping `peers` stops them (and redis-server), also on an early `?`.
    let peers = Peers::start()?;
    run(
        &cargo,
        &[
            "test",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--locked",
            // Every failing test binary is reported, not only the first.
            "--no-fail-fast",
        ],
        &peers.env(),
    )?;
    run(
        &cargo,
        &["test", "--workspace", "--doc", "--all-features", "--locked"],
        &peers.env(),
    )?;
    drop(peers);
    run(
        &cargo,
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    let prepared = fuzz_build
        .join()
        .map_err(|_| "the fuzz build thread panicked".to_owned())??;
    fuzz::ci(&prepared)
}

/// A speed target: `bench` must cost at most `max_ratio` times `baseline` (both in criterion group `group`).
struct RatioCheck {
    group: &'static str,
    bench: &'static str,
    baseline: &'static str,
    max_ratio: f64,
    what: &'static str,
}

/// Every speed target `cargo xtask bench` enforces. Add a row to add a check.
const RATIO_CHECKS: &[RatioCheck] = &[
    RatioCheck {
        group: "authorize",
        bench: "nethealth_authorization_url",
        baseline: "floor_pkce_s256",
        max_ratio: 3.0,
        what: "authorization URL (PKCE S256 + state + nonce + 3 scopes) vs 32 random bytes, SHA-256, base64url",
    },
    RatioCheck {
        group: "id_token",
        bench: "nethealth_id_token_verify",
        baseline: "raw_aws_lc_rs_rsa2048_verify",
        max_ratio: 1.2,
        what: "RS256 ID-token verify vs raw aws-lc-rs RSA-2048 PKCS#1 SHA-256 verify",
    },
    RatioCheck {
        group: "client_assertion",
        bench: "nethealth_client_assertion_rs256",
        baseline: "raw_aws_lc_rs_rsa2048_sign",
        max_ratio: 1.3,
        what: "private_key_jwt assertion (RS256, RSA-2048) vs raw aws-lc-rs RSA-2048 PKCS#1 SHA-256 sign",
    },
    RatioCheck {
        group: "client_assertion",
        bench: "nethealth_client_assertion_es256",
        baseline: "raw_aws_lc_rs_p256_sign",
        max_ratio: 1.3,
        what: "private_key_jwt assertion (ES256, P-256) vs raw aws-lc-rs P-256 ECDSA sign",
    },
    RatioCheck {
        group: "dpop",
        bench: "nethealth_dpop_proof",
        baseline: "raw_aws_lc_rs_p256_sign",
        max_ratio: 1.3,
        what: "ES256 DPoP proof (with ath and nonce) vs a raw aws-lc-rs ECDSA P-256 signature of the same length",
    },
    RatioCheck {
        group: "access_token",
        bench: "async_session_access_token",
        baseline: "floor_clock_read_plus_atomic_load",
        max_ratio: 3.0,
        what: "cached async Session::access_token() vs a clock read plus an atomic load",
    },
    RatioCheck {
        group: "access_token",
        bench: "blocking_session_access_token",
        baseline: "floor_clock_read_plus_atomic_load",
        max_ratio: 3.0,
        what: "cached blocking Session::access_token() vs a clock read plus an atomic load",
    },
    RatioCheck {
        group: "access_token",
        bench: "async_sessions_get_then_access_token",
        baseline: "async_session_access_token",
        max_ratio: 1.5,
        what: "Sessions::get(key) then access_token(), 10,000 users cached, vs one unkeyed async Session",
    },
    RatioCheck {
        group: "redis_store",
        bench: "async_session_access_token_redis_store",
        baseline: "floor_clock_read_plus_atomic_load",
        max_ratio: 3.0,
        what: "cached async Session::access_token() over RedisStore vs the floor: the store is not on the hot path",
    },
    RatioCheck {
        group: "redis_store",
        bench: "blocking_session_access_token_redis_store",
        baseline: "floor_clock_read_plus_atomic_load",
        max_ratio: 3.0,
        what: "cached blocking Session::access_token() over RedisStore vs the floor",
    },
    RatioCheck {
        group: "redis_store",
        bench: "async_refresh_redis_store",
        baseline: "async_refresh_memory_store",
        max_ratio: 1.5,
        what: "one refresh at the local site over RedisStore (lease, re-read, fenced save, release) vs over MemoryStore",
    },
    RatioCheck {
        group: "expiry_stampede",
        bench: "async_10000_tasks_p99",
        baseline: "one_task_refresh_round_trip",
        max_ratio: 2.0,
        what: "p99 latency of 10,000 async tasks at expiry (exactly 1 token request) vs one refresh round trip alone",
    },
];

/// Runs the benches, then checks every [`RATIO_CHECKS`] row against criterion's median estimates.
fn bench(extra: &[String]) -> Result<(), String> {
    let cargo = cargo();
    let started = std::time::SystemTime::now();
    // The `RedisStore` benches need a redis-server and the facade's `redis` feature.
    service::install_signal_handler()?;
    let redis = redis::RedisServer::start()?;
    let mut args = vec![
        "bench",
        "--workspace",
        "--locked",
        "--features",
        "nethealth-oidc/redis",
    ];
    args.extend(extra.iter().map(String::as_str));
    run(&cargo, &args, &[(redis::ENV, redis.url())])?;
    drop(redis);

    let criterion = target_dir().join("criterion");
    let mut failures = Vec::new();
    for check in RATIO_CHECKS {
        let measured = median_ns(&criterion, check.group, check.bench, started).and_then(|b| {
            Ok((
                b,
                median_ns(&criterion, check.group, check.baseline, started)?,
            ))
        });
        match measured {
            Ok((bench_ns, baseline_ns)) => {
                let ratio = bench_ns / baseline_ns;
                let verdict = if ratio <= check.max_ratio {
                    "ok"
                } else {
                    "TOO SLOW"
                };
                println!(
                    "{}/{}: {bench_ns:.0} ns vs {}: {baseline_ns:.0} ns = {ratio:.3}x (target <= {:.2}x) {verdict}  [{}]",
                    check.group, check.bench, check.baseline, check.max_ratio, check.what
                );
                if ratio > check.max_ratio {
                    failures.push(format!(
                        "{}/{} is {ratio:.3}x {} (target <= {:.2}x)",
                        check.group, check.bench, check.baseline, check.max_ratio
                    ));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("speed targets missed: {}", failures.join("; ")))
    }
}

/// The target directory: `CARGO_TARGET_DIR` (relative to the current directory, as cargo reads it), else the
/// workspace's `target/`.
fn target_dir() -> std::path::PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => std::path::PathBuf::from(dir),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(|root| root.join("target"))
            .unwrap_or_else(|| std::path::PathBuf::from("target")),
    }
}

/// The median time of one bench, in nanoseconds, from `criterion/<group>/<bench>/new/estimates.json`. An estimate
/// older than this run is refused, so that a filtered run never passes on stale numbers.
fn median_ns(
    criterion: &std::path::Path,
    group: &str,
    bench: &str,
    started: std::time::SystemTime,
) -> Result<f64, String> {
    let path = criterion
        .join(group)
        .join(bench)
        .join("new")
        .join("estimates.json");
    let shown = path.display();
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .map_err(|e| format!("no estimate at {shown} ({e}): did bench `{group}/{bench}` run?"))?;
    if modified < started {
        return Err(format!(
            "the estimate at {shown} predates this run: bench `{group}/{bench}` did not run (filtered out?)"
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{shown} is not JSON: {e}"))?;
    json["median"]["point_estimate"]
        .as_f64()
        .filter(|ns| *ns > 0.0)
        .ok_or_else(|| format!("{shown} has no positive median.point_estimate"))
}
