//! How a [`Client`] starts a [`Session`]: for a finished login, from what an earlier run stored, or from the client's
//! own credentials.

use nethealth_oidc_core::context::Grant;
use nethealth_oidc_core::lifecycle::{GrantKind, TokenSet};
use nethealth_oidc_core::renewal::SessionState;
use nethealth_oidc_core::store::SessionOptions;
use nethealth_oidc_core::{Error, Scopes, TokenAuthMethod};

use crate::{Client, Session};

impl Client {
    /// A session for a finished login; the token set is stored first.
    pub async fn session(&self, grant: Grant, options: SessionOptions) -> Result<Session, Error> {
        let set = TokenSet::from_grant(grant, options.lifecycle.refresh_token_lifetime);
        start(self, set, GrantKind::AuthorizationCode, options, true).await
    }

    /// The session kept in `options.store` by an earlier run, if any.
    pub async fn resume(&self, options: SessionOptions) -> Result<Option<Session>, Error> {
        let Some(set) = crate::store::async_store(&options).load().await? else {
            return Ok(None);
        };
        set.check_issuer(self.provider().issuer())?;
        let kind = GrantKind::AuthorizationCode;
        start(self, set, kind, options, false).await.map(Some)
    }

    /// SMART Backend Services in one call: a client-credentials session (for `system/*.rs`-style scopes)
    /// authenticated with `private_key_jwt`, which asks for a new token ahead of expiry (there is no refresh token).
    /// Fails before sending anything when the client does not authenticate with `private_key_jwt`.
    pub async fn backend_services_session(
        &self,
        scopes: &Scopes,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        self.context()
            .require_auth_method(TokenAuthMethod::PrivateKeyJwt)?;
        self.client_credentials_session(scopes, options).await
    }

    /// A session of client-credentials tokens for `scopes`, requested again ahead of expiry.
    pub async fn client_credentials_session(
        &self,
        scopes: &Scopes,
        options: SessionOptions,
    ) -> Result<Session, Error> {
        let set = TokenSet::from_grant(self.client_credentials(scopes).await?, None);
        let kind = GrantKind::ClientCredentials {
            scope: scopes.clone(),
        };
        start(self, set, kind, options, true).await
    }
}

/// Stores `set` first when it is new (then runs the hooks), and makes its session.
pub(crate) async fn start(
    client: &Client,
    set: TokenSet,
    kind: GrantKind,
    options: SessionOptions,
    save: bool,
) -> Result<Session, Error> {
    let store = crate::store::async_store(&options);
    if save {
        store.save(&set).await?;
    }
    let now = client.provider().clock().now();
    let state = SessionState::new(set.clone(), kind, options, now);
    if save {
        state.fire_hooks(&set);
    }
    Ok(Session::new(client.clone(), state, store))
}
