//! Console logins: sessions, CSRF tokens, login throttling.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, State as AxState};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use rand::RngCore;
use serde::Deserialize;

use super::{cookie, esc, html_page, State};

/// The session cookie.
pub const SESSION_COOKIE: &str = "sd_session";
/// The login form's CSRF cookie (double submit: the form carries the same value).
const LOGIN_COOKIE: &str = "sd_login";
/// A session ends this long after login, active or not (a shift and then some).
pub const SESSION_MAX: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest go first beyond it.
const MAX_SESSIONS: usize = 10_000;
/// Failed logins allowed per seat name and per client address within [`THROTTLE_WINDOW`].
const MAX_FAILURES: u32 = 5;
const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Throttle entries kept at most (a flood of addresses cannot grow memory without bound).
const MAX_THROTTLE_KEYS: usize = 100_000;

/// A logged-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    pub seat_id: i64,
    pub seat: String,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

pub struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Session>>,
}

fn token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Constant-time comparison of two tokens.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn alive(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.created) < SESSION_MAX
    }

    /// A new session for a seat; returns its cookie token.
    pub fn create(&self, seat_id: i64, seat: &str) -> String {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| now.duration_since(s.last_seen) < self.idle);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        let t = token();
        map.insert(
            t.clone(),
            Session {
                seat_id,
                seat: seat.to_owned(),
                csrf: token(),
                created: now,
                last_seen: now,
            },
        );
        t
    }

    /// The session of a cookie token, refreshed; `None` when unknown or expired.
    pub fn get(&self, t: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let alive = map.get(t).map(|s| self.alive(s, now))?;
        if !alive {
            map.remove(t);
            return None;
        }
        let s = map.get_mut(t)?;
        s.last_seen = now;
        Some(s.clone())
    }

    /// Still valid, without counting as activity (the live feed asks this).
    pub fn valid(&self, t: &str) -> bool {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(t).is_some_and(|s| self.alive(s, Instant::now()))
    }

    pub fn remove(&self, t: &str) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).remove(t);
    }
}

#[derive(Default)]
pub struct Throttle {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    fn keys(name: &str, ip: IpAddr) -> [String; 2] {
        [format!("seat:{name}"), format!("ip:{ip}")]
    }

    /// Whether a login for `name` from `ip` may be tried now.
    pub fn allowed(&self, name: &str, ip: IpAddr) -> bool {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        Self::keys(name, ip).iter().all(|k| match map.get(k) {
            Some((n, since)) => *n < MAX_FAILURES || now.duration_since(*since) >= THROTTLE_WINDOW,
            None => true,
        })
    }

    pub fn failed(&self, name: &str, ip: IpAddr) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_THROTTLE_KEYS {
            map.retain(|_, (_, since)| now.duration_since(*since) < THROTTLE_WINDOW);
        }
        if map.len() >= MAX_THROTTLE_KEYS {
            return;
        }
        for k in Self::keys(name, ip) {
            let e = map.entry(k).or_insert((0, now));
            if now.duration_since(e.1) >= THROTTLE_WINDOW {
                *e = (0, now);
            }
            e.0 += 1;
        }
    }

    pub fn succeeded(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&format!("seat:{name}"));
    }
}

/// An operator with a live session; pages redirect to the login otherwise.
pub struct Operator {
    pub session: Session,
    pub token: String,
}

pub enum NoSession {
    Page,
    Api,
}

impl IntoResponse for NoSession {
    fn into_response(self) -> Response {
        match self {
            NoSession::Page => Redirect::to("/console/login").into_response(),
            NoSession::Api => (
                StatusCode::UNAUTHORIZED,
                "ログインの有効期限が切れました。再度ログインしてください。",
            )
                .into_response(),
        }
    }
}

impl FromRequestParts<State> for Operator {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        let page = parts.method == axum::http::Method::GET && parts.uri.path() == "/console";
        let reject = || {
            if page {
                NoSession::Page
            } else {
                NoSession::Api
            }
        };
        let token = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(reject)?;
        let session = state.sessions.get(&token).ok_or_else(reject)?;
        Ok(Operator { session, token })
    }
}

impl Operator {
    /// The request carries this session's CSRF token (header or form field).
    pub fn csrf_ok(&self, headers: &HeaderMap, form_value: Option<&str>) -> bool {
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .or(form_value)
            .unwrap_or("");
        same_token(given, &self.session.csrf)
    }
}

pub fn session_valid(state: &State, token: &str) -> bool {
    state.sessions.valid(token)
}

