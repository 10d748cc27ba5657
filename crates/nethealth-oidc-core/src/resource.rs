//! One API call with the session's access token, as a sans-IO machine: every decision an `AuthorizedClient` makes
//! (which headers to send, when to send again, what to hand back) is taken here once, so that each transport's
//! `authorized.rs` is one short driver loop.
//!
//! An [`ApiCall`] is told what happened (`handle_*`) and says what to do next ([`poll`](ApiCall::poll)), as
//! quinn-proto's `Connection` does. It never sees the request's body: the driver keeps its own request (and a copy
//! it can send again, if it has one) and adds the headers each [`Step::Send`] names. It never reads a response's
//! body either: it reads the status and headers ([`ResponseHead`]) and hands the response back untouched.
//!
//! ```text
//!  Credentials ─▶ Send(token) ─▶ answer ─┬─ anything else ──────────────────────────────▶ Done(answer)
//!      ▲                                 ├─ use_dpop_nonce, first for this token ─▶ Send(token, nonce) ─▶ answer ...
//!      │                                 │  (a second one in a row: Done(Err(use_dpop_nonce)))
//!      └── token_rejected ◀──────────────┴─ 401 Bearer invalid_token, first in this call
//!          (the session hands back the same token: Done(401))
//!  no copy to replay: Done(the last answer)
//! ```
//!
//! The driver loop:
//!
//! ```text
//!   loop: match call.poll(now, rng)
//!     Step::Credentials  ── the session's token and header (renewing if due) ──▶ call.handle_credentials
//!     Step::Send(send)   ── the request (the original the first time, else a copy) with send's headers
//!                           ──▶ call.handle_response(response), or call.handle_cannot_replay() without a copy
//!     Step::Done(result) ── return result (a transport error: return it, the call is over)
//! ```
//!
//! Decisions, and their order:
//! - The token is read once per attempt, and the one sent is the one reported if the API refuses it.
//! - A DPoP nonce challenge (`401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a `DPoP-Nonce`) is
//!   answered first, with the same token and a proof carrying the nonce: it says nothing about the token. Each
//!   token gets exactly one such retry; a second challenge in a row is the typed `use_dpop_nonce` error
//!   ([`dpop::nonce_challenge_repeated`]).
//! - Then a `401` with `WWW-Authenticate: Bearer error="invalid_token"`: the session is told the token was
//!   rejected (it renews only if it still holds that token, so concurrent refusals cause one renewal), the new
//!   credentials are read, and the request is sent once more with them. That happens once per call. If the session
//!   hands back the refused token, the `401` is returned: the refused token is never sent again. The token is
//!   reported even when the request turns out not to be replayable, so that the next call has a renewed one.
//! - So a call sends at most four requests (token, token + nonce, new token, new token + nonce).
//! - Any other answer (a `403 insufficient_scope`, a `401` with another error, a `5xx`) is returned as it is. Only
//!   a `Bearer` challenge's `invalid_token` renews (as the transports did before this machine): a resource server's
//!   `DPoP error="invalid_token"` is returned as it is.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use rand::CryptoRng;
use url::Url;

use crate::dpop::{self, DpopError, DpopKey, DpopNonces};
use crate::error::{Endpoint, ErrorCode, TransportError};
use crate::renewal::SessionState;
use crate::secret::AccessToken;
use crate::userinfo::parse_www_authenticate_bearer;
use crate::{Error, UnixTime};

/// What an [`ApiCall`] reads of a response: its status and headers, never its body. Implemented for
/// `http::Response<B>`; a driver whose client has another response type wraps it in a newtype.
pub trait ResponseHead {
    /// The status.
    fn status(&self) -> StatusCode;
    /// The headers.
    fn headers(&self) -> &HeaderMap;
}

impl<B> ResponseHead for http::Response<B> {
    fn status(&self) -> StatusCode {
        http::Response::status(self)
    }

    fn headers(&self) -> &HeaderMap {
        http::Response::headers(self)
    }
}

