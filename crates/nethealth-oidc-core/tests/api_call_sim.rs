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
    authorization: String,
    proof: Option<Value>,
}

/// The simulated driver: the session's credentials and the API's answers, in order, and whether the request can
/// be sent again. Returns the call's result (the answer's number in the body) and what the driver did.
struct Sim {
    session: VecDeque<Result<(Arc<AccessToken>, HeaderValue), Error>>,
    api: VecDeque<http::Response<u32>>,
    replayable: bool,
    log: Vec<String>,
    sent: Vec<Sent>,
}

impl Sim {
    fn new(
        session: Vec<Result<(Arc<AccessToken>, HeaderValue), Error>>,
        api: Vec<http::Response<u32>>,
    ) -> Sim {
        Sim {
            session: session.into(),
            api: api.into(),
            replayable: true,
            log: Vec::new(),
            sent: Vec::new(),
        }
    }

    fn run(
        &mut self,
        call: &mut ApiCall<'_, http::Response<u32>>,
    ) -> Result<http::Response<u32>, Error> {
        let mut rng = StdRng::seed_from_u64(1);
        let mut answered = 0;
        for _ in 0..20 {
            match call.poll(UnixTime::from_secs(NOW), &mut rng) {
                Step::Credentials => {
                    self.log.push("credentials".into());
                    let next = self
                        .session
                        .pop_front()
                        .expect("the script has more credentials");
                    call.handle_credentials(next);
                }
                Step::Send(send) => {
                    if !self.sent.is_empty() && !self.replayable {
                        self.log.push("cannot replay".into());
                        call.handle_cannot_replay();
                        continue;
                    }
                    let mut headers = http::HeaderMap::new();
                    let attempt = send.attempt();
                    send.apply(&mut headers);
                    let sent = Sent {
                        attempt,
                        authorization: headers["authorization"].to_str().unwrap().to_owned(),
                        proof: headers.get("dpop").map(|p| claims(p.to_str().unwrap())),
                    };
                    self.log.push(format!("send {}", sent.authorization));
                    self.sent.push(sent);
                    let mut response = self.api.pop_front().expect("the script has more answers");
                    answered += 1;
                    *response.body_mut() = answered;
                    call.handle_response(response);
                }
                Step::Done(result) => return result,
            }
        }
        panic!("the call never ended: {:?}", self.log);
    }
}

/// A proof's claims (its signature is checked by the DPoP tests and the testkit).
fn claims(proof: &str) -> Value {
    let payload = proof.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn bearer_call<'a>(
    state: &'a SessionState,
    nonces: &'a DpopNonces,
) -> ApiCall<'a, http::Response<u32>> {
    ApiCall::new(state, nonces, Method::GET, URL)
}

fn is_fresh(state: &SessionState) -> bool {
    state.fresh_token(NOW).is_some()
}

#[test]
fn a_bearer_call_sends_the_token_once() {
    let (state, nonces) = (state(None), DpopNonces::default());
    let mut sim = Sim::new(vec![credentials("at-1", false)], vec![ok()]);
    let response = sim.run(&mut bearer_call(&state, &nonces)).unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(sim.log, ["credentials", "send Bearer at-1"]);
    assert!(sim.sent[0].proof.is_none());
    assert!(is_fresh(&state), "a token the API took is not reported");
}

#[test]
fn invalid_token_renews_once_and_resends_with_the_new_token() {
    let (state, nonces) = (state(None), DpopNonces::default());
    let mut sim = Sim::new(
        vec![credentials("at-1", false), credentials("at-2", false)],
        vec![invalid_token(), ok()],
    );
    let response = sim.run(&mut bearer_call(&state, &nonces)).unwrap();
    assert_eq!((response.status(), *response.body()), (StatusCode::OK, 2));
    assert_eq!(
        sim.log,
        [
            "credentials",
            "send Bearer at-1",
            "credentials",
            "send Bearer at-2"
        ]
    );
    assert!(
        !is_fresh(&state),
        "the session was told its token was rejected"
    );
}

#[test]
fn a_second_invalid_token_is_returned_not_retried() {
    let (state, nonces) = (state(None), DpopNonces::default());
    let mut sim = Sim::new(
        vec![credentials("at-1", false), credentials("at-2", false)],
        vec![invalid_token(), invalid_token()],
    );
    let response = sim.run(&mut bearer_call(&state, &nonces)).unwrap();
    assert_eq!(
        (response.status(), *response.body()),
        (StatusCode::UNAUTHORIZED, 2)
    );
    assert_eq!(sim.sent.len(), 2);
}

