//! The two ways to log in: RFC 8252 (the system browser comes back to a loopback redirect on `127.0.0.1`) and
//! RFC 8628 (the device flow, for machines with no browser).

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nethealth_oidc::blocking::{Client, DeviceStep};
use nethealth_oidc::{Grant, Prompt, Scopes};
use url::Url;

use crate::fail::Failure;

/// The path of the loopback redirect.
pub(crate) const CALLBACK_PATH: &str = "/callback";

/// The largest request the loopback listener reads.
const MAX_REQUEST: usize = 16 * 1024;

/// Set by Ctrl-C.
pub(crate) fn interrupted() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = Arc::clone(&flag);
    // A second handler cannot be installed; then Ctrl-C keeps its default (the process ends at once).
    let _ = ctrlc::set_handler(move || set.store(true, Ordering::SeqCst));
    flag
}

/// Binds the loopback listener: `port` 0 lets the system choose a free one.
pub(crate) fn bind(port: u16) -> Result<(TcpListener, Url), Failure> {
    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
        Failure::Network(format!(
            "cannot listen on 127.0.0.1:{port} for the browser's way back ({e}): choose another --port, or leave \
             it out to let the system pick a free one"
        ))
    })?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::Network(format!("the loopback listener has no address: {e}")))?
        .port();
    let redirect = Url::parse(&format!("http://127.0.0.1:{port}{CALLBACK_PATH}"))
        .map_err(|e| Failure::Other(format!("cannot make the redirect URI: {e}")))?;
    Ok((listener, redirect))
}

/// Logs in through the browser: prints (and unless `no_browser` opens) the URL, then waits on `listener` for the
/// browser to come back, at most `timeout`.
pub(crate) fn browser_login(
    client: &Client,
    scopes: &Scopes,
    listener: TcpListener,
    redirect: &Url,
    no_browser: bool,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Grant, Failure> {
    let mut request = client.login_request(scopes)?;
    if scopes.contains("offline_access") {
        // OpenID Connect Core §11: a refresh token for offline use needs `prompt=consent`.
        request = request.prompt(Prompt::Consent);
    }
    // Pushed first (RFC 9126) when the provider requires it: then the URL carries only client_id and request_uri.
    let (auth_url, pending) = client.start_login_with(request)?;
    crate::note(&format!(
        "Open this URL in a browser to log in:\n\n  {}\n",
        auth_url.as_str()
    ));
    if !no_browser && let Err(e) = webbrowser::open(auth_url.as_str()) {
        crate::warn(&format!(
            "could not start a browser ({e}); open the URL above yourself"
        ));
    }
    crate::note(&format!(
        "Waiting for the browser to come back to {redirect} (up to {} s; Ctrl-C to stop)...",
        timeout.as_secs()
    ));
    listener
        .set_nonblocking(true)
        .map_err(|e| Failure::Network(format!("the loopback listener failed: {e}")))?;
    let deadline = Instant::now() + timeout;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Err(Failure::Interrupted);
        }
        if Instant::now() >= deadline {
            return Err(Failure::Network(format!(
                "timed out after {} s waiting for the browser to come back to {redirect}: run `nethealth login` \
                 again (and finish the login in the browser), or give a longer --timeout",
                timeout.as_secs()
            )));
        }
        match listener.accept() {
            Ok((stream, _)) => {
                if let Some(callback) = read_callback(stream, redirect) {
                    return client.finish_login(&pending, &callback).map_err(|e| {
                        if e.is_consent_denied() {
                            Failure::Refused(format!("{e}"))
                        } else {
                            e.into()
                        }
                    });
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => {
                return Err(Failure::Network(format!(
                    "the loopback listener failed: {e}"
                )));
            }
        }
    }
}

/// Reads one HTTP request; answers it; returns the callback URL when it was the redirect's path.
fn read_callback(mut stream: TcpStream, redirect: &Url) -> Option<Url> {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < MAX_REQUEST {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let target = head
        .lines()
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("");
    let callback = redirect
        .join(target)
        .ok()
        .filter(|u| u.path() == CALLBACK_PATH && !target.is_empty());
    let (status, page) = match &callback {
        Some(u) if u.query_pairs().any(|(k, _)| k == "error") => (
            "200 OK",
            "The login did not go through. You can close this tab and look at the terminal.",
        ),
        Some(_) => (
            "200 OK",
            "You are logged in to nethealth. You can close this tab and return to the terminal.",
        ),
        None => ("404 Not Found", "Not found."),
    };
    let body = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>nethealth</title></head>\
         <body style=\"font-family:sans-serif;margin:3em\"><p>{page}</p></body></html>"
    );
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\nCache-Control: no-store\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.flush();
    callback
}

/// Logs in with the device flow: shows the user code and where to enter it, then polls with a countdown.
pub(crate) fn device_login(
    client: &Client,
    scopes: &Scopes,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<Grant, Failure> {
    let mut flow = client.begin_device_login(scopes)?;
    let auth = flow.authorization();
    let clock = Arc::clone(client.provider().clock());
    crate::note(&format!(
        "To log in, open {} on any device and enter the code\n\n  {}\n",
        auth.verification_uri, auth.user_code
    ));
    if let Some(complete) = &auth.verification_uri_complete {
        crate::note(&format!(
            "(or open {complete} , which has the code filled in)"
        ));
    }
    let started = Instant::now();
    let code_left = flow
        .expires_at()
        .as_secs()
        .saturating_sub(clock.now().as_secs());
    let wait = Duration::from_secs(code_left).min(timeout);
    crate::note(&format!(
        "Waiting for the code to be approved (up to {} s; Ctrl-C to stop)...",
        wait.as_secs()
    ));
    let countdown = crate::is_terminal();
    loop {
        // Sleep until the next poll, in small steps, so that Ctrl-C and the timeout are noticed.
        while clock.now() < flow.poll_at() {
            if stop.load(Ordering::SeqCst) {
                crate::end_countdown(countdown);
                return Err(Failure::Interrupted);
            }
            let left = wait.saturating_sub(started.elapsed());
            if left.is_zero() {
                crate::end_countdown(countdown);
                return Err(Failure::Network(format!(
                    "timed out after {} s waiting for the code {} to be approved: run `nethealth login --device` \
                     again",
                    wait.as_secs(),
                    flow.authorization().user_code
                )));
            }
            if countdown {
                crate::countdown(left);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        match client.poll_device_login(&mut flow)? {
            DeviceStep::Granted(grant) => {
                crate::end_countdown(countdown);
                return Ok(*grant);
            }
            DeviceStep::Denied => {
                crate::end_countdown(countdown);
                return Err(Failure::Refused(
                    "the login was denied on the verification page: run `nethealth login --device` again to retry"
                        .into(),
                ));
            }
            DeviceStep::Expired => {
                crate::end_countdown(countdown);
                return Err(Failure::LoginRequired(
                    "the code expired before it was approved: run `nethealth login --device` again"
                        .into(),
                ));
            }
            _ => {}
        }
    }
}
