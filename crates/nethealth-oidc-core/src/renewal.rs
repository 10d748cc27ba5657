//! One session's renewal as a sans-IO machine, and the state it shares with the hot path.
//!
//! A transport's `Session` holds a [`SessionState`]: the [`Lifecycle`], the set kept aside when storing it failed,
//! the hot-path cache (the token and its header, published with one atomic swap) and the hooks. When the token is
//! due, the transport makes one [`Renewal`] (one at a time: single-flight is the driver's job, since it depends on
//! the runtime), and runs it: [`poll`](Renewal::poll) says what to do next as a [`Step`]; the driver does that
//! I/O, reports what happened as an [`Event`] with [`handle`](Renewal::handle), and polls again, until
//! [`Step::Done`]. Every decision of a renewal is the machine's:
//!
//! ```text
//!  Lock ─▶ Load: adopt a set another process stored ─▶ [Save the set kept aside] ─▶ Send ─▶ [VerifyIdToken] ─▶ Save ─▶ Unlock ─▶ Done(token)
//!                                                          ▲                         │
//!                                                          │ adopted                 │ invalid_grant, first attempt
//!                                                          └──────── Load ◀──────────┘
//!                                                                     │ not adopted: Done(LoginRequired),
//!                                                                     ▼ after Load and, if it is still the dead set, Clear
//!  a store failure at any step ─▶ Done(the current token while it is valid, else the error); the next renewal waits a backoff
//! ```
//!
//! The driver holds the store's lock from [`Step::Lock`] until [`Step::Unlock`], which comes before every
//! [`Step::Done`] once the lock was taken: the machine, not the driver, decides when it is released.
//!
//! Invariants the machine keeps, whatever the driver's runtime:
//! - a renewed set is stored before it is installed, so a rotated refresh token is never handed out unstored;
//! - a set whose storing failed is stored first next time, unless the store holds a newer one;
//! - `invalid_grant` ends the session only after a re-read of the store found no newer set;
//! - a dead set leaves the store only if the store still holds that very set.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use http::HeaderValue;

use crate::client_auth::RequestStamp;
use crate::context::ClientContext;
use crate::dpop::DpopKey;
use crate::id_token::IdTokenClaims;
use crate::jwks::JwkSet;
use crate::lifecycle::{GrantKind, Lifecycle, TokenSet};
use crate::secret::AccessToken;
use crate::store::SessionOptions;
use crate::token::{self, TokenResponse};
use crate::{Error, GrantedScopes, LoginRequiredReason, UnixTime, UsageError};

/// What the hot path reads: the token, its header, and until when it may be handed out without asking the
/// lifecycle.
struct Cached {
    token: Arc<AccessToken>,
    header: HeaderValue,
    use_until: u64,
}

impl Cached {
    fn of(lifecycle: &Lifecycle) -> Cached {
        let set = lifecycle.token_set();
        Cached {
            token: Arc::new(set.access_token.clone()),
            header: set.authorization_header(),
            use_until: lifecycle.hand_out_until(),
        }
    }
}

struct Shared {
    lifecycle: Lifecycle,
    /// A renewed set whose storing failed: stored again before anything is handed out.
    unsaved: Option<TokenSet>,
}

/// A session's state, shared by its callers: the lifecycle, the hot-path cache, the hooks. The transports' sessions
/// hold one; [`Renewal`] changes it.
pub struct SessionState {
    shared: Mutex<Shared>,
    cache: ArcSwap<Cached>,
    options: SessionOptions,
}

impl fmt::Debug for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionState")
            .field("lifecycle", &self.lock().lifecycle)
            .field("options", &self.options)
            .finish()
    }
}

