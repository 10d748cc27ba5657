//! The API-call machine (`resource::ApiCall`) driven by a simulated driver: a scripted session (the credentials it
//! hands out) and a scripted API (its answers), no sockets. Every decision both transports' `AuthorizedClient`s
//! make is checked here: the one retry after `invalid_token`, never the refused token twice, no resend without a
//! replayable request, DPoP proofs and the one nonce retry, and their order.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Method, StatusCode};
use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::dpop::{self, DpopKey, DpopNonces};
use nethealth_oidc_core::lifecycle::{GrantKind, TokenSet};
use nethealth_oidc_core::renewal::SessionState;
use nethealth_oidc_core::resource::{ApiCall, Step};
use nethealth_oidc_core::secret::AccessToken;
use nethealth_oidc_core::store::SessionOptions;
use nethealth_oidc_core::{
    Endpoint, Error, GrantedScopes, LoginRequiredReason, ScopeSource, Scopes, TransportError,
    UnixTime, token,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

const NOW: u64 = 1_700_000_000;
const URL: &str = "https://api.example.com/api/patients/7?_format=json";
const HTU: &str = "https://api.example.com/api/patients/7";

/// A session's state holding `at-1`, a bearer token, or a DPoP-bound one with `key`.
fn state(key: Option<&DpopKey>) -> SessionState {
    let token_type = if key.is_some() { "DPoP" } else { "Bearer" };
    let body = json!({"access_token": "at-1", "token_type": token_type, "expires_in": 3600,
        "refresh_token": "rt-1", "scope": "api"});
    let response = http::Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(body.to_string().into_bytes())
        .unwrap();
    let response = token::parse_token_response(&response).unwrap();
    let granted = GrantedScopes::new(
        Scopes::parse("api"),
        Scopes::parse("api"),
        ScopeSource::TokenResponse,
    );
    let grant = Grant::new(response, None, granted, UnixTime::from_secs(NOW));
    let mut set = TokenSet::from_grant(grant, None);
    set.dpop_key = key.cloned();
    SessionState::new(
        set,
        GrantKind::AuthorizationCode,
        SessionOptions::default(),
        UnixTime::from_secs(NOW),
    )
}

fn key() -> DpopKey {
    DpopKey::generate(&mut StdRng::seed_from_u64(9)).unwrap()
}

/// The credentials a session hands out for token `name`, with the scheme its set uses.
fn credentials(name: &str, dpop: bool) -> Result<(Arc<AccessToken>, HeaderValue), Error> {
    let token = AccessToken::new(name);
    let header = if dpop {
        dpop::authorization_header(&token)
    } else {
        token.authorization_header()
    };
    Ok((Arc::new(token), header))
}

/// An answer of the API: a status and `(name, value)` headers; the body is the answer's number, so that the test
/// sees which one came back.
fn answer(status: u16, headers: &[(&str, &str)]) -> http::Response<u32> {
    let mut builder = http::Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(0).unwrap()
}

fn ok() -> http::Response<u32> {
    answer(200, &[])
}

fn invalid_token() -> http::Response<u32> {
    answer(
        401,
        &[(
            "www-authenticate",
            r#"Bearer realm="api", error="invalid_token", error_description="expired""#,
        )],
    )
}

fn nonce_challenge(nonce: &str) -> http::Response<u32> {
    answer(
        401,
        &[
            (
                "www-authenticate",
                r#"DPoP algs="ES256", error="use_dpop_nonce""#,
            ),
            ("dpop-nonce", nonce),
        ],
    )
}

/// What one request carried.
#[derive(Debug)]
struct Sent {
    attempt: u8,
    proof: Option<Value>,
}

/// One scripted call and what came of it.
struct Run {
    /// The call's result (an answer's body is its number: 1 for the first answer).
    result: Result<http::Response<u32>, Error>,
    /// What the driver did: `credentials`, `send <Authorization>`, `cannot replay`.
    log: Vec<String>,
    sent: Vec<Sent>,
    state: SessionState,
    nonces: DpopNonces,
}

impl Run {
    fn ok(&self) -> (StatusCode, u32) {
        let response = self.result.as_ref().expect("the call succeeds");
        (response.status(), *response.body())
    }

    fn proofs(&self, claim: &str) -> Vec<Value> {
        self.sent
            .iter()
            .map(|s| s.proof.as_ref().expect("a proof")[claim].clone())
            .collect()
    }
}

/// The tokens a session hands out, one per `Step::Credentials`, DPoP-bound or not.
fn tokens(names: &[&str], dpop: bool) -> Vec<Result<(Arc<AccessToken>, HeaderValue), Error>> {
    names.iter().map(|name| credentials(name, dpop)).collect()
}

/// The simulated driver: a `method` call to `url` of the session whose state is `state`, which hands out
/// `session`'s credentials in order, to an API that answers `api` in order; the request can be sent again when
/// `replayable`. Returns the result, the log and what was sent.
fn drive(
    (state, nonces): (&SessionState, &DpopNonces),
    (method, url): (Method, &str),
    session: Vec<Result<(Arc<AccessToken>, HeaderValue), Error>>,
    api: Vec<http::Response<u32>>,
    replayable: bool,
) -> (Result<http::Response<u32>, Error>, Vec<String>, Vec<Sent>) {
    let (mut session, mut api) = (VecDeque::from(session), VecDeque::from(api));
    let (mut log, mut sent) = (Vec::new(), Vec::<Sent>::new());
    let mut rng = StdRng::seed_from_u64(1);
    let mut call = ApiCall::new(state, nonces, method, url);
    for _ in 0..20 {
        match call.poll(UnixTime::from_secs(NOW), &mut rng) {
            Step::Credentials => {
                log.push("credentials".to_owned());
                call.handle_credentials(session.pop_front().expect("more credentials scripted"));
            }
            Step::Send(_) if !sent.is_empty() && !replayable => {
                log.push("cannot replay".to_owned());
                call.handle_cannot_replay();
            }
            Step::Send(send) => {
                let mut headers = http::HeaderMap::new();
                let attempt = send.attempt();
                send.apply(&mut headers);
                let authorization = headers["authorization"].to_str().unwrap().to_owned();
                log.push(format!("send {authorization}"));
                sent.push(Sent {
                    attempt,
                    proof: headers.get("dpop").map(|p| claims(p.to_str().unwrap())),
                });
                let mut response = api.pop_front().expect("more answers scripted");
                *response.body_mut() = sent.len() as u32;
                call.handle_response(response);
            }
            Step::Done(result) => return (result, log, sent),
        }
    }
    panic!("the call never ended: {log:?}");
}

/// [`drive`] for a session holding `at-1` (DPoP-bound with `key`, then the call is a `POST`, else a `GET`).
fn run(
    key: Option<&DpopKey>,
    session: Vec<Result<(Arc<AccessToken>, HeaderValue), Error>>,
    api: Vec<http::Response<u32>>,
    replayable: bool,
) -> Run {
    let (state, nonces) = (state(key), DpopNonces::default());
    let method = if key.is_some() {
        Method::POST
    } else {
        Method::GET
    };
    let (result, log, sent) = drive((&state, &nonces), (method, URL), session, api, replayable);
    Run {
        result,
        log,
        sent,
        state,
        nonces,
    }
}

/// A proof's claims (its signature is checked by the DPoP tests and the testkit).
fn claims(proof: &str) -> Value {
    let payload = proof.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn is_fresh(state: &SessionState) -> bool {
    state.fresh_token(NOW).is_some()
}

#[test]
fn a_bearer_call_sends_the_token_once() {
    let run = run(None, tokens(&["at-1"], false), vec![ok()], true);
    assert_eq!(run.ok(), (StatusCode::OK, 1));
    assert_eq!(run.log, ["credentials", "send Bearer at-1"]);
    assert!(run.sent[0].proof.is_none());
    assert!(is_fresh(&run.state), "a token the API took is not reported");
}

#[test]
fn invalid_token_renews_once_and_resends_with_the_new_token() {
    let run = run(
        None,
        tokens(&["at-1", "at-2"], false),
        vec![invalid_token(), ok()],
        true,
    );
    assert_eq!(run.ok(), (StatusCode::OK, 2));
    assert_eq!(
        run.log,
        [
            "credentials",
            "send Bearer at-1",
            "credentials",
            "send Bearer at-2"
        ]
    );
    assert!(
        !is_fresh(&run.state),
        "the session was told its token was rejected"
    );
}

#[test]
fn a_second_invalid_token_is_returned_not_retried() {
    let api = vec![invalid_token(), invalid_token()];
    let run = run(None, tokens(&["at-1", "at-2"], false), api, true);
    assert_eq!(run.ok(), (StatusCode::UNAUTHORIZED, 2));
    assert_eq!(run.sent.len(), 2);
}

#[test]
fn the_refused_token_is_never_sent_again() {
    // The session could not renew (another caller's renewal, a token with no refresh token) and hands back at-1.
    let run = run(
        None,
        tokens(&["at-1", "at-1"], false),
        vec![invalid_token()],
        true,
    );
    assert_eq!(run.ok(), (StatusCode::UNAUTHORIZED, 1));
    assert_eq!(run.log, ["credentials", "send Bearer at-1", "credentials"]);
}

#[test]
fn a_request_that_cannot_be_replayed_gets_its_401_back() {
    let run = run(
        None,
        tokens(&["at-1", "at-2"], false),
        vec![invalid_token()],
        false,
    );
    assert_eq!(run.ok(), (StatusCode::UNAUTHORIZED, 1));
    assert_eq!(
        run.log,
        [
            "credentials",
            "send Bearer at-1",
            "credentials",
            "cannot replay"
        ]
    );
    assert!(!is_fresh(&run.state), "the next call gets a renewed token");
}

#[test]
fn other_refusals_are_returned_as_they_are() {
    let cases = [
        answer(
            403,
            &[(
                "www-authenticate",
                r#"Bearer error="insufficient_scope", scope="patient/*.read""#,
            )],
        ),
        answer(
            401,
            &[("www-authenticate", r#"Bearer error="invalid_request""#)],
        ),
        answer(401, &[("www-authenticate", r#"Basic realm="api""#)]),
        answer(401, &[]),
        answer(
            500,
            &[("www-authenticate", r#"Bearer error="invalid_token""#)],
        ),
        answer(
            400,
            &[
                ("www-authenticate", r#"DPoP error="use_dpop_nonce""#),
                ("dpop-nonce", "n"),
            ],
        ),
    ];
    for case in cases {
        let status = case.status();
        let run = run(None, tokens(&["at-1"], false), vec![case], true);
        assert_eq!(run.ok(), (status, 1));
        assert_eq!(run.log, ["credentials", "send Bearer at-1"], "{status}");
        assert!(is_fresh(&run.state), "{status}: the token is not reported");
    }
}

#[test]
fn a_credentials_error_ends_the_call() {
    let ended = Error::login_required(LoginRequiredReason::RefreshTokenRejected, None);
    let session = vec![credentials("at-1", false), Err(ended.clone())];
    let run = run(None, session, vec![invalid_token()], true);
    assert_eq!(run.result.unwrap_err(), ended);
    assert_eq!(run.sent.len(), 1);
}

#[test]
fn a_dpop_call_carries_a_proof_for_its_method_url_and_token() {
    let run = run(Some(&key()), tokens(&["at-1"], true), vec![ok()], true);
    assert_eq!(run.log, ["credentials", "send DPoP at-1"]);
    let proof = run.sent[0].proof.as_ref().expect("a proof");
    assert_eq!(proof["htm"], "POST");
    assert_eq!(proof["htu"], HTU, "no query in htu");
    assert_eq!(
        proof["ath"],
        dpop::access_token_hash(&AccessToken::new("at-1"))
    );
    assert_eq!(proof["iat"], NOW);
    assert!(proof.get("nonce").is_none());
}

#[test]
fn use_dpop_nonce_is_answered_once_with_the_nonce() {
    let api = vec![nonce_challenge("n-1"), ok()];
    let run = run(Some(&key()), tokens(&["at-1"], true), api, true);
    assert_eq!(run.ok(), (StatusCode::OK, 2));
    assert_eq!(run.log, ["credentials", "send DPoP at-1", "send DPoP at-1"]);
    assert_eq!(run.proofs("nonce"), [Value::Null, json!("n-1")]);
    let (jti, ath) = (run.proofs("jti"), run.proofs("ath"));
    assert_ne!(jti[0], jti[1], "a fresh proof per request");
    assert_eq!(ath[0], ath[1], "the same token");
    let url = nethealth_oidc_core::Url::parse(URL).unwrap();
    assert_eq!(run.nonces.get(&url).as_deref(), Some("n-1"));
    assert!(
        is_fresh(&run.state),
        "a nonce challenge is no verdict on the token"
    );
}

#[test]
fn a_second_nonce_challenge_is_the_typed_error() {
    let api = vec![nonce_challenge("n-1"), nonce_challenge("n-2")];
    let run = run(Some(&key()), tokens(&["at-1"], true), api, true);
    let error = run.result.unwrap_err();
    assert_eq!(
        error,
        dpop::nonce_challenge_repeated(Endpoint::Resource).into()
    );
    assert_eq!(run.sent.len(), 2);
}

#[test]
fn a_nonce_challenge_without_a_replayable_request_is_returned() {
    let run = run(
        Some(&key()),
        tokens(&["at-1"], true),
        vec![nonce_challenge("n-1")],
        false,
    );
    assert_eq!(run.ok(), (StatusCode::UNAUTHORIZED, 1));
    assert_eq!(run.log, ["credentials", "send DPoP at-1", "cannot replay"]);
}

/// The order of the two retries: a nonce challenge is answered first, with the same token (it says nothing about
/// the token); `invalid_token` then renews once; each token gets its own one nonce retry.
#[test]
fn dpop_nonce_and_invalid_token_retries_combine_in_order() {
    let api = vec![
        nonce_challenge("n-1"),
        invalid_token(),
        nonce_challenge("n-2"),
        ok(),
    ];
    let run = run(Some(&key()), tokens(&["at-1", "at-2"], true), api, true);
    assert_eq!(run.ok(), (StatusCode::OK, 4));
    let expected = [
        "credentials",
        "send DPoP at-1",
        "send DPoP at-1",
        "credentials",
        "send DPoP at-2",
        "send DPoP at-2",
    ];
    assert_eq!(run.log, expected);
    // The new token's first proof already carries the latest nonce the server gave.
    assert_eq!(
        run.proofs("nonce"),
        [Value::Null, json!("n-1"), json!("n-1"), json!("n-2")]
    );
    let attempts: Vec<_> = run.sent.iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
}

/// One `401` with both challenges: the nonce first (same token), then, if the token is really refused, a renewal.
#[test]
fn a_401_with_both_challenges_answers_the_nonce_first() {
    let both = answer(
        401,
        &[
            (
                "www-authenticate",
                r#"DPoP algs="ES256", error="use_dpop_nonce""#,
            ),
            ("www-authenticate", r#"Bearer error="invalid_token""#),
            ("dpop-nonce", "n-1"),
        ],
    );
    let api = vec![both, invalid_token(), ok()];
    let run = run(Some(&key()), tokens(&["at-1", "at-2"], true), api, true);
    assert_eq!(run.ok(), (StatusCode::OK, 3));
    let expected = [
        "credentials",
        "send DPoP at-1",
        "send DPoP at-1",
        "credentials",
        "send DPoP at-2",
    ];
    assert_eq!(run.log, expected);
}

#[test]
fn a_dpop_bound_token_without_its_key_or_with_a_relative_url_is_a_typed_error() {
    let key = key();
    let mut set = state(Some(&key)).token_set();
    set.dpop_key = None;
    let now = UnixTime::from_secs(NOW);
    let without_key = SessionState::new(
        set,
        GrantKind::AuthorizationCode,
        SessionOptions::default(),
        now,
    );
    let nonces = DpopNonces::default();
    let (result, _, sent) = drive(
        (&without_key, &nonces),
        (Method::GET, URL),
        tokens(&["at-1"], true),
        vec![],
        true,
    );
    assert_eq!(result.unwrap_err(), dpop::DpopError::MissingKey.into());
    assert!(sent.is_empty());

    let state = state(Some(&key));
    let relative = (Method::GET, "/api/patients");
    let (result, _, sent) = drive(
        (&state, &nonces),
        relative,
        tokens(&["at-1"], true),
        vec![],
        true,
    );
    let error = result.unwrap_err();
    assert!(
        matches!(error, Error::Dpop(dpop::DpopError::BadUrl(_))),
        "{error:?}"
    );
    assert!(sent.is_empty());
}

fn bearer_call<'a>(
    state: &'a SessionState,
    nonces: &'a DpopNonces,
) -> ApiCall<'a, http::Response<u32>> {
    ApiCall::new(state, nonces, Method::GET, URL)
}

fn is_driver_bug(result: Step<http::Response<u32>>) -> bool {
    match result {
        Step::Done(Err(Error::Transport(TransportError::Io { endpoint, reason }))) => {
            endpoint == Endpoint::Resource && reason.contains("report this bug")
        }
        _ => false,
    }
}

#[test]
fn a_driver_that_misreports_gets_a_typed_error_never_a_panic() {
    let (state, nonces) = (state(None), DpopNonces::default());
    let mut rng = StdRng::seed_from_u64(1);
    let now = UnixTime::from_secs(NOW);

    // A response before anything was sent.
    let mut call = bearer_call(&state, &nonces);
    call.handle_response(ok());
    assert!(is_driver_bug(call.poll(now, &mut rng)));
    assert!(
        is_driver_bug(call.poll(now, &mut rng)),
        "and the call stays over"
    );

    // "Cannot replay" for the first send, which needs no copy.
    let mut call = bearer_call(&state, &nonces);
    assert!(matches!(call.poll(now, &mut rng), Step::Credentials));
    call.handle_credentials(credentials("at-1", false));
    assert!(matches!(call.poll(now, &mut rng), Step::Send(_)));
    call.handle_cannot_replay();
    assert!(is_driver_bug(call.poll(now, &mut rng)));

    // A poll without reporting the response.
    let mut call = bearer_call(&state, &nonces);
    call.poll(now, &mut rng);
    call.handle_credentials(credentials("at-1", false));
    call.poll(now, &mut rng);
    assert!(is_driver_bug(call.poll(now, &mut rng)));

    // Credentials when a response was expected.
    let mut call = bearer_call(&state, &nonces);
    call.poll(now, &mut rng);
    call.handle_credentials(credentials("at-1", false));
    call.poll(now, &mut rng);
    call.handle_credentials(credentials("at-1", false));
    assert!(is_driver_bug(call.poll(now, &mut rng)));

    // A poll after the call was over.
    let mut call = bearer_call(&state, &nonces);
    call.poll(now, &mut rng);
    call.handle_credentials(credentials("at-1", false));
    call.poll(now, &mut rng);
    call.handle_response(ok());
    assert!(matches!(call.poll(now, &mut rng), Step::Done(Ok(_))));
    assert!(is_driver_bug(call.poll(now, &mut rng)));
}

#[test]
fn debug_shows_no_token_and_no_proof() {
    let key = key();
    let (state, nonces) = (state(Some(&key)), DpopNonces::default());
    let mut rng = StdRng::seed_from_u64(1);
    let now = UnixTime::from_secs(NOW);
    let mut call = ApiCall::new(&state, &nonces, Method::POST, URL);
    let mut seen = vec![
        format!("{call:?}"),
        format!("{:?}", call.poll(now, &mut rng)),
    ];
    call.handle_credentials(credentials("at-secret-1", true));
    let step = call.poll(now, &mut rng);
    seen.push(format!("{step:?}"));
    seen.push(format!("{call:?}"));
    let Step::Send(send) = step else {
        panic!("{step:?}")
    };
    let proof = send.proof().unwrap().to_str().unwrap().to_owned();
    seen.push(format!("{send:?}"));
    call.handle_response(ok());
    seen.push(format!("{:?}", call.poll(now, &mut rng)));
    for text in &seen {
        assert!(!text.contains("at-secret-1"), "{text}");
        assert!(!text.contains(&proof) && !text.contains("eyJ"), "{text}");
    }
    assert!(seen[2].contains("[redacted]"), "{}", seen[2]);
    assert!(send.authorization().is_sensitive() && send.proof().unwrap().is_sensitive());
}
