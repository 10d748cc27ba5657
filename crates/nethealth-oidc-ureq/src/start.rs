//! How a [`Client`] starts a [`Session`]: for a finished login, from what an earlier run stored, or from the client's
//! own credentials.

use std::sync::Arc;

use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::lifecycle::{GrantKind, TokenSet};
use nethealth_oidc_core::renewal::SessionState;
use nethealth_oidc_core::store::{SessionOptions, TokenStore};
use nethealth_oidc_core::{Error, Scopes, TokenAuthMethod};

use crate::{Client, Session};

impl Client {
    /// A session for a finished login; the token set is stored first.
    pub fn session(&self, grant: Grant, options: SessionOptions) -> Result<Session, Error> {
        let set = TokenSet::from_grant(grant, options.lifecycle.refresh_token_lifetime);
        start(self, set, GrantKind::AuthorizationCode, options, true)
    }

    /// The session kept in `options.store` by an earlier run, if any.
    pub fn resume(&self, options: SessionOptions) -> Result<Option<Session>, Error> {
        let Some(set) = crate::traced::Traced(Arc::clone(&options.store)).load()? else {
            return Ok(None);
        };
        set.check_issuer(self.provider().issuer())?;
        let kind = GrantKind::AuthorizationCode;
        start(self, set, kind, options, false).map(Some)
    }

    /// SMART Backend Services in one call: a client-credentials session (for `system/*.rs`-style scopes)
    /// authenticated with `private_key_jwt`, which asks for a new token ahead of expiry (there is no refresh token).
    /// Fails before sending anything when the client does not authenticate with `private_key_jwt`.
    pub fn backend_services_session(
        &self,
        scopes: &Scopes,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        self.context()
            .require_auth_method(TokenAuthMethod::PrivateKeyJwt)?;
        self.client_credentials_session(scopes, options)
    }

    /// A session of client-credentials tokens for `scopes`, requested again ahead of expiry.
    pub fn client_credentials_session(
        &self,
        scopes: &Scopes,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        let set = TokenSet::from_grant(self.client_credentials(scopes)?, None);
        let kind = GrantKind::ClientCredentials {
            scope: scopes.clone(),
        };
        start(self, set, kind, options, true)
    }
}

/// Stores `set` first when it is new (then runs the hooks), and makes its session.
pub(crate) fn start(
    client: &Client,
    set: TokenSet,
    kind: GrantKind,
    options: SessionOptions,
    save: bool,
) -> Result<Session, Error> {
    let store: Arc<dyn TokenStore> = Arc::new(crate::traced::Traced(Arc::clone(&options.store)));
    if save {
        store.save(&set)?;
    }
    let now = client.provider().clock().now();
    let state = SessionState::new(set.clone(), kind, options, now);
    if save {
        state.fire_hooks(&set);
    }
    Ok(Session::new(client.clone(), state, store))
}
