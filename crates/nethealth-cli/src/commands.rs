//! The subcommands.

use std::path::Path;
use std::time::Duration;

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use nethealth_oidc::blocking::{Client, HttpClient, Provider, Session};
use nethealth_oidc::core::userinfo::parse_www_authenticate_bearer;
use nethealth_oidc::core::{ErrorCode, require_secure};
use nethealth_oidc::{
    ClientConfig, ClientMetadata, ClientOptions, NetHealthRegistration, Scopes, SessionOptions,
    TokenAuthMethod, TokenSet, TransportConfig, UnixTime,
};
use url::Url;

use crate::config::{Config, Profile, Vault, config_dir};
use crate::fail::Failure;
use crate::{CallArgs, Cli, Command, LoginArgs, RegisterArgs, login};

/// The redirect URI registered by default: a loopback IP literal, any port at login time (RFC 8252 §7.3).
const DEFAULT_REDIRECT: &str = "http://127.0.0.1/callback";

/// The largest API response `call` prints.
const MAX_BODY: u64 = 10 << 20;

/// Runs one command.
pub(crate) fn run(cli: Cli) -> Result<(), Failure> {
    let dir = config_dir()?;
    let config = Config::load(&dir)?;
    match cli.command {
        Command::Register(args) => register(&dir, config, &cli.profile, args),
        Command::Login(args) => login_cmd(&dir, &config, &cli.profile, args),
        Command::Token { header } => token(&dir, &config, &cli.profile, header),
        Command::Call(args) => call(&dir, &config, &cli.profile, args),
        Command::Status { json } => status(&dir, &config, &cli.profile, json),
        Command::Logout { all } => logout(&dir, &config, &cli.profile, all),
    }
}

fn http() -> HttpClient {
    HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(30)))
}

fn parse_url(text: &str, what: &str) -> Result<Url, Failure> {
    Url::parse(text).map_err(|e| Failure::Usage(format!("{what} `{text}` is not a URL ({e})")))
}

