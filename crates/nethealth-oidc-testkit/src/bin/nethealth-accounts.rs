//! Runs the local Net Health Accounts site and sample API until interrupted (Ctrl-C), for manual use.
//!
//! ```text
//! nethealth-accounts [--port 5000] [--issuer-path /core] [--standard] [--iss-parameter]
//!                    [--dynamic-registration] [--redirect-uri http://127.0.0.1:8080/callback]
//! ```
//!
//! It seeds a confidential client `nethealth-demo` / `demo-secret` (PKCE required) with the redirect URI given,
//! and the user `alice` / `password`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use nethealth_oidc_testkit::{ClientSpec, TestKit};

const USAGE: &str = "usage: nethealth-accounts [--port N] [--issuer-path /core] [--standard] [--iss-parameter] \
                     [--dynamic-registration] [--redirect-uri URI]";

fn main() {
    let mut builder = TestKit::builder().port(5000).dynamic_registration(false);
    let mut redirect_uri = "http://127.0.0.1:8080/callback".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("{name} needs a value\n{USAGE}");
                std::process::exit(2);
            })
        };
        match arg.as_str() {
            "--port" => {
                let v = value("--port");
                let Ok(port) = v.parse() else {
                    eprintln!("--port: {v:?} is not a port number\n{USAGE}");
                    std::process::exit(2);
                };
                builder = builder.port(port);
            }
            "--issuer-path" => builder = builder.issuer_path(value("--issuer-path")),
            "--standard" => builder = builder.identity_server3(false),
            "--iss-parameter" => builder = builder.iss_parameter(true),
            "--dynamic-registration" => builder = builder.dynamic_registration(true),
            "--redirect-uri" => redirect_uri = value("--redirect-uri"),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => {
                eprintln!("unknown argument {other:?}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let kit = builder
        .client(
            ClientSpec::confidential("nethealth-demo", "demo-secret")
                .name("Net Health demo")
                .redirect_uri(redirect_uri.clone())
                .post_logout_redirect_uri(redirect_uri.clone()),
        )
        .start_blocking();
    let kit = match kit {
        Ok(kit) => kit,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    println!("Net Health Accounts (local) is running.");
    println!("  issuer:        {}", kit.issuer());
    println!("  discovery:     {}", kit.discovery_url());
    println!("  registration:  POST {}", kit.register_url());
    println!("  sample API:    {}", kit.api_url());
    println!("  user:          alice / password");
    println!(
        "  client:        nethealth-demo / demo-secret (PKCE required), redirect {redirect_uri}"
    );
    println!("Press Ctrl-C to stop.");
    loop {
        std::thread::park();
    }
}