#[test]
fn the_refused_token_is_never_sent_again() {
    let (state, nonces) = (state(None), DpopNonces::default());
    // The session could not renew (another caller's renewal, a token with no refresh token) and hands back at-1.
    let mut sim = Sim::new(
        vec![credentials("at-1", false), credentials("at-1", false)],
        vec![invalid_token()],
    );
    let response = sim.run(&mut bearer_call(&state, &nonces)).unwrap();
    assert_eq!(
        (response.status(), *response.body()),
        (StatusCode::UNAUTHORIZED, 1)
    );
    assert_eq!(sim.log, ["credentials", "send Bearer at-1", "credentials"]);
}

#[test]
fn a_request_that_cannot_be_replayed_gets_its_401_back() {
    let (state, nonces) = (state(None), DpopNonces::default());
    let mut sim = Sim::new(
        vec![credentials("at-1", false), credentials("at-2", false)],
        vec![invalid_token()],
    );
    sim.replayable = false;
    let response = sim.run(&mut bearer_call(&state, &nonces)).unwrap();
    assert_eq!(
        (response.status(), *response.body()),
        (StatusCode::UNAUTHORIZED, 1)
    );
    assert_eq!(
        sim.log,
        [
            "credentials",
            "send Bearer at-1",
            "credentials",
            "cannot replay"
        ]
    );
    assert!(!is_fresh(&state), "the next call gets a renewed token");
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
        let (state, nonces) = (state(None), DpopNonces::default());
        let status = case.status();
        let mut sim = Sim::new(vec![credentials("at-1", false)], vec![case]);
        let response = sim.run(&mut bearer_call(&state, &nonces)).unwrap();
        assert_eq!(response.status(), status);
        assert_eq!(sim.log, ["credentials", "send Bearer at-1"], "{status}");
        assert!(is_fresh(&state), "{status}: the token is not reported");
    }
}

#[test]
fn a_credentials_error_ends_the_call() {
    let (state, nonces) = (state(None), DpopNonces::default());
    let ended = Error::login_required(LoginRequiredReason::RefreshTokenRejected, None);
    let mut sim = Sim::new(
        vec![credentials("at-1", false), Err(ended.clone())],
        vec![invalid_token()],
    );
    let error = sim.run(&mut bearer_call(&state, &nonces)).unwrap_err();
    assert_eq!(error, ended);
    assert_eq!(sim.sent.len(), 1);
}

fn dpop_call<'a>(
    state: &'a SessionState,
    nonces: &'a DpopNonces,
) -> ApiCall<'a, http::Response<u32>> {
    ApiCall::new(state, nonces, Method::POST, URL)
}

#[test]
fn a_dpop_call_carries_a_proof_for_its_method_url_and_token() {
    let key = key();
    let (state, nonces) = (state(Some(&key)), DpopNonces::default());
    let mut sim = Sim::new(vec![credentials("at-1", true)], vec![ok()]);
    sim.run(&mut dpop_call(&state, &nonces)).unwrap();
    assert_eq!(sim.log, ["credentials", "send DPoP at-1"]);
    let proof = sim.sent[0].proof.as_ref().expect("a proof");
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
    let key = key();
    let (state, nonces) = (state(Some(&key)), DpopNonces::default());
    let mut sim = Sim::new(
        vec![credentials("at-1", true)],
        vec![nonce_challenge("n-1"), ok()],
    );
    let response = sim.run(&mut dpop_call(&state, &nonces)).unwrap();
    assert_eq!((response.status(), *response.body()), (StatusCode::OK, 2));
    assert_eq!(sim.log, ["credentials", "send DPoP at-1", "send DPoP at-1"]);
    let (first, second) = (
        sim.sent[0].proof.as_ref().unwrap(),
        sim.sent[1].proof.as_ref().unwrap(),
    );
    assert_eq!(second["nonce"], "n-1");
    assert_ne!(first["jti"], second["jti"], "a fresh proof per request");
    assert_eq!(second["ath"], first["ath"], "the same token");
    assert_eq!(
        nonces
            .get(&nethealth_oidc_core::Url::parse(URL).unwrap())
            .as_deref(),
        Some("n-1")
    );
    assert!(
        is_fresh(&state),
        "a nonce challenge is no verdict on the token"
    );
}