impl SessionState {
    /// The state of a session for `set`, obtained through `kind`, at `now`. The driver has stored `set` already
    /// when it is new (then it calls [`fire_hooks`](Self::fire_hooks)).
    pub fn new(set: TokenSet, kind: GrantKind, options: SessionOptions, now: UnixTime) -> Self {
        let lifecycle = Lifecycle::new(set, kind, options.lifecycle, now);
        SessionState {
            cache: ArcSwap::from_pointee(Cached::of(&lifecycle)),
            shared: Mutex::new(Shared {
                lifecycle,
                unsaved: None,
            }),
            options,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session's options.
    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// The hot path: the cached token if it may be handed out at `now_secs` (Unix seconds) without a renewal. One
    /// atomic load, no lock.
    #[inline]
    pub fn fresh_token(&self, now_secs: u64) -> Option<Arc<AccessToken>> {
        let cached = self.cache.load();
        (now_secs < cached.use_until).then(|| Arc::clone(&cached.token))
    }

    /// [`fresh_token`](Self::fresh_token) with its `Authorization` header, read together.
    #[inline]
    pub fn fresh_credentials(&self, now_secs: u64) -> Option<(Arc<AccessToken>, HeaderValue)> {
        let cached = self.cache.load();
        (now_secs < cached.use_until).then(|| (Arc::clone(&cached.token), cached.header.clone()))
    }

    /// The `Authorization` header for `token` (a renewal's result): the cached one when it is that token's, else
    /// the current set's (`Bearer` or `DPoP`), else `Bearer`.
    pub fn header_for(&self, token: &AccessToken) -> HeaderValue {
        let cached = self.cache.load();
        if cached.token.ct_eq(token) {
            return cached.header.clone();
        }
        let shared = self.lock();
        let set = shared.lifecycle.token_set();
        if set.access_token.ct_eq(token) {
            set.authorization_header()
        } else {
            token.authorization_header()
        }
    }

    /// The current token set (it holds secrets).
    pub fn token_set(&self) -> TokenSet {
        self.lock().lifecycle.token_set().clone()
    }

    /// What was granted.
    pub fn granted_scopes(&self) -> GrantedScopes {
        self.lock().lifecycle.granted_scopes().clone()
    }

    /// Whether `scope` was granted.
    pub fn allows(&self, scope: &str) -> bool {
        self.lock().lifecycle.allows(scope)
    }

    /// The DPoP key the tokens are bound to (`None` for bearer tokens); fails when they are bound and the key was
    /// not kept.
    pub fn dpop_key(&self) -> Result<Option<DpopKey>, Error> {
        self.lock().lifecycle.token_set().dpop_key()
    }

    /// The logged-in user's `sub` (from the ID token); [`UsageError::NoUser`] for a session without one.
    pub fn subject(&self) -> Result<String, Error> {
        self.lock()
            .lifecycle
            .id_claims()
            .map(|c| c.sub.clone())
            .ok_or(Error::Usage(UsageError::NoUser))
    }

    /// Reports that a resource server refused `token` as invalid: the next call renews it (once, however many
    /// callers report the same token).
    pub fn token_rejected(&self, now: UnixTime, token: &AccessToken) {
        let mut shared = self.lock();
        shared.lifecycle.handle_token_rejected(now, token);
        self.cache.store(Arc::new(Cached::of(&shared.lifecycle)));
    }

    /// Ends the session (after its tokens were revoked and the store cleared): every caller now hears `reason`.
    pub fn end(&self, reason: LoginRequiredReason) {
        let mut shared = self.lock();
        shared.unsaved = None;
        shared.lifecycle.end(reason);
        self.cache.store(Arc::new(Cached::of(&shared.lifecycle)));
    }

    /// Runs the hooks for a set just stored.
    pub fn fire_hooks(&self, set: &TokenSet) {
        for hook in &self.options.hooks {
            hook(set);
        }
    }

    /// Abandons a renewal whose driver went away without an outcome (a panic, a dropped task): the next call may
    /// start another.
    pub fn abandon(&self) {
        self.lock().lifecycle.abandon();
    }

    /// A renewal of this session's tokens at `context`'s provider. Run one at a time.
    pub fn renewal<'a>(&'a self, context: &'a ClientContext) -> Renewal<'a> {
        Renewal {
            state: self,
            context,
            phase: Phase::Start,
            event: None,
            now: UnixTime::from_secs(0),
            locked: false,
        }
    }

    /// Republishes the lifecycle's current token to the hot path and returns it.
    fn publish(&self, shared: &Shared) -> Arc<AccessToken> {
        let fresh = Cached::of(&shared.lifecycle);
        let token = Arc::clone(&fresh.token);
        self.cache.store(Arc::new(fresh));
        token
    }
}

/// What a [`Renewal`] asks its driver to do next.
// One step per I/O of a renewal, moved once (see [`Event`]). `Debug` never shows a request's body or headers.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Step {
    /// Take the store's lock (across processes) and keep it until [`Step::Unlock`]; report [`Event::Locked`].
    Lock,
    /// Read the store; report [`Event::Loaded`].
    Load,
    /// Store this set; report [`Event::Saved`].
    Save(TokenSet),
    /// Clear the store; report [`Event::Cleared`].
    Clear,
    /// Send this token request (with a DPoP proof when a key is given, answering one nonce challenge); report
    /// [`Event::Response`].
    Send {
        /// The refresh or client-credentials request.
        request: http::Request<Vec<u8>>,
        /// The key the tokens are bound to.
        dpop_key: Option<DpopKey>,
    },
    /// Verify the refreshed ID token with the provider's keys: call [`Renewal::verify_id_token`] with them (and,
    /// if it fails for want of a key, with the keys fetched again); report [`Event::Verified`].
    VerifyIdToken,
    /// Release the store's lock; report [`Event::Unlocked`]. Comes once, before [`Step::Done`], when the lock was
    /// taken.
    Unlock,
    /// The renewal is over (the lock is released): hand this to every caller waiting.
    Done(Result<Arc<AccessToken>, Error>),
}

/// What happened to the I/O a [`Step`] asked for.
// One event per I/O step of a renewal, moved once: boxing the token set would cost every driver a `Box` for nothing.
#[allow(clippy::large_enum_variant)]
#[non_exhaustive]
pub enum Event {
    /// The store's lock was taken (or not).
    Locked(Result<(), Error>),
    /// What the store holds.
    Loaded(Result<Option<TokenSet>, Error>),
    /// The set was stored (or not).
    Saved(Result<(), Error>),
    /// The store was cleared (or not).
    Cleared(Result<(), Error>),
    /// The token endpoint's answer.
    Response(Result<http::Response<Vec<u8>>, Error>),
    /// The refreshed ID token's claims, verified.
    Verified(Result<IdTokenClaims, Error>),
    /// The store's lock was released.
    Unlocked,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Lock => f.write_str("Lock"),
            Step::Load => f.write_str("Load"),
            Step::Save(set) => f.debug_tuple("Save").field(set).finish(),
            Step::Clear => f.write_str("Clear"),
            Step::Send { request, dpop_key } => f
                .debug_struct("Send")
                .field("request", &crate::wire::RequestSummary(request))
                .field("dpop_key", dpop_key)
                .finish(),
            Step::VerifyIdToken => f.write_str("VerifyIdToken"),
            Step::Unlock => f.write_str("Unlock"),
            Step::Done(result) => f.debug_tuple("Done").field(result).finish(),
        }
    }
}