/// The headers one attempt carries: `Authorization` (`Bearer` or `DPoP`), and a fresh DPoP proof when the token is
/// DPoP-bound. Both are marked sensitive; `Debug` shows neither.
pub struct Attempt {
    authorization: HeaderValue,
    proof: Option<HeaderValue>,
    attempt: u8,
}

impl Attempt {
    /// The `Authorization` header value.
    pub fn authorization(&self) -> &HeaderValue {
        &self.authorization
    }

    /// The `DPoP` header value, when the token is DPoP-bound.
    pub fn proof(&self) -> Option<&HeaderValue> {
        self.proof.as_ref()
    }

    /// Which request of the call this is (1 for the first; at most 4).
    pub fn attempt(&self) -> u8 {
        self.attempt
    }

    /// Puts the headers into a request's `headers`, replacing any `Authorization` or `DPoP` already there.
    pub fn apply(self, headers: &mut HeaderMap) {
        headers.insert(http::header::AUTHORIZATION, self.authorization);
        match self.proof {
            Some(proof) => headers.insert(dpop::DPOP, proof),
            None => headers.remove(dpop::DPOP),
        };
    }
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("attempt", &self.attempt)
            .field("authorization", &"[redacted]")
            .field("proof", &self.proof.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// What an [`ApiCall`] asks its driver to do next. Not `#[non_exhaustive]`: a new step must break every driver
/// until it handles it.
pub enum Step<R> {
    /// Read the session's credentials (the token and its `Authorization` header, renewing if due) and report them
    /// with [`ApiCall::handle_credentials`]; then poll again.
    Credentials,
    /// Send the request with these headers: the driver's own request the first time, a copy after that. Report
    /// the response with [`ApiCall::handle_response`], or [`ApiCall::handle_cannot_replay`] when there is no copy
    /// to send; then poll again.
    Send(Attempt),
    /// The call is over: hand this to the caller.
    Done(Result<R, Error>),
}

impl<R> fmt::Debug for Step<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Credentials => f.write_str("Credentials"),
            Step::Send(send) => f.debug_tuple("Send").field(send).finish(),
            Step::Done(Ok(_)) => f.write_str("Done(Ok(response))"),
            Step::Done(Err(error)) => f.debug_tuple("Done").field(error).finish(),
        }
    }
}

/// What the driver reported since the last poll.
enum Input {
    Credentials(Result<(Arc<AccessToken>, HeaderValue), Error>),
    Response {
        nonce_challenge: bool,
        invalid_token: bool,
    },
    CannotReplay,
}

impl Input {
    fn name(&self) -> &'static str {
        match self {
            Input::Credentials(_) => "credentials",
            Input::Response { .. } => "a response",
            Input::CannotReplay => "that it cannot replay the request",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Start,
    Credentials,
    Response,
    Finished,
}

impl Waiting {
    fn name(self) -> &'static str {
        match self {
            Waiting::Start => "its first poll",
            Waiting::Credentials => "credentials",
            Waiting::Response => "a response",
            Waiting::Finished => "nothing (it was over)",
        }
    }
}

/// The token of the current attempt, with what it is sent with.
struct Credentials {
    token: Arc<AccessToken>,
    header: HeaderValue,
    key: Option<DpopKey>,
    /// Whether this token's one DPoP nonce retry was used.
    nonce_retried: bool,
}

/// One API call with a session's access token (see the [module docs](self)). Poll it, do what it says, report what
/// happened. `R` is the driver's response type, handed back untouched. `Debug` shows where the call is, never a
/// token or a proof.
pub struct ApiCall<'a, R> {
    state: &'a SessionState,
    nonces: &'a DpopNonces,
    method: Method,
    url: Result<Url, String>,
    waiting: Waiting,
    input: Option<Input>,
    current: Option<Credentials>,
    /// The token the API refused as `invalid_token` (the one retry of the call is used once this is set).
    refused: Option<Arc<AccessToken>>,
    last: Option<R>,
    sent: u8,
}

