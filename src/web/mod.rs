//! The web edge (issue #7 §1): the operator console at `/console`, the contractor portal
//! at `/portal` and the admin view at `/admin` (issue #8, see `portal`). Server-rendered pages, a little JavaScript, live call updates
//! over Server-Sent Events.
//!
//! Security (issue #7 §4): operators log in with the seat name and its argon2-hashed web
//! password; sessions live in memory (a restart logs everyone out), end after
//! `web.session_idle_minutes` idle and after [`SESSION_MAX`] in any case; every state change
//! carries the session's CSRF token (form field or `X-CSRF-Token` header) and the cookie is
//! `SameSite=Strict; HttpOnly`; failed logins are throttled per seat name and per client
//! address; an operator sees only the call at their own seat and the records they wrote or
//! of calls they answered within `web.records_hours`. Callers' numbers and names are never
//! logged at info. TLS: terminate it in front (README).

mod assets;
mod auth;
mod console;
mod phone;
mod portal;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};

use crate::daemon::requests::CoreHandle;
use crate::daemon::seat_feed::SeatCalls;
use crate::daemon::Daemon;

pub use auth::SESSION_MAX;

/// Largest request body accepted (a record is a few KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// What every handler shares.
pub struct AppState {
    pub daemon: Arc<Daemon>,
    pub core: CoreHandle,
    pub seats: watch::Receiver<SeatCalls>,
    /// Wakes the report worker when a record queued reports.
    pub reports_wake: Arc<Notify>,
    sessions: auth::Sessions<auth::SeatLogin>,
    throttle: auth::Throttle,
    /// Portal and admin-view sessions (issue #8).
    portal_sessions: auth::Sessions<portal::PortalLogin>,
    portal_throttle: auth::Throttle,
    /// Pause state shown on the console, per seat (the ACD owns the real one).
    paused: std::sync::Mutex<std::collections::HashMap<i64, String>>,
    /// Browser phone sessions (issue #11), one per seat.
    phones: Arc<crate::daemon::browser_seat::Phones>,
}

pub type State = Arc<AppState>;

impl AppState {
    pub fn new(
        daemon: Arc<Daemon>,
        core: CoreHandle,
        seats: watch::Receiver<SeatCalls>,
        reports_wake: Arc<Notify>,
    ) -> State {
        let idle = std::time::Duration::from_secs(daemon.config.web.session_idle_minutes * 60);
        Arc::new(AppState {
            daemon,
            core,
            seats,
            reports_wake,
            sessions: auth::Sessions::new(idle),
            throttle: auth::Throttle::new("seat"),
            portal_sessions: auth::Sessions::new(idle),
            portal_throttle: auth::Throttle::new("user"),
            paused: Default::default(),
            phones: Arc::default(),
        })
    }
}

pub fn router(state: State) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(console::page))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/events", get(console::events))
        .route(
            "/console/records",
            get(console::records).post(console::submit),
        )
        .route("/console/pause", post(console::pause))
        .route("/console/phone", post(phone::start))
        .route("/console/resume", post(console::resume))
        .route("/console/app.js", get(assets::js))
        .route("/console/app.css", get(assets::css))
        .route("/portal", get(portal::index))
        .route("/portal/login", get(portal::login_page).post(portal::login))
        .route("/portal/logout", post(portal::logout))
        .route(
            "/portal/password",
            get(portal::password_form).post(portal::change_password),
        )
        .route("/portal/password/done", get(portal::password_done))
        .route("/portal/{cid}/calls", get(portal::calls))
        .route("/portal/{cid}/calls.csv", get(portal::calls_csv))
        .route("/portal/{cid}/calls/{id}", get(portal::call))
        .route("/portal/{cid}/records", get(portal::records))
        .route("/portal/{cid}/records/{id}", get(portal::record))
        .route("/portal/{cid}/recordings/{call}", get(portal::recording))
        .route("/portal/{cid}/bill", get(portal::bill))
        .route("/portal/{cid}/bill.csv", get(portal::bill_csv))
        .route("/portal/{cid}/bill/{month}", get(portal::bill_month))
        .route("/portal/{cid}/settings", get(portal::settings))
        .route(
            "/portal/{cid}/settings/channels",
            post(portal::save_channels),
        )
        .route("/portal/{cid}/settings/test", post(portal::send_test))
        .route("/portal/{cid}/settings/hearing", post(portal::save_hearing))
        .route("/admin", get(portal::admin))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CACHE_CONTROL, "no-store");
    r
}

/// Serves until aborted.
pub async fn serve(listener: TcpListener, state: State) {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!(error = %e, "web server stopped");
    }
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A full HTML page.
fn html_page(title: &str, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"ja\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><link rel=\"stylesheet\" href=\"/console/app.css\"></head>\
         <body>{body}</body></html>",
        esc(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
}

/// A cookie's value from the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn cookies() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sd_session=abc; b=2"),
        );
        assert_eq!(cookie(&h, "sd_session").as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
