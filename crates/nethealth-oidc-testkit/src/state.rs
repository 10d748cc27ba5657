//! The site's state: configuration fixed at start, and everything tests and requests change, under one lock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest, Sha256};

use crate::keys::{KeyRing, SigningKey};
use crate::model::{ClientSpec, Endpoint, Fault, Lifetimes, PromptNone, RefreshTokenUsage, User};

/// What is fixed once the site listens.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `http://127.0.0.1:PORT`.
    pub(crate) origin: String,
    /// `""` or a path such as `/core`.
    pub(crate) issuer_path: String,
    /// `origin + issuer_path`.
    pub(crate) issuer: String,
    /// IdentityServer3 mode (see the crate docs).
    pub(crate) identity_server3: bool,
    /// RFC 9207 `iss` on the callback, advertised in discovery.
    pub(crate) iss_parameter: bool,
    /// RFC 7591 `/connect/register`.
    pub(crate) dynamic_registration: bool,
    /// A bearer token registration requires, if any.
    pub(crate) registration_token: Option<String>,
    /// Whether clients registered over HTTP require PKCE.
    pub(crate) registered_require_pkce: bool,
    /// The refresh-token usage of clients registered over HTTP.
    pub(crate) registered_refresh_usage: RefreshTokenUsage,
    /// `token_endpoint_auth_signing_alg_values_supported`: the algorithms client assertions may use.
    pub(crate) assertion_algs: Vec<String>,
}

impl Config {
    /// The access tokens' audience: `{issuer}/resources`.
    pub(crate) fn resources_audience(&self) -> String {
        format!("{}/resources", self.issuer)
    }

    /// An absolute URL for a provider endpoint.
    pub(crate) fn url(&self, endpoint: Endpoint) -> String {
        if endpoint.under_issuer() {
            format!("{}{}", self.issuer, endpoint.path())
        } else {
            format!("{}{}", self.origin, endpoint.path())
        }
    }
}

/// A login waiting for the form to come back.
#[derive(Debug, Clone)]
pub(crate) struct PendingLogin {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) state: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) code_challenge: Option<(String, String)>,
    pub(crate) xsrf: String,
    pub(crate) created: u64,
}

/// An issued authorization code.
#[derive(Debug, Clone)]
pub(crate) struct CodeGrant {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) nonce: Option<String>,
    /// `(challenge, method)` as sent at the authorize endpoint (only kept for PKCE clients).
    pub(crate) code_challenge: Option<(String, String)>,
    pub(crate) sub: String,
    pub(crate) auth_time: u64,
    pub(crate) created: u64,
    pub(crate) lifetime: u64,
}

/// An issued refresh token.
#[derive(Debug, Clone)]
pub(crate) struct RefreshGrant {
    pub(crate) client_id: String,
    pub(crate) sub: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) auth_time: u64,
    /// When the first refresh token of this line was issued (the absolute lifetime counts from here).
    pub(crate) created: u64,
    pub(crate) lifetime: u64,
}

impl RefreshGrant {
    pub(crate) fn expires_at(&self) -> u64 {
        self.created.saturating_add(self.lifetime)
    }
}

