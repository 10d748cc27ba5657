//! Pushed authorization requests (RFC 9126) at `/connect/par` and DPoP (RFC 9449) at the token endpoint and the
//! sample API.
//!
//! - PAR: the client authenticates as at the token endpoint; the parameters are kept under a one-time
//!   `request_uri` for [`TestKit::set_par_lifetime`](crate::TestKit::set_par_lifetime) (default 60 s).
//!   `/connect/authorize` with `request_uri` uses them; an expired one sends the browser back with
//!   `error=invalid_request_uri`. With [`TestKit::set_require_par`](crate::TestKit::set_require_par) a plain
//!   authorization request is refused.
//! - DPoP: a proof is verified in full: `typ` `dpop+jwt`, an ES256 signature by the `jwk` in its header (no private
//!   part), `htm`, `htu` (the site's own URL, or the one [`TestKit::set_dpop_public_origin`](crate::TestKit::set_dpop_public_origin)
//!   names, as behind a proxy), `iat` within 60 s of the site's clock, a `jti` never seen before, `ath` for API calls,
//!   and the server nonce when [`DpopNonce`] asks for one. A token issued with a proof is `token_type: DPoP` with
//!   `cnf.jkt`; the API then takes it only as `Authorization: DPoP` with a proof by that key.

// Handlers return their HTTP answer as the `Err` of early checks; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use http::header::{self, HeaderValue};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::model::Endpoint;
use crate::provider::{authenticated_post, grant_error};
use crate::server::{Params, Reply, Req, json, oauth_error};
use crate::state::{Config, Shared, State, random_handle};

/// How long a proof's `iat` may be from the site's clock, in seconds.
const IAT_WINDOW: u64 = 60;

/// When the site asks DPoP proofs for a server nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopNonce {
    /// No nonce needed (the default).
    #[default]
    Off,
    /// Every proof must carry the site's current nonce; a proof without it gets `use_dpop_nonce` and the nonce.
    Required,
    /// Every proof is refused with `use_dpop_nonce` and a fresh nonce: a client must give up after one retry.
    AlwaysNew,
}

/// PAR and DPoP state.
#[derive(Debug)]
pub(crate) struct ParDpop {
    pub(crate) require_par: bool,
    pub(crate) par_lifetime: u64,
    /// `request_uri` -> (client id, the pushed form, expiry).
    pub(crate) pushed: HashMap<String, (String, Vec<u8>, u64)>,
    pub(crate) nonce_mode: DpopNonce,
    pub(crate) nonce: String,
    pub(crate) seen_jti: HashSet<String>,
    /// The origin proofs must name instead of the site's own (a proxy in front of the site).
    pub(crate) public_origin: Option<String>,
    /// The thumbprint the token being issued is bound to (set for the length of one token request).
    pub(crate) binding: Option<String>,
}

impl Default for ParDpop {
    fn default() -> Self {
        ParDpop {
            require_par: false,
            par_lifetime: 60,
            pushed: HashMap::new(),
            nonce_mode: DpopNonce::Off,
            nonce: random_handle(),
            seen_jti: HashSet::new(),
            public_origin: None,
            binding: None,
        }
    }
}

/// `POST /connect/par`.
pub(crate) fn par(shared: &Shared, req: &Req) -> Reply {
    let (form, mut state, client) = match authenticated_post(shared, req) {
        Ok(post) => post,
        Err(reply) => return reply,
    };
    if form.single("request_uri").ok().flatten().is_some() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "request_uri must not be pushed",
        );
    }
    let handle = format!("urn:ietf:params:oauth:request_uri:{}", random_handle());
    let lifetime = state.par_dpop.par_lifetime;
    let expires = state.now().saturating_add(lifetime);
    state.par_dpop.pushed.insert(
        handle.clone(),
        (client.client_id, req.body.to_vec(), expires),
    );
    json(
        StatusCode::CREATED,
        &json!({ "request_uri": handle, "expires_in": lifetime }),
    )
}

