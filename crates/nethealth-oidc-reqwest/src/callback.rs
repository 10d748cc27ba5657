//! Finishing a login from what a handler behind a proxy sees: the callback's query, or its request URI.

use http::Uri;
use nethealth_oidc_core::Error;
use nethealth_oidc_core::authorize::PendingLogin;
use nethealth_oidc_core::context::Grant;

use crate::Client;

impl Client {
    /// [`finish_login`](Self::finish_login) from the callback's query string (`code=...&state=...`, with or without
    /// the `?`), for a handler behind a TLS-terminating proxy that does not know its public URL. The scheme, host
    /// and port come from the pending login's redirect URI; the checks (`state`, `iss`, redirect URI) are the same.
    pub async fn finish_login_query(
        &self,
        pending: &PendingLogin,
        query: &str,
    ) -> Result<Grant, Error> {
        self.finish_login(pending, &pending.callback_url_from_query(query))
            .await
    }

    /// [`finish_login`](Self::finish_login) from the callback request's URI as the server saw it
    /// (`/callback?code=...`): its path must be the redirect URI's path; scheme, host and port come from the
    /// pending login's redirect URI.
    pub async fn finish_login_uri(
        &self,
        pending: &PendingLogin,
        uri: &Uri,
    ) -> Result<Grant, Error> {
        self.finish_login(pending, &pending.callback_url_from_uri(uri))
            .await
    }
}