/// Everything that changes.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) clients: HashMap<String, ClientSpec>,
    pub(crate) users: Vec<User>,
    pub(crate) pending: HashMap<String, PendingLogin>,
    pub(crate) codes: HashMap<String, CodeGrant>,
    pub(crate) refresh_tokens: HashMap<String, RefreshGrant>,
    /// SHA-256 of revoked access tokens.
    pub(crate) revoked_access: HashSet<[u8; 32]>,
    pub(crate) keys: KeyRing,
    pub(crate) lifetimes: Lifetimes,
    pub(crate) clock_offset: Duration,
    pub(crate) faults: HashMap<Endpoint, VecDeque<Fault>>,
    pub(crate) standing_faults: HashMap<Endpoint, Fault>,
    pub(crate) discovery_issuer: Option<String>,
    pub(crate) callback_iss: Option<String>,
    pub(crate) prompt_none: PromptNone,
    /// Extra fields of code-exchange token responses (a SMART launch context); refresh responses omit them.
    pub(crate) launch_context: serde_json::Map<String, serde_json::Value>,
    /// The logged-in user of the one browser session the site models.
    pub(crate) session: Option<String>,
    /// `(username, client_id)` -> scopes the user chose to remember.
    pub(crate) remembered: HashMap<(String, String), Vec<String>>,
    pub(crate) counts: HashMap<Endpoint, usize>,
    pub(crate) transcript: Vec<String>,
    pub(crate) patients: Vec<serde_json::Value>,
    /// RFC 8628 device codes, by device code.
    pub(crate) device_codes: HashMap<String, crate::device::DeviceGrant>,
    /// The polling interval handed to devices, in seconds.
    pub(crate) device_interval: u64,
    /// `(client_id, jti)` of client assertions already used, with their `exp`: a second use is a replay.
    pub(crate) used_assertions: HashMap<(String, String), u64>,
    /// Pushed requests and DPoP (`par_dpop.rs`).
    pub(crate) par_dpop: crate::par_dpop::ParDpop,
}

/// The configuration and the locked state, shared by the server and the handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        key: SigningKey,
        lifetimes: Lifetimes,
        users: Vec<User>,
        clients: Vec<ClientSpec>,
    ) -> Shared {
        let state = State {
            clients: clients
                .into_iter()
                .map(|c| (c.client_id.clone(), c))
                .collect(),
            users,
            pending: HashMap::new(),
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            revoked_access: HashSet::new(),
            keys: KeyRing::new(key),
            lifetimes,
            clock_offset: Duration::ZERO,
            faults: HashMap::new(),
            standing_faults: HashMap::new(),
            discovery_issuer: None,
            callback_iss: None,
            prompt_none: PromptNone::Natural,
            launch_context: serde_json::Map::new(),
            session: None,
            remembered: HashMap::new(),
            counts: HashMap::new(),
            transcript: Vec::new(),
            patients: vec![
                serde_json::json!({"Id": 1001, "Name": "Jane Doe", "BirthDate": "1961-04-12"}),
                serde_json::json!({"Id": 1002, "Name": "John Roe", "BirthDate": "1957-09-30"}),
            ],
            device_codes: HashMap::new(),
            device_interval: 5,
            used_assertions: HashMap::new(),
            par_dpop: Default::default(),
        };
        Shared {
            config,
            state: Mutex::new(state),
        }
    }

    /// Locks the state. A panic while locked cannot leave it half-written in a way that matters to a test site,
    /// so a poisoned lock is used as it is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    /// The site's clock: wall-clock Unix seconds plus the test's offset.
    pub(crate) fn now(&self) -> u64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        wall.saturating_add(self.clock_offset).as_secs()
    }

    pub(crate) fn user_by_name(&self, username: &str) -> Option<&User> {
        self.users.iter().find(|u| u.username == username)
    }

    pub(crate) fn user_by_sub(&self, sub: &str) -> Option<&User> {
        self.users.iter().find(|u| u.sub == sub)
    }

    /// Takes the fault for the next response of `endpoint`, if any.
    pub(crate) fn take_fault(&mut self, endpoint: Endpoint) -> Option<Fault> {
        if let Some(queue) = self.faults.get_mut(&endpoint)
            && let Some(fault) = queue.pop_front()
        {
            return Some(fault);
        }
        self.standing_faults.get(&endpoint).cloned()
    }

    pub(crate) fn is_revoked(&self, access_token: &str) -> bool {
        self.revoked_access.contains(&token_digest(access_token))
    }
}

/// SHA-256 of a token, for the revocation list.
pub(crate) fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A random handle (codes, refresh tokens, secrets, sign-in ids): 32 bytes, base64url.
pub(crate) fn random_handle() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A GUID-shaped random client id, as IdentityServer3 sites tend to hand out.
pub(crate) fn random_client_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