fn register(dir: &Path, mut config: Config, name: &str, args: RegisterArgs) -> Result<(), Failure> {
    let provider = Provider::discover(http(), &args.issuer)?;
    let redirects = if args.redirects.is_empty() {
        vec![DEFAULT_REDIRECT.to_owned()]
    } else {
        args.redirects
    };
    let uris = redirects
        .iter()
        .map(|r| parse_url(r, "the redirect URI"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut metadata = ClientMetadata::new(&args.name, uris).with_scope(&args.scope);
    let registered = if provider.metadata().registration_endpoint.is_some() {
        // A native app (RFC 8252): the provider then accepts its loopback redirect URI on any port.
        metadata
            .extra
            .insert("application_type".into(), "native".into());
        provider.register(&metadata, None)?
    } else {
        provider.register_net_health(&NetHealthRegistration::default(), &metadata, None)?
    };
    let client = registered.to_client_config();
    let vault = Vault::open(dir, name, args.store);
    vault.forget_secret();
    if let Some(secret) = &client.client_secret {
        vault.save_secret(secret)?;
    }
    // Tokens of an earlier registration of this profile belong to another client.
    vault.tokens()?.clear()?;
    config.profiles.insert(
        name.to_owned(),
        Profile {
            issuer: provider.issuer().to_owned(),
            client_id: client.client_id.clone(),
            redirect_uris: client.redirect_uris.iter().map(Url::to_string).collect(),
            auth_method: client
                .token_endpoint_auth_method
                .map(|m| m.as_str().to_owned()),
            has_secret: client.client_secret.is_some(),
            scopes: Some(args.scope),
            api: args.api,
            store: args.store,
        },
    );
    config.save(dir)?;
    crate::note(&format!(
        "Registered `{}` at {} as profile `{name}` (client id {}); the client secret is kept in {}.\n\
         Next: nethealth login{}",
        args.name,
        provider.issuer(),
        client.client_id,
        if vault.describe().starts_with("the OS keyring") {
            "the OS keyring"
        } else {
            "a 0600 file"
        },
        if name == "default" {
            String::new()
        } else {
            format!(" --profile {name}")
        }
    ));
    crate::out(&client.client_id)
}

/// The client of `profile`, with `redirect` as the login's redirect URI.
fn client(profile: &Profile, vault: &Vault, redirect: Option<Url>) -> Result<Client, Failure> {
    let provider = Provider::discover(http(), &profile.issuer)?;
    let secret = if profile.has_secret {
        Some(vault.load_secret()?)
    } else {
        None
    };
    let mut uris = profile
        .redirect_uris
        .iter()
        .map(|r| parse_url(r, "the profile's redirect URI"))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(uri) = &redirect {
        // RFC 8252 §7.3: a registered loopback IP redirect URI stands for every port of it.
        let same_but_port = |registered: &Url| {
            let mut r = registered.clone();
            r.set_port(uri.port()).is_ok() && r == *uri
        };
        if !uris.iter().any(same_but_port) {
            return Err(Failure::Usage(format!(
                "client {} has no loopback redirect URI such as {DEFAULT_REDIRECT} registered: register again \
                 with --redirect {DEFAULT_REDIRECT}, or log in with --device",
                profile.client_id
            )));
        }
        uris.insert(0, uri.clone());
    }
    let mut config = ClientConfig::new(profile.client_id.clone(), secret).with_redirect_uris(uris);
    if let Some(method) = profile
        .auth_method
        .as_deref()
        .and_then(TokenAuthMethod::parse)
    {
        config = config.with_auth_method(method);
    }
    let mut options = ClientOptions::default();
    if let Some(uri) = redirect {
        options = options.with_redirect_uri(uri);
    }
    Ok(provider.client(config, options)?)
}

fn session_options(vault: &Vault) -> Result<SessionOptions, Failure> {
    Ok(SessionOptions::default().with_store(vault.tokens()?))
}

/// The stored session of `name`, or "log in first".
fn session(dir: &Path, config: &Config, name: &str) -> Result<Session, Failure> {
    let profile = config.profile(name)?;
    let vault = Vault::open(dir, name, profile.store);
    let client = client(profile, &vault, None)?;
    client.resume(session_options(&vault)?)?.ok_or_else(|| {
        Failure::LoginRequired(format!(
            "profile `{name}` is not logged in: run `nethealth login{}`",
            if name == "default" {
                String::new()
            } else {
                format!(" --profile {name}")
            }
        ))
    })
}

fn login_cmd(dir: &Path, config: &Config, name: &str, args: LoginArgs) -> Result<(), Failure> {
    let profile = config.profile(name)?;
    let vault = Vault::open(dir, name, args.store.unwrap_or(profile.store));
    let scopes = Scopes::parse(
        args.scope
            .as_deref()
            .or(profile.scopes.as_deref())
            .unwrap_or("openid"),
    );
    let timeout = Duration::from_secs(args.timeout);
    let stop = login::interrupted();
    let (client, grant) = if args.device {
        let client = client(profile, &vault, None)?;
        let grant = login::device_login(&client, &scopes, timeout, &stop)?;
        (client, grant)
    } else {
        let (listener, redirect) = login::bind(args.port.unwrap_or(0))?;
        let client = client(profile, &vault, Some(redirect.clone()))?;
        let grant = login::browser_login(
            &client,
            &scopes,
            listener,
            &redirect,
            args.no_browser,
            timeout,
            &stop,
        )?;
        (client, grant)
    };
    let refused = grant.refused();
    let session = client.session(grant, session_options(&vault)?)?;
    let set = session.token_set();
    let who = set.id_claims.as_ref().map_or("someone", |c| c.sub.as_str());
    crate::note(&format!(
        "Logged in as {who} (profile `{name}`). Granted: {}.",
        shown(set.granted.granted())
    ));
    if !refused.is_empty() {
        crate::warn(&format!(
            "the user did not grant {refused}: calls that need it will be refused"
        ));
    }
    Ok(())
}

fn shown(scopes: &Scopes) -> String {
    if scopes.is_empty() {
        "nothing".into()
    } else {
        scopes.to_string()
    }
}

fn token(dir: &Path, config: &Config, name: &str, header: bool) -> Result<(), Failure> {
    let session = session(dir, config, name)?;
    let token = session.access_token()?;
    if header {
        crate::out(&format!("Authorization: Bearer {}", token.expose_secret()))
    } else {
        crate::out(token.expose_secret())
    }
}

fn call(dir: &Path, config: &Config, name: &str, args: CallArgs) -> Result<(), Failure> {
    let profile = config.profile(name)?;
    let base = match &profile.api {
        Some(api) => parse_url(api, "the profile's API base")?,
        None => parse_url(&profile.issuer, "the issuer")?,
    };
    let url = if args.target.contains("://") {
        parse_url(&args.target, "the URL")?
    } else {
        base.join(&args.target)
            .map_err(|e| Failure::Usage(format!("cannot join `{}` to {base}: {e}", args.target)))?
    };
    require_secure(&url).map_err(|e| Failure::Usage(e.to_string()))?;
    let method = http::Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| Failure::Usage(format!("`{}` is not an HTTP method", args.method)))?;
    let body = args.data.unwrap_or_default();
    let mut request = http::Request::builder().method(method).uri(url.as_str());
    if !body.is_empty() {
        let trimmed = body.trim_start();
        let kind = if trimmed.starts_with('{') || trimmed.starts_with('[') {
            "application/json"
        } else {
            "application/x-www-form-urlencoded"
        };
        request = request.header(CONTENT_TYPE, kind);
    }
    let request = request
        .body(body.into_bytes())
        .map_err(|e| Failure::Usage(format!("cannot build the request: {e}")))?;
    let session = session(dir, config, name)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut response = session.authorized(agent).send(request)?;
    let status = response.status();
    let challenge = response
        .headers()
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .find_map(parse_www_authenticate_bearer);
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| Failure::Network(format!("reading the response from {url} failed: {e}")))?;
    if status.is_success() {
        return crate::out(&text);
    }
    if status == http::StatusCode::FORBIDDEN
        && let Some(c) = challenge
            .as_ref()
            .filter(|c| c.error == Some(ErrorCode::InsufficientScope))
    {
        let needed = c
            .scope
            .as_ref()
            .map_or_else(|| "a scope".to_owned(), |s| format!("scope {s}"));
        let granted = session.granted_scopes();
        return Err(Failure::Refused(format!(
            "{} {url} was refused (403): this needs {needed}, which the user did not grant (granted: {}); \
             run `nethealth login --scope \"{} {}\"` to ask again",
            args.method.to_ascii_uppercase(),
            shown(granted.granted()),
            granted.requested(),
            c.scope.as_ref().map(Scopes::to_string).unwrap_or_default()
        )));
    }
    if status == http::StatusCode::UNAUTHORIZED {
        return Err(Failure::LoginRequired(format!(
            "{url} still refused the token after a renewal (401): run `nethealth login`"
        )));
    }
    if !text.is_empty() {
        crate::note(&text);
    }
    Err(Failure::Refused(format!(
        "{} {url} answered {status}",
        args.method.to_ascii_uppercase()
    )))
}