fn login_form(csrf: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| {
            format!(
                "<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>",
                esc(e)
            )
        })
        .unwrap_or_default();
    format!(
        "<main class=\"login\"><h1>smartdesk オペレーター コンソール</h1>{err}\
         <form method=\"post\" action=\"/console/login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"seat\">席名（ユーザー名）</label>\
         <input id=\"seat\" name=\"seat\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">パスワード</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"login\">ログイン</button></form></main>"
    )
}

fn login_response(status: StatusCode, error: Option<&str>) -> Response {
    let csrf = token();
    let mut r = html_page("ログイン - smartdesk", &login_form(&csrf, error));
    *r.status_mut() = status;
    if let Ok(v) =
        format!("{LOGIN_COOKIE}={csrf}; Path=/console; HttpOnly; SameSite=Strict").parse()
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

pub async fn login_page() -> Response {
    login_response(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    seat: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    AxState(state): AxState<State>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let ip = peer.ip();
    let name: String = f.seat.trim().chars().take(64).collect();
    let csrf_cookie = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if f.csrf.is_empty() || !same_token(&f.csrf, &csrf_cookie) {
        return login_response(
            StatusCode::FORBIDDEN,
            Some("ページの有効期限が切れました。もう一度ログインしてください。"),
        );
    }
    if !state.throttle.allowed(&name, ip) {
        tracing::warn!(seat = %name, client = %ip, "console login throttled");
        return login_response(
            StatusCode::TOO_MANY_REQUESTS,
            Some("ログインの失敗が続いたため、しばらくログインできません。15分ほど待ってからお試しください。"),
        );
    }
    let seat = match state.daemon.ledger.seat_by_name(&name).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "console login: ledger unavailable");
            return login_response(
                StatusCode::SERVICE_UNAVAILABLE,
                Some("ただいまログインできません。しばらくしてからお試しください。"),
            );
        }
    };
    // Verify even for unknown seats, so the answer time does not tell which names exist.
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = match seat.as_ref().and_then(|s| s.web_password.clone()) {
        Some(p) => p,
        None => DUMMY
            .get_or_init(|| crate::password::hash("no such seat, no password").unwrap_or_default())
            .clone(),
    };
    let password = f.password;
    let ok = tokio::task::spawn_blocking(move || crate::password::verify(&password, &phc))
        .await
        .unwrap_or(false);
    let seat = match seat {
        Some(s) if ok && s.web_password.is_some() => s,
        _ => {
            state.throttle.failed(&name, ip);
            tracing::info!(seat = %name, client = %ip, "console login failed");
            return login_response(
                StatusCode::UNAUTHORIZED,
                Some("席名またはパスワードが違います。"),
            );
        }
    };
    state.throttle.succeeded(&name);
    let t = state.sessions.create(seat.id, &seat.name);
    tracing::info!(seat = %seat.name, client = %ip, "console login");
    let mut r = Redirect::to("/console").into_response();
    if let Ok(v) = format!("{SESSION_COOKIE}={t}; Path=/console; HttpOnly; SameSite=Strict").parse()
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    AxState(state): AxState<State>,
    op: Operator,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Response {
    if !op.csrf_ok(&headers, Some(&f.csrf)) {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
    }
    state.sessions.remove(&op.token);
    state.phones.stop(op.session.seat_id);
    tracing::info!(seat = %op.session.seat, "console logout");
    let mut r = Redirect::to("/console/login").into_response();
    if let Ok(v) =
        format!("{SESSION_COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0").parse()
    {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle() {
        let s = Sessions::new(Duration::from_millis(50));
        let t = s.create(1, "op1");
        assert_eq!(s.get(&t).map(|x| x.seat_id), Some(1));
        assert!(s.get("nope").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&t).is_none());
    }

    #[test]
    fn throttle_after_five_failures() {
        let th = Throttle::default();
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        for _ in 0..MAX_FAILURES {
            assert!(th.allowed("op1", ip));
            th.failed("op1", ip);
        }
        assert!(!th.allowed("op1", ip));
        // the address is throttled for other names too
        assert!(!th.allowed("op2", ip));
        let other: IpAddr = "127.0.0.2".parse().expect("ip");
        assert!(
            !th.allowed("op1", other),
            "and the name from other addresses"
        );
        assert!(th.allowed("op2", other));
    }

    #[test]
    fn tokens() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", "ab"));
        assert_eq!(token().len(), 64);
    }
}