/// `Debug` shows what happened, never a response body or the ID token's claims.
impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = match self {
            Event::Response(Ok(response)) => {
                return f
                    .debug_tuple("Response")
                    .field(&crate::wire::ResponseSummary(response))
                    .finish();
            }
            Event::Loaded(Ok(set)) => {
                return f.debug_tuple("Loaded").field(set).finish();
            }
            Event::Locked(Err(e))
            | Event::Loaded(Err(e))
            | Event::Saved(Err(e))
            | Event::Cleared(Err(e))
            | Event::Response(Err(e))
            | Event::Verified(Err(e)) => Err(e),
            _ => Ok(()),
        };
        f.debug_tuple(self.name()).field(&outcome).finish()
    }
}

impl Event {
    fn name(&self) -> &'static str {
        match self {
            Event::Locked(_) => "Locked",
            Event::Loaded(_) => "Loaded",
            Event::Saved(_) => "Saved",
            Event::Cleared(_) => "Cleared",
            Event::Response(_) => "Response",
            Event::Verified(_) => "Verified",
            Event::Unlocked => "Unlocked",
        }
    }
}

enum Phase {
    Start,
    Locking,
    Rereading,
    SavingUnsaved(TokenSet),
    Sending {
        attempt: u8,
        refresh: bool,
    },
    Verifying {
        attempt: u8,
        response: Box<TokenResponse>,
    },
    Saving(TokenSet),
    /// `invalid_grant` on the first attempt: re-reading the store before giving up.
    Readopting(Error),
    /// The session ended: re-reading the store to clear the dead set from it.
    CheckingDead(Error),
    Clearing(Error),
    /// Over, with this outcome, once the lock is released.
    Unlocking(Result<Arc<AccessToken>, Error>),
    Finished,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Start => "Start",
            Phase::Locking => "Lock",
            Phase::Rereading | Phase::Readopting(_) | Phase::CheckingDead(_) => "Load",
            Phase::SavingUnsaved(_) | Phase::Saving(_) => "Save",
            Phase::Sending { .. } => "Send",
            Phase::Verifying { .. } => "VerifyIdToken",
            Phase::Clearing(_) => "Clear",
            Phase::Unlocking(_) => "Unlock",
            Phase::Finished => "Done",
        }
    }
}

