//! A fleet shares one grant through `RedisStore`: 8 real processes (this test binary re-run as children), each with
//! 100 tasks, against the local Accounts site with OneTimeOnly refresh-token rotation and a 4-second access token.
//! Every caller gets a valid token, the site sees exactly one refresh per expiry, and no refresh token is reused;
//! then the same with one child killed (SIGKILL) while it holds the lease mid-refresh.
//!
//! Needs a redis-server: `cargo xtask ci` starts one and sets `NETHEALTH_TEST_REDIS`.
#![allow(clippy::print_stdout)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nethealth_oidc::{
    ClientOptions, HttpClient, LifecycleConfig, Provider, RedisOptions, RedisStore, Scopes,
    SessionOptions, TokenStore, TransportConfig,
};
use nethealth_oidc_testkit::{
    Browser, ClientSpec, Consent, Endpoint, Fault, RefreshTokenUsage, TestKit,
};

const CHILD: &str = "NETHEALTH_OIDC_FLEET_CHILD";
const REDIRECT: &str = "http://127.0.0.1:8080/callback";
const PROCESSES: usize = 8;
const TASKS: usize = 100;
/// The access token's lifetime at the site, and the refresh margin: a refresh is due every ~2 s.
const LIFETIME: Duration = Duration::from_secs(4);
const MARGIN: Duration = Duration::from_secs(2);

fn redis_url() -> String {
    std::env::var("NETHEALTH_TEST_REDIS").expect(
        "NETHEALTH_TEST_REDIS is not set: run `cargo xtask ci`, which starts redis-server, or start one with \
         `redis-server --port 6390 --save '' --daemonize no` and set NETHEALTH_TEST_REDIS=redis://127.0.0.1:6390",
    )
}

fn redis_options() -> RedisOptions {
    RedisOptions::default()
        .with_lease(Duration::from_secs(1))
        .with_lock_wait(Duration::from_secs(20))
}

fn lifecycle() -> LifecycleConfig {
    LifecycleConfig::default().with_refresh_margin(MARGIN)
}

fn http() -> HttpClient {
    HttpClient::new(TransportConfig::default().with_timeout(Duration::from_secs(10)))
        .expect("an HTTP client")
}

fn config() -> nethealth_oidc::ClientConfig {
    nethealth_oidc::ClientConfig::new("app", Some(nethealth_oidc::ClientSecret::new("app-secret")))
        .with_redirect_uris(vec![REDIRECT.parse().unwrap()])
}

async fn client(issuer: &str) -> nethealth_oidc::Client {
    let provider = Provider::discover(http(), issuer).await.unwrap();
    provider.client(config(), ClientOptions::default()).unwrap()
}

/// The site, a logged-in grant stored in Redis under a fresh key, and that key.
async fn fleet_site() -> (TestKit, String) {
    let url = redis_url();
    let kit = TestKit::builder()
        .client(
            ClientSpec::confidential("app", "app-secret")
                .redirect_uri(REDIRECT)
                .refresh_token_usage(RefreshTokenUsage::OneTimeOnly),
        )
        .access_token_lifetime(LIFETIME)
        .start()
        .await
        .expect("the kit starts");
    let client = client(kit.issuer()).await;
    let (auth_url, pending) = client
        .begin_login(&Scopes::parse(
            "openid offline_access patients.read patients.write",
        ))
        .unwrap();
    let callback = Browser::new()
        .login_async(auth_url.as_str(), &Consent::GrantAll)
        .await
        .expect("the login page works");
    let grant = client
        .finish_login(&pending, &callback.parse().unwrap())
        .await
        .unwrap();
    let key = format!("fleet:{}:{}", std::process::id(), kit.addr().port());
    let store = RedisStore::open(&url, &key, redis_options()).unwrap();
    store.clear().unwrap();
    let session = client
        .session(grant, SessionOptions::default().with_store(Arc::new(store)))
        .await
        .unwrap();
    drop(session);
    kit.clear_transcript();
    (kit, key)
}

