//! [`ClientContext`]: one client of one provider, with every request builder and response check the flows need.
//!
//! The transports keep one `ClientContext` per client and do only the I/O around it, so that the async and the
//! blocking drivers run the same protocol code. It is immutable and `Send + Sync`: share it behind an `Arc`.
//!
//! A login runs like this (a driver's view):
//!
//! ```text
//!  authorization_request(scopes) ──build(rng, now)──▶ (URL for the browser, PendingLogin kept in the session)
//!                    browser comes back to the redirect URI
//!  exchange_request(pending, callback_url, now) ──▶ token request ──send──▶ token::parse_token_response
//!  complete_login(pending, token response, keys, now) ──▶ Grant
//!        └─ Err(e): KeyCache::handle_check_failure(e) may say to fetch the JWKS again, then complete_login once more
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use url::Url;

use crate::authorize::{
    AuthorizationRequest, AuthorizationUrl, IssPolicy, LoginTemplate, PendingLogin, Pkce,
    parse_callback,
};
use crate::client::{ClientConfig, TokenAuthMethod};
use crate::client_auth::{ClientAuth, RequestStamp};
use crate::discovery::ProviderMetadata;
use crate::dpop::{DpopError, DpopKey, DpopNonces};
use crate::end_session::{EndSessionParams, end_session_url};
use crate::error::Endpoint;
use crate::id_token::{Expectations, IdTokenClaims, IdTokenVerifier};
use crate::jwks::JwkSet;
use crate::outcome::Error;
use crate::par::{self, PushedAuthorization};
use crate::retry::RequestKind;
use crate::revocation::TokenRef;
use crate::scope::{GrantedScopes, Scopes};
use crate::secret::{AccessToken, IdToken, State};
use crate::time::UnixTime;
use crate::token::{self, TokenResponse};
use crate::{introspection, jwks, revocation, userinfo, wire};

/// How a client behaves; the defaults suit the Net Health Accounts site.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The redirect URI of logins; default: the client's first registered one.
    pub redirect_uri: Option<Url>,
    /// PKCE; default S256. Turn it off only for an IdentityServer3 client not registered for PKCE.
    pub pkce: Pkce,
    /// How long a login may stay pending. Default 30 minutes.
    pub login_lifetime: Duration,
    /// Clock skew allowed when checking ID tokens. Default 60 s.
    pub leeway: Duration,
    /// Push every login's parameters first (RFC 9126, PAR). Default off; a provider that sets
    /// `require_pushed_authorization_requests` gets pushed logins whatever this says.
    pub par: bool,
    /// Bind tokens to a per-session DPoP key (RFC 9449). Default off.
    pub dpop: bool,
    /// Keep the DPoP key with the token set when a store saves it, so that a resumed session can use its tokens.
    /// Default off: the key stays in memory only.
    pub store_dpop_key: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            redirect_uri: None,
            pkce: Pkce::S256,
            login_lifetime: PendingLogin::DEFAULT_LIFETIME,
            leeway: Duration::from_secs(60),
            par: false,
            dpop: false,
            store_dpop_key: false,
        }
    }
}

impl ClientOptions {
    /// Sets the redirect URI.
    pub fn with_redirect_uri(mut self, uri: Url) -> Self {
        self.redirect_uri = Some(uri);
        self
    }

    /// Sets PKCE.
    pub fn with_pkce(mut self, pkce: Pkce) -> Self {
        self.pkce = pkce;
        self
    }

    /// Sets how long a login may stay pending between the redirect and the callback (the pending login's
    /// `max_age`); an older [`PendingLogin`] is refused with
    /// [`CallbackError::Expired`](crate::authorize::CallbackError::Expired).
    pub fn with_login_lifetime(mut self, lifetime: Duration) -> Self {
        self.login_lifetime = lifetime;
        self
    }

    /// Sets the ID-token leeway.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Pushes logins (RFC 9126) even where the provider does not require it.
    pub fn with_par(mut self, par: bool) -> Self {
        self.par = par;
        self
    }

    /// Binds tokens to a DPoP key (RFC 9449): a new ES256 key per login (or client-credentials session), proofs on
    /// every token and resource request.
    pub fn with_dpop(mut self, dpop: bool) -> Self {
        self.dpop = dpop;
        self
    }

    /// Keeps the DPoP key with the stored token set (see [`ClientOptions::store_dpop_key`]).
    pub fn with_dpop_key_stored(mut self, stored: bool) -> Self {
        self.store_dpop_key = stored;
        self
    }
}

