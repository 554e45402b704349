//! Web logins of the console, the contractor portal and the admin view: sessions, CSRF
//! tokens, login throttling, the login page. Generic over who is logged in (a seat, a
//! portal user), so every web surface shares one implementation.

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

/// Who a console session belongs to.
#[derive(Debug, Clone)]
pub struct SeatLogin {
    pub seat_id: i64,
    pub seat: String,
}

/// A login session of `P` (a seat, a portal user); derefs to `P`.
#[derive(Debug, Clone)]
pub struct Session<P> {
    pub who: P,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl<P> std::ops::Deref for Session<P> {
    type Target = P;
    fn deref(&self) -> &P {
        &self.who
    }
}

pub struct Sessions<P> {
    idle: Duration,
    map: Mutex<HashMap<String, Session<P>>>,
}

pub fn token() -> String {
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

impl<P: Clone> Sessions<P> {
    pub fn new(idle: Duration) -> Sessions<P> {
        Sessions {
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn alive(&self, s: &Session<P>, now: Instant) -> bool {
        now.duration_since(s.last_seen) < self.idle && now.duration_since(s.created) < SESSION_MAX
    }

    /// A new session for `who`; returns its cookie token.
    pub fn create(&self, who: P) -> String {
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
                who,
                csrf: token(),
                created: now,
                last_seen: now,
            },
        );
        t
    }

    /// The session of a cookie token, refreshed; `None` when unknown or expired.
    pub fn get(&self, t: &str) -> Option<Session<P>> {
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

    /// Ends every session of which `pred` holds (a password change ends the others).
    pub fn remove_where(&self, pred: impl Fn(&P) -> bool) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| !pred(&s.who));
    }
}

/// Failed logins per login name and per client address; `scope` keeps the console's
/// seat names and the portal's logins apart.
pub struct Throttle {
    scope: &'static str,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl Throttle {
    pub fn new(scope: &'static str) -> Throttle {
        Throttle {
            scope,
            failures: Mutex::default(),
        }
    }

    fn keys(&self, name: &str, ip: IpAddr) -> [String; 2] {
        [format!("{}:{name}", self.scope), format!("ip:{ip}")]
    }

