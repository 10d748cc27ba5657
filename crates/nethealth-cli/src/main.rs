//! `nethealth`: log in to the Net Health API from a terminal, print a valid access token, call the API.
//!
//! Built on the blocking API of `nethealth-oidc` (ureq; no async runtime). Run `nethealth --help`.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod commands;
mod config;
mod fail;
mod login;

use config::StoreKind;
use fail::Failure;

const EXIT_CODES: &str = "\
Exit codes:
  0    ok
  1    another failure (the disk, the keyring)
  2    usage: a bad argument, an unknown profile, a corrupt configuration
  3    login required: nobody is logged in, or the login ran out; run `nethealth login`
  4    the server said no: consent refused, a missing scope, an error status
  5    network: cannot connect, a timeout, the browser never came back
  130  stopped with Ctrl-C

Environment:
  NETHEALTH_PROFILE     the profile when --profile is not given (default: `default`)
  NETHEALTH_CONFIG_DIR  the folder of config.json and of file stores (default: the platform's config folder)
  NETHEALTH_NO_KEYRING  when set, never use the OS keyring (as if there were none)
  NO_COLOR              when set, no colour even on a terminal";

/// Log in to the Net Health API, print a valid access token, or call the API.
#[derive(Debug, Parser)]
#[command(name = "nethealth", version, after_help = EXIT_CODES)]
struct Cli {
    /// The profile: one registered client of one provider.
    #[arg(
        long,
        global = true,
        env = "NETHEALTH_PROFILE",
        default_value = "default"
    )]
    profile: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Register this tool as a client of a provider and save it as a profile.
    Register(RegisterArgs),
    /// Log in: through the browser (a loopback redirect on 127.0.0.1), or with --device.
    Login(LoginArgs),
    /// Print a valid access token (refreshed if due), and nothing else, on stdout.
    Token {
        /// Print `Authorization: Bearer ...` instead of the bare token.
        #[arg(long)]
        header: bool,
    },
    /// Send a request with the access token and print the response body.
    Call(CallArgs),
    /// Who is logged in, the granted and refused scopes, when the tokens expire, where they are kept.
    Status {
        /// Print JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Revoke the tokens at the provider and forget them.
    Logout {
        /// Every profile, not only the current one.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, clap::Args)]
struct RegisterArgs {
    /// The provider's issuer, for example `https://accounts.nethealth.example/core`.
    #[arg(long)]
    issuer: String,
    /// The client's name, as the consent page shows it.
    #[arg(long)]
    name: String,
    /// Redirect URIs to register; default http://127.0.0.1/callback (any port, RFC 8252).
    #[arg(long = "redirect")]
    redirects: Vec<String>,
    /// The scopes to register, and that `login` asks for by default.
    #[arg(
        long,
        default_value = "openid profile offline_access patients.read patients.write"
    )]
    scope: String,
    /// The base URL that relative `call` paths are joined to; default: the issuer's origin.
    #[arg(long)]
    api: Option<String>,
    /// Where to keep the client secret and the tokens.
    #[arg(long, value_enum, default_value = "keyring")]
    store: StoreKind,
}

#[derive(Debug, clap::Args)]
struct LoginArgs {
    /// The scopes to ask for (space-separated); default: the profile's.
    #[arg(long)]
    scope: Option<String>,
    /// Print the URL instead of opening a browser.
    #[arg(long)]
    no_browser: bool,
    /// Log in with the device flow (RFC 8628): enter a code on another device.
    #[arg(long, conflicts_with_all = ["no_browser", "port"])]
    device: bool,
    /// The loopback port for the browser's way back; default: a free one chosen now.
    #[arg(long)]
    port: Option<u16>,
    /// How long to wait for the login, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Where to keep the tokens; default: the profile's.
    #[arg(long, value_enum)]
    store: Option<StoreKind>,
}

#[derive(Debug, clap::Args)]
struct CallArgs {
    /// The HTTP method.
    #[arg(short = 'X', long = "request", default_value = "GET")]
    method: String,
    /// A path (joined to the profile's API base) or an absolute URL.
    target: String,
    /// The request body (sent as JSON when it looks like JSON).
    #[arg(short = 'd', long = "data")]
    data: Option<String>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                fail::USAGE
            } else {
                fail::OK
            });
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::from(fail::OK),
        Err(failure) => {
            error(&failure.to_string());
            ExitCode::from(failure.code())
        }
    }
}

/// Whether stderr is a terminal (then the countdown is shown, and colour unless `NO_COLOR`).
pub(crate) fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

fn colour() -> bool {
    is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn tagged(tag: &str, ansi: &str, text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = if colour() {
        writeln!(err, "\x1b[{ansi}m{tag}:\x1b[0m {text}")
    } else {
        writeln!(err, "{tag}: {text}")
    };
}

/// An error line on stderr.
pub(crate) fn error(text: &str) {
    tagged("error", "1;31", text);
}

/// A warning line on stderr.
pub(crate) fn warn(text: &str) {
    tagged("warning", "1;33", text);
}

/// A message for the person at the terminal, on stderr (stdout is for what scripts read).
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Rewrites the countdown line.
pub(crate) fn countdown(left: Duration) {
    let s = left.as_secs();
    let _ = write!(
        std::io::stderr().lock(),
        "\r  {}:{:02} left   ",
        s / 60,
        s % 60
    );
}

/// Ends the countdown line, if one was shown.
pub(crate) fn end_countdown(shown: bool) {
    if shown {
        let _ = writeln!(std::io::stderr().lock());
    }
}

/// Prints what scripts read, on stdout.
pub(crate) fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::Other(format!("cannot write to stdout: {e}")))
}