/// The outcome of a login or of a client-credentials request: the tokens, the checked ID-token claims and the
/// scopes actually granted.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Grant {
    /// The token response.
    pub response: TokenResponse,
    /// The verified ID-token claims (none for client credentials).
    pub id_claims: Option<IdTokenClaims>,
    /// What was asked for and what was granted.
    pub granted: GrantedScopes,
    /// When the response came.
    pub received_at: UnixTime,
    /// The DPoP key the tokens are bound to, when DPoP is on.
    pub dpop_key: Option<DpopKey>,
}

impl Grant {
    /// A grant from its parts.
    pub fn new(
        response: TokenResponse,
        id_claims: Option<IdTokenClaims>,
        granted: GrantedScopes,
        received_at: UnixTime,
    ) -> Self {
        Grant {
            response,
            id_claims,
            granted,
            received_at,
            dpop_key: None,
        }
    }

    /// The grant with the DPoP key its tokens are bound to.
    pub fn with_dpop_key(mut self, key: Option<DpopKey>) -> Self {
        self.dpop_key = key;
        self
    }

    /// Whether the user granted only some of the scopes asked for.
    pub fn is_partial(&self) -> bool {
        self.granted.is_partial()
    }

    /// The scopes asked for but not granted.
    pub fn refused(&self) -> Scopes {
        self.granted.refused()
    }
}

/// One client of one provider: metadata, registration, chosen auth method and ID-token verifier.
#[derive(Debug, Clone)]
pub struct ClientContext {
    metadata: ProviderMetadata,
    config: ClientConfig,
    token_endpoint: Url,
    auth: ClientAuth,
    verifier: IdTokenVerifier,
    options: ClientOptions,
    dpop_nonces: Arc<DpopNonces>,
    /// The plain login's request, encoded once, for the scopes it was last asked for (shared by clones).
    login_template: Arc<Mutex<Option<Arc<LoginTemplate>>>>,
}

impl ClientContext {
    /// A context for `config` at the provider described by `metadata`.
    pub fn new(
        metadata: ProviderMetadata,
        config: ClientConfig,
        options: ClientOptions,
    ) -> Result<Self, Error> {
        let token_endpoint = metadata
            .token_endpoint
            .clone()
            .ok_or(Error::Unsupported("token endpoint"))?;
        let auth = ClientAuth::resolve(&metadata, &config)?;
        let verifier = IdTokenVerifier::new(
            metadata.issuer.clone(),
            &config,
            &metadata.id_token_signing_alg_values_supported,
        )
        .with_leeway(options.leeway);
        Ok(ClientContext {
            metadata,
            config,
            token_endpoint,
            auth,
            verifier,
            options,
            dpop_nonces: Arc::default(),
            login_template: Arc::default(),
        })
    }