    /// Whether a login for `name` from `ip` may be tried now.
    pub fn allowed(&self, name: &str, ip: IpAddr) -> bool {
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        self.keys(name, ip).iter().all(|k| match map.get(k) {
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
        for k in self.keys(name, ip) {
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
            .remove(&format!("{}:{name}", self.scope));
    }
}

/// An operator with a live session; pages redirect to the login otherwise.
pub struct Operator {
    pub session: Session<SeatLogin>,
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

/// A login page: where it posts, what it asks for, where its cookies live.
pub struct LoginPage {
    /// Which surface, in log lines ("console", "portal").
    pub surface: &'static str,
    pub title: &'static str,
    pub action: &'static str,
    /// The user name field's name and id.
    pub user_field: &'static str,
    pub user_label: &'static str,
    pub user_type: &'static str,
    /// Path of the session and login cookies.
    pub cookie_path: &'static str,
    /// The login form's CSRF cookie (double submit: the form carries the same value).
    pub login_cookie: &'static str,
    /// The message for a wrong name or password.
    pub wrong: &'static str,
}

pub const CONSOLE_LOGIN: LoginPage = LoginPage {
    surface: "console",
    title: "smartdesk オペレーター コンソール",
    action: "/console/login",
    user_field: "seat",
    user_label: "席名（ユーザー名）",
    user_type: "text",
    cookie_path: "/console",
    login_cookie: LOGIN_COOKIE,
    wrong: "席名またはパスワードが違います。",
};

/// The refusal of a throttled login (issue #8 §1: lockout with a clear message).
pub const LOCKED_OUT: &str =
    "ログインの失敗が続いたため、しばらくログインできません。15分ほど待ってからお試しください。";

impl LoginPage {
    fn form(&self, csrf: &str, error: Option<&str>) -> String {
        let err = error
            .map(|e| {
                format!(
                    "<p class=\"error\" role=\"alert\" id=\"login-error\">{}</p>",
                    esc(e)
                )
            })
            .unwrap_or_default();
        format!(
            "<main class=\"login\"><h1>{title}</h1>{err}\
             <form method=\"post\" action=\"{action}\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"{f}\">{label}</label>\
             <input id=\"{f}\" name=\"{f}\" type=\"{ty}\" autocomplete=\"username\" required autofocus>\
             <label for=\"password\">パスワード</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
             <button type=\"submit\" id=\"login\">ログイン</button></form></main>",
            title = esc(self.title),
            action = self.action,
            f = self.user_field,
            label = esc(self.user_label),
            ty = self.user_type,
        )
    }

    /// The login page with a fresh login CSRF token (double submit: cookie and field).
    pub fn response(&self, status: StatusCode, error: Option<&str>) -> Response {
        let csrf = token();
        let mut r = html_page(
            &format!("ログイン - {}", self.title),
            &self.form(&csrf, error),
        );
        *r.status_mut() = status;
        if let Ok(v) = format!(
            "{}={csrf}; Path={}; HttpOnly; SameSite=Strict",
            self.login_cookie, self.cookie_path
        )
        .parse()
        {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    }

    /// What every login checks before looking the user up: the login form's CSRF token and
    /// the throttle. `Err` is the page to answer with.
    #[allow(clippy::result_large_err)]
    pub fn precheck(
        &self,
        throttle: &Throttle,
        headers: &HeaderMap,
        form_csrf: &str,
        name: &str,
        ip: IpAddr,
    ) -> Result<(), Response> {
        let csrf_cookie = cookie(headers, self.login_cookie).unwrap_or_default();
        if form_csrf.is_empty() || !same_token(form_csrf, &csrf_cookie) {
            return Err(self.response(
                StatusCode::FORBIDDEN,
                Some("ページの有効期限が切れました。もう一度ログインしてください。"),
            ));
        }
        if !throttle.allowed(name, ip) {
            tracing::warn!(login = %name, client = %ip, "{} login throttled", self.surface);
            return Err(self.response(StatusCode::TOO_MANY_REQUESTS, Some(LOCKED_OUT)));
        }
        Ok(())
    }

    pub fn unavailable(&self) -> Response {
        self.response(
            StatusCode::SERVICE_UNAVAILABLE,
            Some("ただいまログインできません。しばらくしてからお試しください。"),
        )
    }

    /// The whole check of a login form: CSRF pair, throttle, `lookup` (the user and its
    /// stored PHC string, if any), password (timing the same for unknown users). `Err` is
    /// the page to answer with; a failure is counted and logged.
    #[allow(clippy::result_large_err, clippy::too_many_arguments)]
    pub async fn authenticate<T>(
        &self,
        throttle: &Throttle,
        headers: &HeaderMap,
        form_csrf: &str,
        name: &str,
        ip: IpAddr,
        password: String,
        lookup: impl std::future::Future<
            Output = Result<Option<(T, Option<String>)>, crate::ledger::LedgerError>,
        >,
    ) -> Result<T, Response> {
        self.precheck(throttle, headers, form_csrf, name, ip)?;
        let found = match lookup.await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "{} login: ledger unavailable", self.surface);
                return Err(self.unavailable());
            }
        };
        let (who, phc) = match found {
            Some((who, phc)) => (Some(who), phc),
            None => (None, None),
        };
        // Verified even for unknown users (against a dummy hash): the answer time does not
        // tell which names exist.
        let ok = verify_password(password, phc).await;
        match who {
            Some(w) if ok => {
                throttle.succeeded(name);
                Ok(w)
            }
            _ => Err(self.failed(throttle, name, ip)),
        }
    }

    /// A failed login: counted, logged, answered.
    pub fn failed(&self, throttle: &Throttle, name: &str, ip: IpAddr) -> Response {
        throttle.failed(name, ip);
        tracing::info!(login = %name, client = %ip, "{} login failed", self.surface);
        self.response(StatusCode::UNAUTHORIZED, Some(self.wrong))
    }

    /// A redirect that sets (or with `None` clears) the session cookie.
    pub fn with_session(&self, to: &str, session_cookie: &str, token: Option<&str>) -> Response {
        let mut r = Redirect::to(to).into_response();
        let v = match token {
            Some(t) => format!(
                "{session_cookie}={t}; Path={}; HttpOnly; SameSite=Strict",
                self.cookie_path
            ),
            None => format!(
                "{session_cookie}=; Path={}; HttpOnly; SameSite=Strict; Max-Age=0",
                self.cookie_path
            ),
        };
        if let Ok(v) = v.parse() {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
        r
    }
}

/// Verifies a password against the stored PHC string, or against a dummy hash when there
/// is none, so the answer time does not tell which names exist.
pub async fn verify_password(password: String, phc: Option<String>) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let real = phc.is_some();
    let phc = phc.unwrap_or_else(|| {
        DUMMY
            .get_or_init(|| crate::password::hash("no such user, no password").unwrap_or_default())
            .clone()
    });
    let ok = tokio::task::spawn_blocking(move || crate::password::verify(&password, &phc))
        .await
        .unwrap_or(false);
    ok && real
}

pub async fn login_page() -> Response {
    CONSOLE_LOGIN.response(StatusCode::OK, None)
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
    let page = &CONSOLE_LOGIN;
    let ledger = &state.daemon.ledger;
    let lookup = async {
        let seat = ledger.seat_by_name(&name).await?;
        Ok(seat.map(|s| {
            let phc = s.web_password.clone();
            (s, phc)
        }))
    };
    let seat = match page
        .authenticate(
            &state.throttle,
            &headers,
            &f.csrf,
            &name,
            ip,
            f.password,
            lookup,
        )
        .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let t = state.sessions.create(SeatLogin {
        seat_id: seat.id,
        seat: seat.name.clone(),
    });
    tracing::info!(seat = %seat.name, client = %ip, "console login");
    page.with_session("/console", SESSION_COOKIE, Some(&t))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
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
    CONSOLE_LOGIN.with_session("/console/login", SESSION_COOKIE, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle() {
        let s = Sessions::new(Duration::from_millis(50));
        let t = s.create(SeatLogin {
            seat_id: 1,
            seat: "op1".into(),
        });
        assert_eq!(s.get(&t).map(|x| x.seat_id), Some(1));
        assert!(s.get("nope").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&t).is_none());
    }

    #[test]
    fn throttle_after_five_failures() {
        let th = Throttle::new("seat");
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