/// A time for people: "in 59 min" or "3 min ago", with the Unix time.
fn human(at: Option<UnixTime>, now: UnixTime) -> String {
    let Some(at) = at else {
        return "unknown".into();
    };
    let (a, n) = (at.as_secs(), now.as_secs());
    let span = |s: u64| match s {
        0..60 => format!("{s} s"),
        60..7200 => format!("{} min", s / 60),
        7200..172800 => format!("{} h", s / 3600),
        _ => format!("{} days", s / 86400),
    };
    if a >= n {
        format!("in {}", span(a - n))
    } else {
        format!("{} ago (expired)", span(n - a))
    }
}

fn status_json(
    name: &str,
    profile: &Profile,
    vault: &Vault,
    set: Option<&TokenSet>,
) -> serde_json::Value {
    let mut value = serde_json::json!({
        "profile": name,
        "issuer": profile.issuer,
        "client_id": profile.client_id,
        "store": vault.describe(),
        "logged_in": set.is_some(),
    });
    if let (Some(set), Some(obj)) = (set, value.as_object_mut()) {
        let list = |s: &Scopes| s.iter().map(str::to_owned).collect::<Vec<_>>();
        obj.insert(
            "subject".into(),
            set.id_claims.as_ref().map(|c| c.sub.clone()).into(),
        );
        obj.insert("granted".into(), list(set.granted.granted()).into());
        obj.insert("refused".into(), list(&set.granted.refused()).into());
        obj.insert(
            "access_token_expires_at".into(),
            set.expires_at.map(UnixTime::as_secs).into(),
        );
        obj.insert(
            "has_refresh_token".into(),
            set.refresh_token.is_some().into(),
        );
        obj.insert(
            "refresh_token_expires_at".into(),
            set.refresh_expires_at.map(UnixTime::as_secs).into(),
        );
    }
    value
}