/// A child process, killed if the test fails before it is waited for.
struct Process(Option<Child>);

impl Process {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, Child::id)
    }

    /// Waits for it (off the async threads) and returns its report; a failed child fails the test.
    async fn report(mut self) -> Report {
        let child = self.0.take().expect("not waited for yet");
        let output = tokio::task::spawn_blocking(move || child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        assert!(output.status.success(), "a child failed: {}", output.status);
        report(&output)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn_child(test: &str, kit: &TestKit, key: &str, secs: u64) -> Process {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads", "1"])
        .env(
            CHILD,
            format!("{}|{key}|{secs}|{}", kit.issuer(), kit.api_url()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    Process(Some(child))
}

/// What one child reports on its `FLEET` line.
#[derive(Debug, Default)]
struct Report {
    calls: u64,
    api_ok: u64,
    /// `received_at` of each set this child refreshed and stored itself.
    refreshed_at: Vec<u64>,
}

fn report(output: &std::process::Output) -> Report {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("FLEET ").map(|at| &l[at + 6..]))
        .unwrap_or_else(|| panic!("no FLEET line from the child:\n{stdout}"));
    let mut report = Report::default();
    for field in line.split_whitespace() {
        let (name, value) = field.split_once('=').unwrap();
        match name {
            "calls" => report.calls = value.parse().unwrap(),
            "api_ok" => report.api_ok = value.parse().unwrap(),
            "refreshed_at" => {
                report.refreshed_at = value
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(|v| v.parse().unwrap())
                    .collect()
            }
            _ => {}
        }
    }
    report
}

/// One child: resume the stored session, then 100 tasks ask for a token every 50 ms for `secs` seconds, and call
/// the API with it now and then; any failure fails the child.
async fn child(spec: &str) {
    let mut parts = spec.split('|');
    let (issuer, key, secs, api) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap().parse::<u64>().unwrap(),
        parts.next().unwrap().to_owned(),
    );
    let client = client(issuer).await;
    let store = RedisStore::open(&redis_url(), key, redis_options()).unwrap();
    let refreshed = Arc::new(Mutex::new(Vec::new()));
    let hook = Arc::clone(&refreshed);
    let options = SessionOptions::default()
        .with_store(Arc::new(store))
        .with_lifecycle(lifecycle())
        .on_tokens(move |set| hook.lock().unwrap().push(set.received_at.as_secs()));
    let session = client
        .resume(options)
        .await
        .unwrap()
        .expect("the parent stored a session");
    let deadline = Instant::now() + Duration::from_secs(secs);
    let http = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let (session, http, api) = (session.clone(), http.clone(), api.clone());
        tasks.spawn(async move {
            let (mut calls, mut api_ok) = (0u64, 0u64);
            let mut n = task;
            while Instant::now() < deadline {
                let header = session
                    .authorization_header()
                    .await
                    .expect("every caller gets a token");
                calls += 1;
                n += 1;
                if n % 40 == 0 {
                    let status = http
                        .get(&api)
                        .header(http::header::AUTHORIZATION, header)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    assert_eq!(status, 200, "the site accepts the token handed out");
                    api_ok += 1;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (calls, api_ok)
        });
    }
    let (mut calls, mut api_ok) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (c, a) = done.expect("a task failed");
        calls += c;
        api_ok += a;
    }
    let at: Vec<String> = refreshed
        .lock()
        .unwrap()
        .iter()
        .map(u64::to_string)
        .collect();
    println!(
        "FLEET pid={} calls={calls} api_ok={api_ok} refreshed_at={}",
        std::process::id(),
        at.join(",")
    );
}

/// Checks the fleet's refreshes against the site: each refresh request succeeded (no refresh token reused, no
/// duplicate refresh of one expiry) and consecutive refreshes are a refresh period apart.
fn check(kit: &TestKit, reports: &[Report], min_refreshes: usize) {
    let mut at: Vec<u64> = reports
        .iter()
        .flat_map(|r| r.refreshed_at.iter().copied())
        .collect();
    at.sort_unstable();
    let requests = kit.requests(Endpoint::Token);
    let calls: u64 = reports.iter().map(|r| r.calls).sum();
    let api_ok: u64 = reports.iter().map(|r| r.api_ok).sum();
    println!(
        "fleet: {} processes, {calls} token calls, {api_ok} API calls accepted, {requests} token requests at the site, \
         {} refreshes stored at {at:?}, {} live refresh token(s)",
        reports.len(),
        at.len(),
        kit.live_refresh_tokens()
    );
    assert!(
        at.len() >= min_refreshes,
        "several expiries were crossed: {at:?}"
    );
    assert_eq!(
        requests,
        at.len(),
        "every refresh request at the site produced the one stored refresh (none reused a refresh token)"
    );
    let period = (LIFETIME - MARGIN).as_secs();
    for pair in at.windows(2) {
        assert!(
            pair[1] - pair[0] + 1 >= period,
            "one refresh per expiry, not two: {at:?}"
        );
    }
    assert_eq!(
        kit.live_refresh_tokens(),
        1,
        "exactly one refresh token is live: none was lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_share_one_grant_and_refresh_once_per_expiry() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec).await;
    }
    let (kit, key) = fleet_site().await;
    let children: Vec<Process> = (0..PROCESSES)
        .map(|_| {
            spawn_child(
                "eight_processes_share_one_grant_and_refresh_once_per_expiry",
                &kit,
                &key,
                9,
            )
        })
        .collect();
    let mut reports = Vec::new();
    for child in children {
        reports.push(child.report().await);
    }
    check(&kit, &reports, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_killed_mid_refresh_hands_over_after_its_lease_and_loses_nothing() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec).await;
    }
    let (kit, key) = fleet_site().await;
    // The first refresh hangs at the site long enough for its process to be killed while it holds the lease.
    kit.fail_next(Endpoint::Token, 1, Fault::Delay(Duration::from_secs(4)));
    let test = "a_child_killed_mid_refresh_hands_over_after_its_lease_and_loses_nothing";
    let mut children: Vec<Process> = (0..PROCESSES)
        .map(|_| spawn_child(test, &kit, &key, 12))
        .collect();
    let store = RedisStore::open(&redis_url(), &key, redis_options()).unwrap();
    let mut redis = redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap();
    // Wait until the refresh is in flight at the site, then find the lease holder's pid.
    let waited = Instant::now();
    while kit.requests(Endpoint::Token) == 0 {
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "no refresh started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let owner: String = redis::cmd("GET")
        .arg(store.lease_key())
        .query(&mut redis)
        .expect("a process holds the lease mid-refresh");
    let pid: u32 = owner.split(':').next().unwrap().parse().unwrap();
    let victim = children
        .iter()
        .position(|c| c.id() == pid)
        .expect("the lease holder is one of the children");
    let mut killed = children.remove(victim).0.take().unwrap();
    killed.kill().unwrap(); // SIGKILL
    let status = killed.wait().unwrap();
    println!("fleet: killed child {pid} mid-refresh ({status})");
    let mut reports = Vec::new();
    for child in children {
        reports.push(child.report().await);
    }
    // The killed child's request reached the site but its answer was never stored: one request more than stored
    // refreshes, and still exactly one live refresh token.
    let stored: usize = reports.iter().map(|r| r.refreshed_at.len()).sum();
    println!(
        "fleet: {} token requests, {stored} stored refreshes after the kill",
        kit.requests(Endpoint::Token)
    );
    assert!(stored >= 2, "the others took over and kept refreshing");
    assert_eq!(
        kit.live_refresh_tokens(),
        1,
        "the grant survived the kill: nothing was lost"
    );
    let final_set = store.load().unwrap().expect("the fleet's set is stored");
    assert!(final_set.refresh_token.is_some());
}
