//! Managing a registration (RFC 7592: read, update, delete) on [`Provider`], and token introspection (RFC 7662) on
//! [`Client`]. The requests and parsers are the core's (`registration`, [`ClientContext`]); this is the I/O.
//!
//! [`ClientContext`]: nethealth_oidc_core::context::ClientContext

use nethealth_oidc_core::introspection::Introspection;
use nethealth_oidc_core::registration::{self, ClientMetadata, RegisteredClient};
use nethealth_oidc_core::retry::RequestKind;
use nethealth_oidc_core::revocation::TokenRef;
use nethealth_oidc_core::{Endpoint, Error};

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
        let request = registration::read_request(client)?;
        let response = self
            .http()
            .send(Endpoint::Registration, RequestKind::Idempotent, request)
            .await?;
        Ok(registration::parse_management_response(client, &response)?)
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
        let request = registration::update_request(client, metadata)?;
        let response = self
            .http()
            .send(Endpoint::Registration, RequestKind::OneShot, request)
            .await?;
        let mut updated = registration::parse_management_response(client, &response)?;
        updated.fill_from_request(metadata);
        Ok(updated)
    }

    /// Deletes a client's registration (RFC 7592 §2.3). Afterwards the provider refuses the client: a token
    /// request with it fails with `invalid_client`.
    #[tracing::instrument(name = "nethealth_oidc.registration", skip_all, fields(issuer = %self.issuer(), op = "delete"))]
    pub async fn delete_registration(&self, client: &RegisteredClient) -> Result<(), Error> {
        let request = registration::delete_request(client)?;
        let response = self
            .http()
            .send(Endpoint::Registration, RequestKind::OneShot, request)
            .await?;
        Ok(registration::parse_delete_response(&response)?)
    }
}

impl Client {
    /// Asks the provider whether `token` is active (RFC 7662), authenticated as this client authenticates at the
    /// token endpoint. An expired, revoked or unknown token is `Ok` with `active == false`, not an error.
    #[tracing::instrument(name = "nethealth_oidc.introspection", skip_all, fields(issuer = %self.provider().issuer(), token_type = token.hint()))]
    pub async fn introspect(&self, token: TokenRef<'_>) -> Result<Introspection, Error> {
        let request = self.context().introspection_request(token, &self.stamp())?;
        let response = self
            .provider()
            .http()
            .send(
                Endpoint::Introspection,
                self.context().authenticated_retry(),
                request,
            )
            .await?;
        self.context().parse_introspection(&response)
    }
}