/// One renewal of a session's tokens (see the [module docs](self)). Poll it, do what it says, report what happened.
pub struct Renewal<'a> {
    state: &'a SessionState,
    context: &'a ClientContext,
    phase: Phase,
    event: Option<Event>,
    now: UnixTime,
    /// Whether the driver holds the store's lock (from `Locked(Ok)` until `Unlock`).
    locked: bool,
}

impl fmt::Debug for Renewal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Renewal")
            .field("waiting_for", &self.phase.name())
            .finish_non_exhaustive()
    }
}

impl Renewal<'_> {
    /// Reports what happened to the I/O the last [`Step`] asked for.
    pub fn handle(&mut self, event: Event) {
        self.event = Some(event);
    }

    /// What to do next. `stamp` is drawn fresh for each poll (its time is the machine's `now`; its `jti`
    /// authenticates a token request if this poll builds one).
    pub fn poll(&mut self, stamp: &RequestStamp) -> Step {
        self.now = stamp.now();
        match self.advance(stamp) {
            // Whatever ended the renewal, the lock is released before anyone hears of it.
            Step::Done(result) if self.locked => {
                self.locked = false;
                self.next(Phase::Unlocking(result), Step::Unlock)
            }
            step => step,
        }
    }

    fn advance(&mut self, stamp: &RequestStamp) -> Step {
        let event = self.event.take();
        match (std::mem::replace(&mut self.phase, Phase::Finished), event) {
            (Phase::Start, None) => self.next(Phase::Locking, Step::Lock),
            (Phase::Locking, Some(Event::Locked(Ok(())))) => {
                self.locked = true;
                self.next(Phase::Rereading, Step::Load)
            }
            (Phase::Unlocking(result), Some(Event::Unlocked)) => Step::Done(result),
            (Phase::Locking, Some(Event::Locked(Err(error)))) => self.store_failed(error),
            (Phase::Rereading, Some(Event::Loaded(Ok(stored)))) => {
                if let Some(stored) = stored {
                    self.adopt(stored);
                }
                self.after_reread(stamp)
            }
            (Phase::Rereading, Some(Event::Loaded(Err(error)))) => self.store_failed(error),
            (Phase::SavingUnsaved(set), Some(Event::Saved(result))) => match result {
                Ok(()) => {
                    self.install(set);
                    self.attempt(0, stamp)
                }
                Err(error) => self.keep_aside(set, error),
            },
            (Phase::Sending { attempt, refresh }, Some(Event::Response(response))) => {
                self.received(attempt, refresh, response)
            }
            (Phase::Verifying { attempt, response }, Some(Event::Verified(claims))) => {
                match claims.and_then(|claims| self.prepare(*response, Some(claims))) {
                    Ok(set) => self.next(Phase::Saving(set.clone()), Step::Save(set)),
                    Err(error) => self.failed(attempt, error),
                }
            }
            (Phase::Saving(set), Some(Event::Saved(result))) => match result {
                Ok(()) => {
                    self.install(set);
                    let token = self.state.publish(&self.state.lock());
                    Step::Done(Ok(token))
                }
                Err(error) => self.keep_aside(set, error),
            },
            (Phase::Readopting(error), Some(Event::Loaded(Ok(stored)))) => {
                // Adopting installs the set, which ends the attempt in flight.
                if stored.is_some_and(|stored| self.adopt(stored)) {
                    self.attempt(1, stamp)
                } else {
                    self.renewal_failed(error)
                }
            }
            (Phase::Readopting(_), Some(Event::Loaded(Err(error)))) => self.store_failed(error),
            (Phase::CheckingDead(result), Some(Event::Loaded(stored))) => match stored {
                Ok(Some(stored)) if self.state.lock().lifecycle.is_dead_set(&stored) => {
                    self.next(Phase::Clearing(result), Step::Clear)
                }
                Ok(_) => Step::Done(Err(result)),
                Err(error) => {
                    tracing::warn!(%error, "the dead token set could not be removed from the store");
                    Step::Done(Err(result))
                }
            },
            (Phase::Clearing(result), Some(Event::Cleared(cleared))) => {
                match cleared {
                    Ok(()) => tracing::debug!("removed the dead token set from the store"),
                    Err(error) => {
                        tracing::warn!(%error, "the dead token set could not be removed from the store")
                    }
                }
                Step::Done(Err(result))
            }
            (Phase::Finished, _) => Step::Done(Err(Error::Renewal(
                "the renewal is over; start another one".into(),
            ))),
            (phase, event) => {
                // A driver that reports the wrong thing: end the renewal (abandoned, so the next may start).
                self.state.abandon();
                Step::Done(Err(Error::Renewal(format!(
                    "the renewal driver reported {} while the renewal waited for {}",
                    event.as_ref().map_or("nothing", Event::name),
                    phase.name()
                ))))
            }
        }
    }

    /// Verifies the refreshed ID token (at [`Step::VerifyIdToken`]) with `keys`; continuity with the original
    /// login is checked when the set is prepared.
    pub fn verify_id_token(&self, keys: &JwkSet) -> Result<IdTokenClaims, Error> {
        let Phase::Verifying { response, .. } = &self.phase else {
            return Err(Error::Renewal("no ID token to verify now".into()));
        };
        let original = self.state.lock().lifecycle.id_claims().cloned();
        match (&response.id_token, original) {
            (Some(id_token), Some(original)) => self.context.verify_refreshed(
                id_token,
                &original,
                Some(&response.access_token),
                keys,
                self.now,
            ),
            _ => Err(Error::Renewal("no ID token to verify now".into())),
        }
    }

    fn next(&mut self, phase: Phase, step: Step) -> Step {
        self.phase = phase;
        step
    }

    /// After the re-read under the lock: the set kept aside first (unless the store or the lifecycle holds a newer
    /// one), then the renewal proper.
    fn after_reread(&mut self, stamp: &RequestStamp) -> Step {
        let mut shared = self.state.lock();
        let unsaved = shared
            .unsaved
            .take()
            .filter(|set| set.received_at >= shared.lifecycle.token_set().received_at);
        drop(shared);
        match unsaved {
            Some(set) => self.next(Phase::SavingUnsaved(set.clone()), Step::Save(set)),
            None => self.attempt(0, stamp),
        }
    }

    /// Asks the lifecycle for the request to send, if a renewal is still due.
    fn attempt(&mut self, attempt: u8, stamp: &RequestStamp) -> Step {
        let mut shared = self.state.lock();
        let renewal = match shared.lifecycle.poll_renewal(stamp, self.context) {
            Ok(Some(renewal)) => renewal,
            Ok(None) => return Step::Done(Ok(self.state.publish(&shared))),
            Err(error) => {
                drop(shared);
                return self.finish(Err(error));
            }
        };
        let dpop_key = shared.lifecycle.token_set().dpop_key();
        drop(shared);
        let (request, refresh) = (renewal.request, renewal.is_refresh);
        tracing::debug!(
            grant_type = if refresh {
                "refresh_token"
            } else {
                "client_credentials"
            },
            attempt = attempt + 1,
            "renewing the access token"
        );
        match dpop_key {
            Ok(dpop_key) => self.next(
                Phase::Sending { attempt, refresh },
                Step::Send { request, dpop_key },
            ),
            Err(error) => self.failed(attempt, error),
        }
    }

    fn received(
        &mut self,
        attempt: u8,
        refresh: bool,
        response: Result<http::Response<Vec<u8>>, Error>,
    ) -> Step {
        let parsed = response
            .and_then(|response| token::parse_token_response(&response).map_err(Error::from));
        let response = match parsed {
            Ok(response) => response,
            Err(error) => return self.failed(attempt, error),
        };
        let verify = refresh
            && response.id_token.is_some()
            && self.state.lock().lifecycle.id_claims().is_some();
        if verify {
            let response = Box::new(response);
            return self.next(Phase::Verifying { attempt, response }, Step::VerifyIdToken);
        }
        match self.prepare(response, None) {
            Ok(set) => self.next(Phase::Saving(set.clone()), Step::Save(set)),
            Err(error) => self.failed(attempt, error),
        }
    }

    fn prepare(
        &self,
        response: TokenResponse,
        claims: Option<IdTokenClaims>,
    ) -> Result<TokenSet, Error> {
        self.state
            .lock()
            .lifecycle
            .prepare_refresh(self.now, response, claims)
    }

    /// A renewal request failed. Before declaring "log in again" after `invalid_grant`, re-read the store: another
    /// process may have rotated the refresh token already.
    fn failed(&mut self, attempt: u8, error: Error) -> Step {
        if error.is_invalid_grant() && attempt == 0 {
            return self.next(Phase::Readopting(error), Step::Load);
        }
        self.renewal_failed(error)
    }

    fn renewal_failed(&mut self, error: Error) -> Step {
        let mut shared = self.state.lock();
        let outcome = shared.lifecycle.handle_renewal_error(self.now, error);
        let token = self.state.publish(&shared);
        drop(shared);
        if outcome.is_ok() {
            tracing::debug!("renewal failed; the current token is still valid");
        }
        self.finish(outcome.map(|()| token))
    }

    /// A store failure during a renewal: callers keep the current token while it is valid, the renewal is retried
    /// after a backoff; once the token has expired, callers get the error.
    fn store_failed(&mut self, error: Error) -> Step {
        tracing::warn!(%error, "the token store failed during a renewal");
        self.renewal_failed(error)
    }

    /// Storing `set` failed: it is kept aside, to be stored before anything else next time.
    fn keep_aside(&mut self, set: TokenSet, error: Error) -> Step {
        let mut shared = self.state.lock();
        shared.lifecycle.abandon();
        shared.unsaved = Some(set);
        drop(shared);
        self.store_failed(error)
    }

    fn finish(&mut self, result: Result<Arc<AccessToken>, Error>) -> Step {
        match result {
            // Still under the store's lock: a dead set leaves the store, so a later start does not try it again.
            Err(error @ Error::LoginRequired { .. }) => {
                self.next(Phase::CheckingDead(error), Step::Load)
            }
            result => Step::Done(result),
        }
    }

    /// Adopts `stored` if another process renewed it; returns whether it did.
    fn adopt(&self, stored: TokenSet) -> bool {
        let adopted = self.state.lock().lifecycle.handle_stored(stored);
        if adopted {
            tracing::debug!("adopted tokens renewed by another process");
        }
        adopted
    }

    /// Installs a stored set, then runs the hooks (outside the state's lock: a hook may read the session).
    fn install(&self, set: TokenSet) {
        self.state.lock().lifecycle.install(self.now, set.clone());
        self.state.fire_hooks(&set);
    }
}
