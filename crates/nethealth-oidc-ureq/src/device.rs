//! The device flow (RFC 8628) on [`Client`]: ask for a user code, then poll until the user answers elsewhere.

use nethealth_oidc_core::device::{self, DeviceFlow, DevicePoll, DeviceStep};
use nethealth_oidc_core::retry::RequestKind;
use nethealth_oidc_core::{Endpoint, Error, Scopes};

use crate::Client;

impl Client {
    /// Starts a device login for `scopes` (`openid` is added): show the user code and the verification URI of
    /// [`DeviceFlow::authorization`], then call [`poll_device_login`](Self::poll_device_login) at
    /// [`DeviceFlow::poll_at`].
    #[tracing::instrument(name = "nethealth_oidc.device", skip_all, fields(issuer = %self.provider().issuer(), op = "begin"))]
    pub fn begin_device_login(&self, scopes: &Scopes) -> Result<DeviceFlow, Error> {
        let request = self
            .context()
            .device_authorization_request(scopes, &self.stamp())?;
        let response =
            self.provider()
                .http()
                .send(Endpoint::Token, RequestKind::OneShot, request)?;
        let authorization = device::parse_device_authorization(&response)?;
        let now = self.provider().clock().now();
        Ok(DeviceFlow::new(
            authorization,
            self.context().device_scopes(scopes),
            now,
        ))
    }

    /// Polls the token endpoint once. It does not sleep: the caller waits until [`DeviceFlow::poll_at`] (and can
    /// stop waiting when the user presses Ctrl-C).
    #[tracing::instrument(name = "nethealth_oidc.device", skip_all, fields(issuer = %self.provider().issuer(), op = "poll", grant_type = "urn:ietf:params:oauth:grant-type:device_code"))]
    pub fn poll_device_login(&self, flow: &mut DeviceFlow) -> Result<DeviceStep, Error> {
        let now = self.provider().clock().now();
        if flow.is_expired(now) {
            return Ok(DeviceStep::Expired);
        }
        let request = self.context().device_token_request(flow, &self.stamp())?;
        let response =
            self.provider()
                .http()
                .send(Endpoint::Token, RequestKind::OneShot, request)?;
        Ok(match flow.handle_poll(now, &response)? {
            DevicePoll::Granted(tokens) => {
                let grant = self.provider().with_keys(|keys| {
                    self.context()
                        .complete_device_login(flow, tokens.clone(), keys, now)
                })?;
                DeviceStep::Granted(Box::new(grant))
            }
            DevicePoll::Denied(_) => DeviceStep::Denied,
            DevicePoll::Expired => DeviceStep::Expired,
            _ => DeviceStep::Waiting,
        })
    }
}
