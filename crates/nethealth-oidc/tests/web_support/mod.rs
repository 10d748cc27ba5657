//! Helpers for the web example's end-to-end tests: serving the app on loopback, and a browser with a cookie jar.
#![allow(dead_code, unreachable_pub)]

use reqwest::redirect::Policy;

/// A loopback listener for the app, and its base URL.
pub async fn listener() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// Serves `router` on `listener` until the task is aborted.
pub fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        axum::serve(listener, router).await.expect("the app serves");
    })
}

/// The path and query of a URL (what the browser requests of the app).
pub fn path_and_query(url: &str) -> String {
    let url: url::Url = url.parse().unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or(""))
}

/// Asserts that `url` is a pushed login's authorization URL (RFC 9126 §4): its query names only `client_id` and
/// `request_uri`.
#[track_caller]
pub fn assert_pushed(url: &str) {
    let url: url::Url = url.parse().unwrap();
    let names: Vec<String> = url
        .query_pairs()
        .map(|(name, _)| name.into_owned())
        .collect();
    assert_eq!(
        names,
        ["client_id", "request_uri"],
        "not a pushed login: {url}"
    );
}

/// One answer of the app.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

/// A browser talking to the app: follows no redirect, keeps the app's session cookie.
pub struct Jar {
    base: String,
    http: reqwest::Client,
    session: Option<String>,
}

impl Jar {
    pub fn new(base: &str) -> Jar {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .unwrap();
        Jar {
            base: base.to_owned(),
            http,
            session: None,
        }
    }

    pub fn session_id(&self) -> Option<String> {
        self.session.clone()
    }

    pub fn set_session_id(&mut self, id: &str) {
        self.session = Some(id.to_owned());
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str) -> Answer {
        let request = self.http.post(format!("{}{path}", self.base));
        self.send(request).await
    }

    async fn send(&mut self, mut request: reqwest::RequestBuilder) -> Answer {
        if let Some(id) = &self.session {
            request = request.header("cookie", format!("{}={id}", super::app::COOKIE));
        }
        let response = request.send().await.expect("the app answers");
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (location, set_cookie) = (header("location"), header("set-cookie"));
        if let Some(cookie) = &set_cookie {
            let value = cookie
                .split(';')
                .next()
                .and_then(|pair| pair.split_once('='))
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default();
            self.session = (!value.is_empty() && !cookie.contains("Max-Age=0")).then_some(value);
        }
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Answer {
            status,
            location,
            set_cookie,
            body,
        }
    }
}