/// What `/connect/authorize` works with: the pushed parameters for a `request_uri` (used once), the query as it is
/// otherwise. `Err` carries an error page message, or, for an expired request, the pushed parameters (to send the
/// browser back with `invalid_request_uri`).
pub(crate) fn authorize_params(state: &mut State, query: Params) -> Result<Params, PushError> {
    let Some(uri) = query
        .single("request_uri")
        .ok()
        .flatten()
        .map(str::to_owned)
    else {
        if state.par_dpop.require_par {
            return Err(PushError::Page(
                "This site requires pushed authorization requests (request_uri)",
            ));
        }
        return Ok(query);
    };
    let Some((client_id, body, expires)) = state.par_dpop.pushed.remove(&uri) else {
        return Err(PushError::Page(
            "The request_uri is unknown or was already used",
        ));
    };
    if query.single("client_id").ok().flatten() != Some(client_id.as_str()) {
        return Err(PushError::Page("The request_uri belongs to another client"));
    }
    let pushed = Params::parse(&with_client_id(&body, &client_id));
    if state.now() >= expires {
        return Err(PushError::Expired(pushed));
    }
    Ok(pushed)
}

/// The pushed form, with `client_id` (a client authenticated by the header pushes none).
fn with_client_id(body: &[u8], client_id: &str) -> Vec<u8> {
    let form = Params::parse(body);
    if form.single("client_id").ok().flatten().is_some() {
        return body.to_vec();
    }
    let mut out = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .finish()
        .into_bytes();
    if !body.is_empty() {
        out.push(b'&');
        out.extend_from_slice(body);
    }
    out
}