fn status(dir: &Path, config: &Config, name: &str, json: bool) -> Result<(), Failure> {
    let profile = config.profile(name)?;
    let vault = Vault::open(dir, name, profile.store);
    let set = vault.tokens()?.load()?;
    if json {
        return crate::out(&status_json(name, profile, &vault, set.as_ref()).to_string());
    }
    let now = nethealth_oidc::core::Clock::now(&nethealth_oidc::SystemClock);
    let mut lines = vec![
        format!("profile:  {name}"),
        format!("issuer:   {}", profile.issuer),
        format!("client:   {}", profile.client_id),
        format!("tokens:   {}", vault.describe()),
    ];
    match &set {
        None => lines.push("not logged in: run `nethealth login`".into()),
        Some(set) => {
            let who = set.id_claims.as_ref().map_or("unknown", |c| c.sub.as_str());
            lines.push(format!("user:     {who}"));
            lines.push(format!("granted:  {}", shown(set.granted.granted())));
            lines.push(format!("refused:  {}", shown(&set.granted.refused())));
            lines.push(format!(
                "access token expires:  {}",
                human(set.expires_at, now)
            ));
            lines.push(format!(
                "refresh token expires: {}",
                match &set.refresh_token {
                    None => "no refresh token (offline_access not granted)".into(),
                    Some(_) => human(set.refresh_expires_at, now),
                }
            ));
        }
    }
    crate::out(&lines.join("\n"))
}

fn logout(dir: &Path, config: &Config, name: &str, all: bool) -> Result<(), Failure> {
    let names: Vec<&str> = if all {
        config.profiles.keys().map(String::as_str).collect()
    } else {
        config.profile(name)?;
        vec![name]
    };
    let mut first_error = None;
    for name in names {
        match logout_one(dir, config, name) {
            Ok(true) => crate::note(&format!(
                "Logged out of profile `{name}`: the tokens are revoked and forgotten."
            )),
            Ok(false) => crate::note(&format!("Profile `{name}` was not logged in.")),
            Err(e) => {
                crate::error(&format!("profile `{name}`: {e}"));
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn logout_one(dir: &Path, config: &Config, name: &str) -> Result<bool, Failure> {
    let profile = config.profile(name)?;
    let vault = Vault::open(dir, name, profile.store);
    let store = vault.tokens()?;
    if store.load()?.is_none() {
        return Ok(false);
    }
    let client = client(profile, &vault, None)?;
    match client.resume(session_options(&vault)?) {
        Ok(Some(session)) => {
            if let Err(e) = session.revoke() {
                // Forget the tokens anyway: the user asked to be logged out here.
                store.clear()?;
                return Err(Failure::from(e));
            }
        }
        Ok(None) => {}
        Err(e) => {
            store.clear()?;
            return Err(e.into());
        }
    }
    store.clear()?;
    Ok(true)
}
