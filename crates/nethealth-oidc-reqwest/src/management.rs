//! Managing a registration (RFC 7592: read, update, delete) on [`Provider`], and token introspection (RFC 7662) on
//! [`Client`]. The requests and parsers are the core's (`registration`, [`ClientContext`]); this is the I/O.
//!
//! [`ClientContext`]: nethealth_oidc_core::context::ClientContext

use nethealth_oidc_core::Error;
use nethealth_oidc_core::exchange::register;
use nethealth_oidc_core::introspection::Introspection;
use nethealth_oidc_core::registration::{ClientMetadata, RegisteredClient};
use nethealth_oidc_core::revocation::TokenRef;

use crate::{Client, Provider};

impl Provider {
    /// Reads a client's registration back (RFC 7592 §2.1), with the `registration_client_uri` and
    /// `registration_access_token` of `client` (what [`register`](Self::register) returned).
    ///
    /// A client without them is [`RegistrationError::NotManageable`]; a token the provider does not accept (wrong,
    /// or the client was deleted) is the provider's `invalid_token` (see [`Error::oauth_error`]).
    ///
    /// [`RegistrationError::NotManageable`]: nethealth_oidc_core::registration::RegistrationError::NotManageable
    #[tracing::instrument(name = "nethealth_oidc.registration", skip_all, fields(issuer = %self.issuer(), op = "read"))]
    pub async fn read_registration(
        &self,
        client: &RegisteredClient,
    ) -> Result<RegisteredClient, Error> {
        self.drive(register::read(client)).await
    }

    /// Replaces a client's metadata with `metadata` (RFC 7592 §2.2: the full new metadata, not a patch).
    ///
    /// Keep the answer in place of `client`: a provider may rotate the registration access token on update
    /// (oidc-provider does), and then the old one no longer works. Sent once, never retried, for that reason.
    #[tracing::instrument(name = "nethealth_oidc.registration", skip_all, fields(issuer = %self.issuer(), op = "update"))]
    pub async fn update_registration(
        &self,
        client: &RegisteredClient,
        metadata: &ClientMetadata,
    ) -> Result<RegisteredClient, Error> {
        self.drive(register::update(client, metadata)).await
    }

    /// Deletes a client's registration (RFC 7592 §2.3). Afterwards the provider refuses the client: a token
    /// request with it fails with `invalid_client`.
    #[tracing::instrument(name = "nethealth_oidc.registration", skip_all, fields(issuer = %self.issuer(), op = "delete"))]
    pub async fn delete_registration(&self, client: &RegisteredClient) -> Result<(), Error> {
        self.drive(register::delete(client)).await
    }
}

impl Client {
    /// Asks the provider whether `token` is active (RFC 7662), authenticated as this client authenticates at the
    /// token endpoint. An expired, revoked or unknown token is `Ok` with `active == false`, not an error.
    #[tracing::instrument(name = "nethealth_oidc.introspection", skip_all, fields(issuer = %self.provider().issuer(), token_type = token.hint()))]
    pub async fn introspect(&self, token: TokenRef<'_>) -> Result<Introspection, Error> {
        self.provider()
            .drive(self.context().introspect(token))
            .await
    }
}