/// Why the authorization request's `request_uri` was refused.
pub(crate) enum PushError {
    /// Shown on a page.
    Page(&'static str),
    /// Expired: the pushed parameters, to redirect with `invalid_request_uri`.
    Expired(Params),
}

/// Checks the DPoP proof of a token request, if any: `Ok(Some(jkt))` binds the tokens to the key, `Ok(None)` is a
/// request without a proof.
pub(crate) fn check_token_proof(
    cfg: &Config,
    state: &mut State,
    req: &Req,
) -> Result<Option<String>, Reply> {
    let Some(proof) = req.headers.get("dpop") else {
        return Ok(None);
    };
    let url = expected_url(cfg, state, Endpoint::Token);
    check_proof(state, proof, "POST", &url, None)
        .map(Some)
        .map_err(|(code, description, nonce)| {
            with_nonce(grant_error(code, &description), nonce.as_deref())
        })
}

/// Checks the credentials of an API call with a DPoP-bound token (`cnf.jkt` in `claims`): the `DPoP` scheme and a
/// proof by the bound key for this request. `Ok(())` for a bearer token used as one.
pub(crate) fn check_resource_proof(
    cfg: &Config,
    state: &mut State,
    req: &Req,
    token: &str,
    scheme_is_dpop: bool,
    claims: &Map<String, Value>,
) -> Result<(), Reply> {
    let bound = claims
        .get("cnf")
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str);
    let refuse = |code: &str, description: &str, nonce: Option<&str>| {
        let mut challenge = format!(
            "DPoP algs=\"ES256\", error=\"{code}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        );
        if code == "invalid_token" {
            challenge.push_str(", realm=\"Net Health\"");
        }
        let mut reply = json(
            StatusCode::UNAUTHORIZED,
            &json!({ "Message": "Authorization has been denied for this request." }),
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            reply.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        with_nonce(reply, nonce)
    };
    let Some(bound) = bound else {
        return if scheme_is_dpop {
            Err(refuse(
                "invalid_token",
                "The access token is not DPoP-bound",
                None,
            ))
        } else {
            Ok(())
        };
    };
    if !scheme_is_dpop {
        return Err(refuse(
            "invalid_token",
            "The access token is DPoP-bound: present it with the DPoP scheme",
            None,
        ));
    }
    let Some(proof) = req.headers.get("dpop") else {
        return Err(refuse(
            "invalid_dpop_proof",
            "The DPoP proof is missing",
            None,
        ));
    };
    let url = expected_url(cfg, state, Endpoint::Api);
    let jkt = check_proof(state, proof, req.method.as_str(), &url, Some(token))
        .map_err(|(code, description, nonce)| refuse(code, &description, nonce.as_deref()))?;
    if jkt != bound {
        return Err(refuse(
            "invalid_dpop_proof",
            "The DPoP proof is signed by another key than the token is bound to",
            None,
        ));
    }
    Ok(())
}

fn expected_url(cfg: &Config, state: &State, endpoint: Endpoint) -> String {
    let own = cfg.url(endpoint);
    match &state.par_dpop.public_origin {
        Some(public) => own.replacen(&cfg.origin, public, 1),
        None => own,
    }
}

fn with_nonce(mut reply: Reply, nonce: Option<&str>) -> Reply {
    if let Some(v) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        reply.headers_mut().insert("dpop-nonce", v);
    }
    reply
}

type ProofError = (&'static str, String, Option<String>);

/// Verifies a proof for `htm` and `htu`; returns the key's thumbprint.
fn check_proof(
    state: &mut State,
    proof: &HeaderValue,
    htm: &str,
    htu: &str,
    access_token: Option<&str>,
) -> Result<String, ProofError> {
    let bad = |d: &str| ("invalid_dpop_proof", d.to_owned(), None);
    let proof = proof
        .to_str()
        .map_err(|_| bad("The DPoP proof is not text"))?;
    let header =
        jsonwebtoken::decode_header(proof).map_err(|_| bad("The DPoP proof is not a JWT"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(bad("The DPoP proof's typ is not dpop+jwt"));
    }
    if header.alg != Algorithm::ES256 {
        return Err(bad("The DPoP proof is not signed with ES256"));
    }
    let jwk = header.jwk.ok_or_else(|| bad("The DPoP proof has no jwk"))?;
    let jwk_json = serde_json::to_value(&jwk).unwrap_or(Value::Null);
    if jwk_json.get("d").is_some() {
        return Err(bad("The DPoP proof's jwk holds a private key"));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad("The DPoP proof's jwk is not a key"))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(proof, &key, &validation)
        .map_err(|_| bad("The DPoP proof's signature does not verify with its jwk"))?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("htm") != Some(htm) {
        return Err(bad("The DPoP proof's htm is not this request's method"));
    }
    if text("htu") != Some(htu) {
        return Err(bad(&format!("The DPoP proof's htu is not {htu}")));
    }
    let now = state.now();
    let iat = claims
        .get("iat")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad("The DPoP proof has no iat"))?;
    if iat.abs_diff(now) > IAT_WINDOW {
        return Err(bad(
            "The DPoP proof's iat is too far from the server's clock",
        ));
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad("The DPoP proof has no jti"))?;
    if let Some(token) = access_token {
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if text("ath") != Some(ath.as_str()) {
            return Err(bad("The DPoP proof's ath is not the access token's hash"));
        }
    }
    match state.par_dpop.nonce_mode {
        DpopNonce::Off => {}
        DpopNonce::Required if text("nonce") == Some(state.par_dpop.nonce.as_str()) => {}
        DpopNonce::Required => {
            return Err((
                "use_dpop_nonce",
                "The DPoP proof must carry the server's nonce".into(),
                Some(state.par_dpop.nonce.clone()),
            ));
        }
        DpopNonce::AlwaysNew => {
            state.par_dpop.nonce = random_handle();
            return Err((
                "use_dpop_nonce",
                "The DPoP proof must carry a fresh server nonce".into(),
                Some(state.par_dpop.nonce.clone()),
            ));
        }
    }
    if !state.par_dpop.seen_jti.insert(jti.to_owned()) {
        return Err(bad("The DPoP proof's jti was used before (replay)"));
    }
    jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .map_err(|_| bad("The DPoP proof's jwk has no thumbprint"))
}
