//! The device flow (RFC 8628) on the async [`Client`]: ask for a user code, then poll until the user answers elsewhere.

use nethealth_oidc_core::device::{DeviceFlow, DeviceStep};
use nethealth_oidc_core::{Error, Scopes};

use crate::Client;

impl Client {
    /// Starts a device login for `scopes` (`openid` is added): show the user code and the verification URI of
    /// [`DeviceFlow::authorization`], then call [`poll_device_login`](Self::poll_device_login) at
    /// [`DeviceFlow::poll_at`].
    #[tracing::instrument(name = "nethealth_oidc.device", skip_all, fields(issuer = %self.provider().issuer(), op = "begin"))]
    pub async fn begin_device_login(&self, scopes: &Scopes) -> Result<DeviceFlow, Error> {
        let flow = self.context().begin_device_login(scopes);
        self.provider().drive(flow).await
    }

    /// Polls the token endpoint once. It does not sleep: the caller waits until [`DeviceFlow::poll_at`] (with its
    /// runtime's timer, so that the wait can be cancelled).
    #[tracing::instrument(name = "nethealth_oidc.device", skip_all, fields(issuer = %self.provider().issuer(), op = "poll", grant_type = "urn:ietf:params:oauth:grant-type:device_code"))]
    pub async fn poll_device_login(&self, flow: &mut DeviceFlow) -> Result<DeviceStep, Error> {
        let flow = self.context().poll_device_login(self.keys(), flow);
        self.provider().drive(flow).await
    }
}