impl<R> fmt::Debug for ApiCall<'_, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiCall")
            .field("method", &self.method)
            .field("waiting_for", &self.waiting.name())
            .field("sent", &self.sent)
            .field(
                "dpop",
                &self.current.as_ref().is_some_and(|c| c.key.is_some()),
            )
            .field("token_refused", &self.refused.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a, R: ResponseHead> ApiCall<'a, R> {
    /// A `method` call to `url` with the token of the session whose state is `state`; DPoP nonces are kept in
    /// `nonces` (the client's, `ClientContext::dpop_nonces`). `url` must be absolute for a DPoP-bound token (its
    /// proof names it); a bearer call never reads it.
    pub fn new(state: &'a SessionState, nonces: &'a DpopNonces, method: Method, url: &str) -> Self {
        ApiCall {
            state,
            nonces,
            method,
            url: Url::parse(url).map_err(|_| crate::error::truncate(url, 200)),
            waiting: Waiting::Start,
            input: None,
            current: None,
            refused: None,
            last: None,
            sent: 0,
        }
    }

    /// Reports the session's credentials, asked for by [`Step::Credentials`]: the token and its `Authorization`
    /// header, or the error that stopped the session from giving one (which ends the call).
    pub fn handle_credentials(
        &mut self,
        credentials: Result<(Arc<AccessToken>, HeaderValue), Error>,
    ) {
        self.input = Some(Input::Credentials(credentials));
    }

    /// Reports the response to the last [`Step::Send`]. A `DPoP-Nonce` it carries is remembered for the server
    /// (DPoP-bound calls), whatever its status.
    pub fn handle_response(&mut self, response: R) {
        let (status, headers) = (response.status(), response.headers());
        let key = self.current.as_ref().and_then(|c| c.key.as_ref());
        let nonce_challenge = match (key, &self.url) {
            (Some(_), Ok(url)) => self.nonces.handle_response(url, status, headers, b""),
            _ => false,
        };
        let invalid_token = status == StatusCode::UNAUTHORIZED && invalid_token(headers);
        self.input = Some(Input::Response {
            nonce_challenge,
            invalid_token,
        });
        self.last = Some(response);
    }

    /// Reports that the driver has no copy of the request to send again, in answer to a [`Step::Send`] after the
    /// first: the call ends with the last response.
    pub fn handle_cannot_replay(&mut self) {
        self.input = Some(Input::CannotReplay);
    }

    /// What to do next, at `now` (a DPoP proof's `iat`, the time a refused token is reported), drawing a proof's
    /// `jti` from `rng`.
    pub fn poll(&mut self, now: UnixTime, rng: &mut dyn CryptoRng) -> Step<R> {
        let input = self.input.take();
        match (self.waiting, input) {
            (Waiting::Start, None) => self.ask_credentials(),
            (Waiting::Credentials, Some(Input::Credentials(Ok((token, header))))) => {
                if self.refused.as_ref().is_some_and(|r| r.ct_eq(&token)) {
                    // Nothing new to send: the refused token is never sent again.
                    tracing::debug!("the session has no other access token; returning the 401");
                    return self.hand_back();
                }
                let key = match self.state.dpop_key() {
                    Ok(key) => key,
                    Err(error) => return self.fail(error),
                };
                self.current = Some(Credentials {
                    token,
                    header,
                    key,
                    nonce_retried: false,
                });
                self.send(now, rng)
            }
            (Waiting::Credentials, Some(Input::Credentials(Err(error)))) => self.fail(error),
            (
                Waiting::Response,
                Some(Input::Response {
                    nonce_challenge,
                    invalid_token,
                }),
            ) => self.answered(nonce_challenge, invalid_token, now, rng),
            (Waiting::Response, Some(Input::CannotReplay)) if self.last.is_some() => {
                tracing::debug!(
                    "the request body cannot be sent again; returning the response as it is"
                );
                self.hand_back()
            }
            (Waiting::Finished, _) => self.fail(driver_bug("polled again after the call was over")),
            (waiting, input) => self.fail(driver_bug(&format!(
                "reported {} while the call waited for {}",
                input.as_ref().map_or("nothing", Input::name),
                waiting.name()
            ))),
        }
    }

    fn answered(
        &mut self,
        nonce_challenge: bool,
        invalid_token: bool,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Step<R> {
        let Some(current) = self.current.as_mut() else {
            return self.fail(driver_bug("reported a response before any credentials"));
        };
        if nonce_challenge {
            if current.nonce_retried {
                return self.fail(dpop::nonce_challenge_repeated(Endpoint::Resource).into());
            }
            current.nonce_retried = true;
            tracing::debug!("the API asked for a DPoP nonce; sending once more with it");
            return self.send(now, rng);
        }
        if invalid_token && self.refused.is_none() {
            tracing::debug!("the API refused the access token as invalid; renewing it once");
            let token = Arc::clone(&current.token);
            // Renews only if the session still holds the refused token (concurrent refusals cause one renewal).
            self.state.token_rejected(now, &token);
            self.refused = Some(token);
            return self.ask_credentials();
        }
        self.hand_back()
    }

    fn ask_credentials(&mut self) -> Step<R> {
        self.waiting = Waiting::Credentials;
        Step::Credentials
    }

    /// The next attempt with the current credentials: the header, and a proof when the token is DPoP-bound.
    fn send(&mut self, now: UnixTime, rng: &mut dyn CryptoRng) -> Step<R> {
        let Some(current) = self.current.as_ref() else {
            return self.fail(driver_bug("asked to send before any credentials"));
        };
        let proof = match &current.key {
            None => None,
            Some(key) => {
                match proof(key, &self.method, &self.url, current, self.nonces, now, rng) {
                    Ok(proof) => Some(proof),
                    Err(error) => return self.fail(error.into()),
                }
            }
        };
        self.sent += 1;
        self.waiting = Waiting::Response;
        Step::Send(Attempt {
            authorization: current.header.clone(),
            proof,
            attempt: self.sent,
        })
    }

    /// The call is over with the last response.
    fn hand_back(&mut self) -> Step<R> {
        self.waiting = Waiting::Finished;
        match self.last.take() {
            Some(response) => Step::Done(Ok(response)),
            None => Step::Done(Err(driver_bug("ended the call before any response"))),
        }
    }

    fn fail(&mut self, error: Error) -> Step<R> {
        self.waiting = Waiting::Finished;
        self.last = None;
        Step::Done(Err(error))
    }
}

/// A fresh proof for `current`'s token, with the nonce `nonces` holds for the URL's server.
fn proof(
    key: &DpopKey,
    method: &Method,
    url: &Result<Url, String>,
    current: &Credentials,
    nonces: &DpopNonces,
    now: UnixTime,
    rng: &mut dyn CryptoRng,
) -> Result<HeaderValue, DpopError> {
    let url = url
        .as_ref()
        .map_err(|text| DpopError::BadUrl(text.clone()))?;
    let nonce = nonces.get(url);
    let proof = key.proof(
        method,
        url,
        Some(&current.token),
        nonce.as_deref(),
        now,
        rng,
    )?;
    let mut value = HeaderValue::try_from(proof).map_err(|_| DpopError::Key {
        key: key.thumbprint().to_owned(),
        reason: "its proof is not a valid header value",
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Whether a `401`'s headers carry a `Bearer` challenge with `error="invalid_token"`.
fn invalid_token(headers: &HeaderMap) -> bool {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(parse_www_authenticate_bearer)
        .any(|c| c.error.is_some_and(|e| e == ErrorCode::InvalidToken))
}

/// A driver that reported the wrong thing: a typed error that ends the call, never a panic.
fn driver_bug(what: &str) -> Error {
    Error::Transport(TransportError::Io {
        endpoint: Endpoint::Resource,
        reason: format!("the API-call driver {what}: report this bug"),
    })
}