    /// The provider's metadata.
    pub fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    /// The client's registration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> &Url {
        &self.token_endpoint
    }

    /// The auth method used at the token, revocation and introspection endpoints.
    pub fn auth_method(&self) -> TokenAuthMethod {
        self.auth.method()
    }

    /// Fails before anything is sent when the client does not authenticate with `method` (SMART Backend Services
    /// requires `private_key_jwt`).
    pub fn require_auth_method(&self, method: TokenAuthMethod) -> Result<(), Error> {
        if self.auth_method() == method {
            Ok(())
        } else {
            Err(Error::TokenRequest(
                crate::token::TokenRequestError::MissingSigningKey { method },
            ))
        }
    }

    /// The resolved client authentication (method, and for the JWT methods the algorithm and `aud`), as
    /// [`client_auth::form_request`](crate::client_auth::form_request) takes it.
    pub fn client_auth(&self) -> &ClientAuth {
        &self.auth
    }

    /// The ID-token verifier.
    pub fn verifier(&self) -> &IdTokenVerifier {
        &self.verifier
    }

    /// The options.
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The latest DPoP nonce of every server this client talked to (shared by its sessions).
    pub fn dpop_nonces(&self) -> &DpopNonces {
        &self.dpop_nonces
    }

    /// A new DPoP key for a login or a client-credentials session, when DPoP is on; `None` when it is off. Fails
    /// when the provider lists DPoP algorithms without ES256.
    pub fn new_dpop_key(
        &self,
        rng: &mut (impl rand::CryptoRng + ?Sized),
    ) -> Result<Option<DpopKey>, Error> {
        if !self.options.dpop {
            return Ok(None);
        }
        let algs = &self.metadata.dpop_signing_alg_values_supported;
        if !algs.is_empty() && !algs.iter().any(|a| a == crate::dpop::ALGORITHM) {
            return Err(DpopError::UnsupportedAlgorithm {
                supported: algs
                    .iter()
                    .take(16)
                    .map(|a| crate::error::truncate(a, 16))
                    .collect(),
            }
            .into());
        }
        Ok(Some(
            DpopKey::generate(rng)?.stored(self.options.store_dpop_key),
        ))
    }

    /// Whether logins are pushed (RFC 9126): the provider requires it, or [`ClientOptions::par`] asks for it. Fails
    /// when PAR is needed and the provider has no PAR endpoint: a login without PAR is then never attempted.
    pub fn pushes_logins(&self) -> Result<bool, Error> {
        let required = self.metadata.require_pushed_authorization_requests;
        match (
            required || self.options.par,
            &self.metadata.pushed_authorization_request_endpoint,
        ) {
            (false, _) => Ok(false),
            (true, Some(_)) => Ok(true),
            (true, None) if required => {
                Err(crate::authorize::AuthorizeRequestError::ParRequiredWithoutEndpoint.into())
            }
            (true, None) => Err(crate::authorize::AuthorizeRequestError::ParNotOffered.into()),
        }
    }

    /// The pushed authorization request for a login whose full URL is `authorization_url` (from
    /// [`AuthorizationRequest::build`]), authenticated as the token requests are.
    pub fn pushed_authorization_request(
        &self,
        authorization_url: &AuthorizationUrl,
        stamp: &RequestStamp,
    ) -> Result<Request<Vec<u8>>, Error> {
        let endpoint = self
            .metadata
            .pushed_authorization_request_endpoint
            .as_ref()
            .ok_or(crate::authorize::AuthorizeRequestError::ParNotOffered)?;
        Ok(par::pushed_authorization_request(
            endpoint,
            &self.config,
            &self.auth,
            authorization_url,
            stamp,
        )?)
    }

    /// Parses the PAR answer and returns the URL to send the browser to (only `client_id` and `request_uri`) and the
    /// pending login, which now knows when its `request_uri` expires.
    pub fn complete_push(
        &self,
        pending: PendingLogin,
        response: &Response<Vec<u8>>,
        now: UnixTime,
    ) -> Result<(AuthorizationUrl, PendingLogin), Error> {
        let pushed: PushedAuthorization = par::parse_pushed_authorization_response(response)?;
        let url = pushed.browser_url(
            &self.metadata.authorization_endpoint,
            &self.config.client_id,
        );
        Ok((
            url,
            pending.with_request_uri_expiry(now.saturating_add(pushed.expires_in)),
        ))
    }

    /// The JWKS request, when the provider has a `jwks_uri`.
    pub fn jwks_request(&self) -> Result<Request<Vec<u8>>, Error> {
        let uri = self
            .metadata
            .jwks_uri
            .as_ref()
            .ok_or(Error::Unsupported("jwks_uri"))?;
        Ok(jwks::jwks_request(uri))
    }

    /// Starts an authorization request for `scopes` (`openid` is always added). Customise it (prompt,
    /// login_hint, max_age, ...) before calling [`build`](AuthorizationRequest::build).
    pub fn authorization_request(&self, scopes: &Scopes) -> Result<AuthorizationRequest, Error> {
        let redirect_uri = match (
            &self.options.redirect_uri,
            self.config.redirect_uris.first(),
        ) {
            (Some(uri), _) | (None, Some(uri)) => uri.clone(),
            (None, None) => {
                return Err(Error::Usage(crate::outcome::UsageError::NoRedirectUri));
            }
        };
        Ok(
            AuthorizationRequest::from_metadata(&self.metadata, &self.config, redirect_uri)?
                .scopes(scopes)
                .pkce(self.options.pkce),
        )
    }

    /// [`authorization_request`](Self::authorization_request) for `scopes`, prepared: the one kept from the last
    /// call when it asked for the same scopes (a web application's logins all do), else a new one, then kept.
    pub fn login_template(&self, scopes: &Scopes) -> Result<Arc<LoginTemplate>, Error> {
        let mut kept = self
            .login_template
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(template) = kept.as_ref() {
            let requested = template.requested_scopes();
            let openid_added = usize::from(!scopes.contains("openid"));
            if requested.len() == scopes.len() + openid_added
                && scopes.iter().all(|s| requested.contains(s))
            {
                return Ok(Arc::clone(template));
            }
        }
        let template = Arc::new(self.authorization_request(scopes)?.prepare());
        *kept = Some(Arc::clone(&template));
        Ok(template)
    }

    /// Checks the callback the browser came back with and builds the code exchange, authenticated with `stamp`
    /// (drawn for this request; its time is also the time the login's expiry is checked against).
    pub fn exchange_request(
        &self,
        pending: &PendingLogin,
        callback_url: &Url,
        stamp: &RequestStamp,
    ) -> Result<Request<Vec<u8>>, Error> {
        let now = stamp.now();
        if pending.issuer() != self.metadata.issuer || pending.client_id() != self.config.client_id
        {
            return Err(Error::Callback(
                crate::authorize::CallbackError::OtherClient {
                    issuer: pending.issuer().to_owned(),
                    client_id: pending.client_id().to_owned(),
                },
            ));
        }
        pending.check_not_expired(now, self.options.login_lifetime)?;
        let code = parse_callback(
            pending,
            callback_url,
            IssPolicy::from_metadata(&self.metadata),
        )?;
        Ok(pending.code_exchange_request(
            &self.token_endpoint,
            &self.config,
            &self.auth,
            &code,
            stamp,
        )?)
    }

    /// Checks the token response of a login: the ID token (signature, issuer, audience, nonce, `at_hash`,
    /// `auth_time`) and the granted scopes.
    pub fn complete_login(
        &self,
        pending: &PendingLogin,
        response: TokenResponse,
        keys: &JwkSet,
        now: UnixTime,
    ) -> Result<Grant, Error> {
        let id_token = response.id_token.as_ref().ok_or_else(|| {
            Error::Response(wire::malformed(
                Endpoint::Token,
                b"",
                "the token response of an OpenID login has no id_token",
            ))
        })?;
        let mut expect = Expectations::new()
            .with_nonce(pending.nonce())
            .with_access_token(&response.access_token);
        if let Some(max_age) = pending.max_age() {
            expect = expect.with_max_age(max_age);
        }
        let claims = self.verifier.verify(id_token, keys, &expect, now)?;
        let granted = token::granted_scopes(pending.requested_scopes(), &response);
        Ok(Grant {
            response,
            id_claims: Some(claims),
            granted,
            received_at: now,
            dpop_key: None,
        })
    }

    /// Checks the ID token of a refresh response against the original login's claims (Core §12.2).
    pub fn verify_refreshed(
        &self,
        id_token: &IdToken,
        original: &IdTokenClaims,
        access_token: Option<&AccessToken>,
        keys: &JwkSet,
        now: UnixTime,
    ) -> Result<IdTokenClaims, Error> {
        Ok(self
            .verifier
            .verify_refreshed(id_token, keys, original, access_token, now)?)
    }

    /// The client-credentials request for `scope`.
    pub fn client_credentials_request(
        &self,
        scope: Option<&Scopes>,
        stamp: &RequestStamp,
    ) -> Result<Request<Vec<u8>>, Error> {
        Ok(token::client_credentials_request(
            &self.token_endpoint,
            &self.config,
            &self.auth,
            scope,
            stamp,
        )?)
    }

    /// The refresh request for `refresh_token`.
    pub fn refresh_request(
        &self,
        refresh_token: &crate::secret::RefreshToken,
        scope: Option<&Scopes>,
        stamp: &RequestStamp,
    ) -> Result<Request<Vec<u8>>, Error> {
        Ok(token::refresh_request(
            &self.token_endpoint,
            &self.config,
            &self.auth,
            refresh_token,
            scope,
            stamp,
        )?)
    }

    /// The grant of a client-credentials response.
    pub fn complete_client_credentials(
        &self,
        requested: &Scopes,
        response: TokenResponse,
        now: UnixTime,
    ) -> Grant {
        let granted = token::granted_scopes(requested, &response);
        Grant {
            response,
            id_claims: None,
            granted,
            received_at: now,
            dpop_key: None,
        }
    }

    /// The userinfo request.
    pub fn userinfo_request(&self, access_token: &AccessToken) -> Result<Request<Vec<u8>>, Error> {
        let endpoint = self
            .metadata
            .userinfo_endpoint
            .as_ref()
            .ok_or(Error::Unsupported("userinfo endpoint"))?;
        Ok(userinfo::userinfo_request(endpoint, access_token)?)
    }

    /// Parses the userinfo answer for the user `sub`.
    pub fn parse_userinfo(
        &self,
        response: &Response<Vec<u8>>,
        sub: &str,
    ) -> Result<userinfo::UserInfo, Error> {
        Ok(userinfo::parse_userinfo(response, sub)?)
    }

    /// The revocation request for `token`.
    pub fn revocation_request(
        &self,
        token: TokenRef<'_>,
        stamp: &RequestStamp,
    ) -> Result<Request<Vec<u8>>, Error> {
        let endpoint = self
            .metadata
            .revocation_endpoint
            .as_ref()
            .ok_or(Error::Unsupported("revocation endpoint"))?;
        Ok(revocation::revocation_request(
            endpoint,
            &self.config,
            &self.auth,
            token,
            stamp,
        )?)
    }

    /// How a revocation or introspection request of this client may be retried. RFC 7009 and RFC 7662 make both
    /// idempotent, so a lost answer is normally asked for again ([`RequestKind::Idempotent`]). A client assertion
    /// (`private_key_jwt`, `client_secret_jwt`) is single-use, though: its `jti` is refused the second time, so such
    /// a request is resent only when it never reached the server ([`RequestKind::OneShot`]); a new call draws a new
    /// assertion.
    pub fn authenticated_retry(&self) -> RequestKind {
        match self.auth.method() {
            TokenAuthMethod::PrivateKeyJwt | TokenAuthMethod::ClientSecretJwt => {
                RequestKind::OneShot
            }
            _ => RequestKind::Idempotent,
        }
    }

    /// The introspection request (RFC 7662) for `token`, authenticated as at the token endpoint.
    pub fn introspection_request(
        &self,
        token: TokenRef<'_>,
        stamp: &RequestStamp,
    ) -> Result<Request<Vec<u8>>, Error> {
        let endpoint = self
            .metadata
            .introspection_endpoint
            .as_ref()
            .ok_or(Error::Unsupported("introspection endpoint"))?;
        Ok(introspection::introspection_request(
            endpoint,
            &self.config,
            &self.auth,
            token,
            stamp,
        )?)
    }

    /// Parses the introspection answer.
    pub fn parse_introspection(
        &self,
        response: &Response<Vec<u8>>,
    ) -> Result<introspection::Introspection, Error> {
        Ok(introspection::parse_introspection(response)?)
    }

    /// The RP-initiated logout URL to send the browser to.
    pub fn logout_url(
        &self,
        id_token: Option<&IdToken>,
        post_logout_redirect_uri: Option<&Url>,
        state: Option<&State>,
    ) -> Result<Url, Error> {
        let endpoint = self
            .metadata
            .end_session_endpoint
            .as_ref()
            .ok_or(Error::Unsupported("end-session endpoint"))?;
        let mut params = EndSessionParams::new().with_client_id(&self.config.client_id);
        if let Some(t) = id_token {
            params = params.with_id_token_hint(t);
        }
        if let Some(u) = post_logout_redirect_uri {
            params = params.with_post_logout_redirect_uri(u);
        }
        if let Some(s) = state {
            params = params.with_state(s);
        }
        Ok(end_session_url(endpoint, &params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;

    #[test]
    fn debug_never_shows_the_client_secret() {
        let metadata: ProviderMetadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://accounts.example.com",
            "authorization_endpoint": "https://accounts.example.com/connect/authorize",
            "token_endpoint": "https://accounts.example.com/connect/token",
            "id_token_signing_alg_values_supported": ["RS256", "HS256"],
        }))
        .unwrap();
        // HS256 is allowed, so the verifier holds the secret as its HMAC key: that must not show either.
        let config = ClientConfig::new("app", Some(ClientSecret::new("TOP-SECRET-VALUE")));
        let context = ClientContext::new(metadata, config, ClientOptions::default()).unwrap();
        let debug = format!("{context:?}");
        assert!(debug.contains("app"), "{debug}");
        assert!(!debug.contains("TOP-SECRET-VALUE"), "{debug}");
        assert!(
            !debug.contains("VE9QLVNFQ1JFVC1WQUxVRQ"),
            "nor its base64: {debug}"
        );
    }
}