#[test]
fn a_second_nonce_challenge_is_the_typed_error() {
    let key = key();
    let (state, nonces) = (state(Some(&key)), DpopNonces::default());
    let mut sim = Sim::new(
        vec![credentials("at-1", true)],
        vec![nonce_challenge("n-1"), nonce_challenge("n-2")],
    );
    let error = sim.run(&mut dpop_call(&state, &nonces)).unwrap_err();
    assert_eq!(
        error,
        dpop::nonce_challenge_repeated(Endpoint::Resource).into()
    );
    assert_eq!(sim.sent.len(), 2);
}

#[test]
fn a_nonce_challenge_without_a_replayable_request_is_returned() {
    let key = key();
    let (state, nonces) = (state(Some(&key)), DpopNonces::default());
    let mut sim = Sim::new(
        vec![credentials("at-1", true)],
        vec![nonce_challenge("n-1")],
    );
    sim.replayable = false;
    let response = sim.run(&mut dpop_call(&state, &nonces)).unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(sim.log, ["credentials", "send DPoP at-1", "cannot replay"]);
}

/// The order of the two retries: a nonce challenge is answered first, with the same token (it says nothing about
/// the token); `invalid_token` then renews once; each token gets its own one nonce retry.
#[test]
fn dpop_nonce_and_invalid_token_retries_combine_in_order() {
    let key = key();
    let (state, nonces) = (state(Some(&key)), DpopNonces::default());
    let mut sim = Sim::new(
        vec![credentials("at-1", true), credentials("at-2", true)],
        vec![
            nonce_challenge("n-1"),
            invalid_token(),
            nonce_challenge("n-2"),
            ok(),
        ],
    );
    let response = sim.run(&mut dpop_call(&state, &nonces)).unwrap();
    assert_eq!((response.status(), *response.body()), (StatusCode::OK, 4));
    assert_eq!(
        sim.log,
        [
            "credentials",
            "send DPoP at-1",
            "send DPoP at-1",
            "credentials",
            "send DPoP at-2",
            "send DPoP at-2"
        ]
    );
    let nonces_sent: Vec<_> = sim
        .sent
        .iter()
        .map(|s| s.proof.as_ref().unwrap()["nonce"].clone())
        .collect();
    // The new token's first proof already carries the latest nonce the server gave.
    assert_eq!(
        nonces_sent,
        [Value::Null, json!("n-1"), json!("n-1"), json!("n-2")]
    );
    let attempts: Vec<_> = sim.sent.iter().map(|s| s.attempt).collect();
    assert_eq!(attempts, [1, 2, 3, 4]);
}

/// One `401` with both challenges: the nonce first (same token), then, if the token is really refused, a renewal.
#[test]
fn a_401_with_both_challenges_answers_the_nonce_first() {
    let key = key();
    let (state, nonces) = (state(Some(&key)), DpopNonces::default());
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
    let mut sim = Sim::new(
        vec![credentials("at-1", true), credentials("at-2", true)],
        vec![both, invalid_token(), ok()],
    );
    let response = sim.run(&mut dpop_call(&state, &nonces)).unwrap();
    assert_eq!(*response.body(), 3);
    assert_eq!(
        sim.log,
        [
            "credentials",
            "send DPoP at-1",
            "send DPoP at-1",
            "credentials",
            "send DPoP at-2"
        ]
    );
}

#[test]
fn a_dpop_bound_token_without_its_key_or_with_a_relative_url_is_a_typed_error() {
    let key = key();
    let bound_without_key = {
        let state = state(Some(&key));
        let mut set = state.token_set();
        set.dpop_key = None;
        SessionState::new(
            set,
            GrantKind::AuthorizationCode,
            SessionOptions::default(),
            UnixTime::from_secs(NOW),
        )
    };
    let nonces = DpopNonces::default();
    let mut sim = Sim::new(vec![credentials("at-1", true)], vec![]);
    let error = sim
        .run(&mut dpop_call(&bound_without_key, &nonces))
        .unwrap_err();
    assert_eq!(error, dpop::DpopError::MissingKey.into());

    let state = state(Some(&key));
    let mut sim = Sim::new(vec![credentials("at-1", true)], vec![]);
    let mut call = ApiCall::new(&state, &nonces, Method::GET, "/api/patients");
    let error = sim.run(&mut call).unwrap_err();
    assert!(
        matches!(error, Error::Dpop(dpop::DpopError::BadUrl(_))),
        "{error:?}"
    );
    assert!(sim.sent.is_empty());
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
    let mut call = dpop_call(&state, &nonces);
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
