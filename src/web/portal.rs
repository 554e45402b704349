//! The contractor portal at `/portal` and the admin view at `/admin` (issue #8).
//!
//! Every contractor page lives under `/portal/{contractor id}/…`; a contractor user may open
//! only its own contractor's, an admin any. Each row asked for by id (call, record,
//! recording) must also belong to the contractor of the path. Refusals answer 403 (another
//! contractor) or 404 (a row not of this contractor) and are logged at warn with the user
//! and what was asked. Bills come from [`crate::bills`], the code `smartdesk bill` runs.

// Checks return the refusal page itself as their error (`Result<_, Response>`), answered at
// once by the handler: its size does not matter on this path.
#![allow(clippy::result_large_err)]

use std::fmt::Write as _;

/// The value, or the refusal page returned from the handler.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State as AxState};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::Deserialize;

use super::auth::{self, verify_password, LoginPage, Session};
use super::{cookie, esc, html_page, State};
use crate::billing::{Statement, Usage, YearMonth};
use crate::bills::{contractor_statement, tokyo_midnight};
use crate::ledger::{CallFilter, CallView, Contractor, RecordFilter, RecordView};
use crate::reports::{self, category_label, display_number, Report};

/// The portal's session cookie (Path=/ : the portal and the admin view share it).
const COOKIE: &str = "sd_portal";
/// Longest date range of the call log (and its CSV): a year.
const MAX_RANGE_DAYS: i64 = 366;
/// Calls listed on one call-log page at most (the CSV has every call of the range).
const MAX_ROWS_SHOWN: usize = 2000;
/// Past statements listed at most (ten years).
const MAX_STATEMENTS: usize = 120;
/// Largest recording served (a message is minutes of 8 kHz audio: well under this).
const MAX_RECORDING: u64 = 64 * 1024 * 1024;
/// Recent reports shown on the settings page.
const RECENT_REPORTS: i64 = 10;

pub const PORTAL_LOGIN: LoginPage = LoginPage {
    surface: "portal",
    title: "smartdesk 契約者ページ",
    action: "/portal/login",
    user_field: "email",
    user_label: "メールアドレス（管理者は管理者名）",
    user_type: "text",
    cookie_path: "/",
    login_cookie: "sd_portal_login",
    wrong: "メールアドレスまたはパスワードが違います。",
};

/// Who a portal session belongs to: a contractor's user or an admin (`contractor_id` None).
#[derive(Debug, Clone)]
pub struct PortalLogin {
    pub user_id: i64,
    pub login: String,
    pub contractor_id: Option<i64>,
    /// Logged in with the one-time password: only the password page is open.
    pub must_change: bool,
    /// Fingerprint of the password hash the session was opened with (not the hash itself):
    /// a reset or removal of the account in the ledger ends the session at its next request.
    pub credential: u64,
}

/// A process-local fingerprint of a stored password hash (sessions live in memory only).
fn credential_of(phc: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    phc.hash(&mut h);
    h.finish()
}

/// A logged-in portal user or admin.
pub struct PortalUser {
    pub session: Session<PortalLogin>,
    pub token: String,
}

pub struct NotLoggedIn(bool);

impl IntoResponse for NotLoggedIn {
    fn into_response(self) -> Response {
        if self.0 {
            Redirect::to("/portal/login").into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                "ログインの有効期限が切れました。再度ログインしてください。",
            )
                .into_response()
        }
    }
}

impl FromRequestParts<State> for PortalUser {
    type Rejection = Response;

    /// The session of the request's cookie, checked against the ledger on every request: an
    /// account removed (`contractor user remove`, `admin remove`) or reset since the login
    /// (`… reset`: a forgotten or leaked password) ends the session here.
    async fn from_request_parts(parts: &mut Parts, state: &State) -> Result<Self, Self::Rejection> {
        let page = parts.method == axum::http::Method::GET;
        let out = || NotLoggedIn(page).into_response();
        let token = cookie(&parts.headers, COOKIE).ok_or_else(out)?;
        let session = state.portal_sessions.get(&token).ok_or_else(out)?;
        match state.daemon.ledger.web_user(session.user_id).await {
            Ok(Some(u))
                if credential_of(&u.password) == session.credential
                    && u.contractor_id == session.contractor_id =>
            {
                Ok(PortalUser { session, token })
            }
            Ok(_) => {
                state.portal_sessions.remove(&token);
                tracing::info!(
                    user = %session.login,
                    "portal session ended: the account was removed or its password reset"
                );
                Err(out())
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl PortalUser {
    fn is_admin(&self) -> bool {
        self.session.contractor_id.is_none()
    }

    fn csrf_ok(&self, form_value: &str) -> bool {
        auth::same_token(form_value, &self.session.csrf)
    }

    /// May this user see contractor `cid`? Refusals are logged.
    fn allow(&self, cid: i64, what: &str) -> Result<(), Response> {
        if self.session.must_change {
            return Err(Redirect::to("/portal/password").into_response());
        }
        if self.is_admin() || self.session.contractor_id == Some(cid) {
            return Ok(());
        }
        tracing::warn!(
            user = %self.session.login,
            own_contractor = ?self.session.contractor_id,
            asked_contractor = cid,
            what,
            "portal: refused another contractor's data"
        );
        Err(refused(StatusCode::FORBIDDEN))
    }

    /// A row of another contractor asked for under this contractor's path.
    fn not_ours(&self, cid: i64, what: &str, id: i64) -> Response {
        tracing::warn!(
            user = %self.session.login,
            contractor = cid,
            what,
            id,
            "portal: refused a row of another contractor"
        );
        refused(StatusCode::NOT_FOUND)
    }
}

fn refused(status: StatusCode) -> Response {
    let mut r = html_page(
        "表示できません - smartdesk",
        "<main><h1 id=\"refused\">表示できません</h1>\
         <p>このページを表示する権限がないか、ページが見つかりません。</p>\
         <p><a href=\"/portal\">契約者ページへ</a></p></main>",
    );
    *r.status_mut() = status;
    r
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "portal: ledger unavailable");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "ただいま表示できません。しばらくしてからお試しください。",
    )
        .into_response()
}

fn bad_input(field: &str, msg: &str) -> Response {
    let mut r = html_page(
        "入力エラー - smartdesk",
        &format!(
            "<main><h1>入力エラー</h1><p class=\"error\" role=\"alert\" id=\"input-error\">{}: {}</p>\
             <p><a href=\"/portal\">戻る</a></p></main>",
            esc(field),
            esc(msg)
        ),
    );
    *r.status_mut() = StatusCode::BAD_REQUEST;
    r
}

fn tokyo(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y/%m/%d %H:%M:%S")
        .to_string()
}

fn today(state: &State) -> NaiveDate {
    state
        .daemon
        .clock
        .now()
        .with_timezone(&chrono_tz::Asia::Tokyo)
        .date_naive()
}

fn yen(n: i64) -> String {
    crate::billing::format_yen(n)
}

pub fn outcome_label(o: Option<&str>) -> &str {
    match o {
        None => "通話中",
        Some("answered") => "応答",
        Some("abandoned") => "応答前に切断",
        Some("overflow") => "伝言",
        Some("out_of_hours") => "時間外",
        Some("suspended") => "停止中",
        Some("not_in_contract") => "契約外",
        Some("fax") => "FAX",
        Some("failed") => "接続失敗",
        Some(other) => other,
    }
}

/// Seconds the caller waited (until answered, or until the call ended unanswered) and
/// seconds talked.
fn wait_and_talk(c: &CallView) -> (Option<i64>, Option<i64>) {
    let wait = c
        .answered_at
        .or(c.ended_at)
        .map(|t| (t - c.started_at).num_seconds().max(0));
    let talk = match (c.answered_at, c.ended_at) {
        (Some(a), Some(e)) => Some((e - a).num_seconds().max(0)),
        _ => None,
    };
    (wait, talk)
}

fn secs(s: Option<i64>) -> String {
    match s {
        Some(s) if s >= 60 => format!("{}分{:02}秒", s / 60, s % 60),
        Some(s) => format!("{s}秒"),
        None => "—".to_owned(),
    }
}

/// The page frame: title, navigation for contractor `cid`, body.
fn page(u: &PortalUser, c: &Contractor, title: &str, body: &str) -> Response {
    let cid = c.id;
    let admin = if u.is_admin() {
        "<a href=\"/admin\" id=\"nav-admin\">管理者画面</a>"
    } else {
        ""
    };
    html_page(
        &format!("{title} - {}", c.name),
        &format!(
            "<header class=\"bar portal\"><h1>{name} 様</h1><nav>\
             <a href=\"/portal/{cid}/calls\" id=\"nav-calls\">通話ログ</a>\
             <a href=\"/portal/{cid}/records\" id=\"nav-records\">対応記録・伝言</a>\
             <a href=\"/portal/{cid}/bill\" id=\"nav-bill\">ご請求</a>\
             <a href=\"/portal/{cid}/settings\" id=\"nav-settings\">設定</a>\
             <a href=\"/portal/password\" id=\"nav-password\">パスワード変更</a>{admin}</nav>\
             {logout}</header><main class=\"portal\"><h2>{t}</h2>{body}</main>",
            name = esc(&c.name),
            t = esc(title),
            logout = logout_form(u),
        ),
    )
}

fn logout_form(u: &PortalUser) -> String {
    format!(
        "<form method=\"post\" action=\"/portal/logout\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" id=\"logout\">ログアウト</button></form>",
        esc(&u.session.csrf)
    )
}

async fn contractor(state: &State, cid: i64) -> Result<Contractor, Response> {
    match state.daemon.ledger.contractor(cid).await {
        Ok(c) => Ok(c),
        Err(crate::ledger::LedgerError::NotFound { .. }) => Err(refused(StatusCode::NOT_FOUND)),
        Err(e) => Err(unavailable(e)),
    }
}

/// [`open`] for a form post: also checks the session's CSRF token.
async fn open_post(
    state: &State,
    u: &PortalUser,
    cid: i64,
    what: &str,
    csrf: &str,
) -> Result<Contractor, Response> {
    let c = open(state, u, cid, what).await?;
    if !u.csrf_ok(csrf) {
        return Err((StatusCode::FORBIDDEN, "CSRF token mismatch").into_response());
    }
    Ok(c)
}

/// Access check and the contractor of the path.
async fn open(state: &State, u: &PortalUser, cid: i64, what: &str) -> Result<Contractor, Response> {
    u.allow(cid, what)?;
    contractor(state, cid).await
}

// ------------------------------------------------------------------ login

pub async fn login_page() -> Response {
    PORTAL_LOGIN.response(StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

pub async fn login(
    AxState(state): AxState<State>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let ip = peer.ip();
    let name: String = f.email.trim().to_lowercase().chars().take(254).collect();
    let pg = &PORTAL_LOGIN;
    let ledger = &state.daemon.ledger;
    let lookup = async {
        let user = ledger.web_user_by_login(&name).await?;
        Ok(user.map(|u| {
            let phc = Some(u.password.clone());
            (u, phc)
        }))
    };
    let user = tri!(
        pg.authenticate(
            &state.portal_throttle,
            &headers,
            &f.csrf,
            &name,
            ip,
            f.password,
            lookup
        )
        .await
    );
    let t = state.portal_sessions.create(PortalLogin {
        user_id: user.id,
        login: user.login.clone(),
        contractor_id: user.contractor_id,
        must_change: user.must_change,
        credential: credential_of(&user.password),
    });
    tracing::info!(user = %user.login, role = %user.role, client = %ip, "portal login");
    let to = if user.must_change {
        "/portal/password".to_owned()
    } else {
        home(user.contractor_id)
    };
    pg.with_session(&to, COOKIE, Some(&t))
}

fn home(contractor_id: Option<i64>) -> String {
    match contractor_id {
        Some(c) => format!("/portal/{c}/calls"),
        None => "/admin".to_owned(),
    }
}

pub async fn index(u: PortalUser) -> Response {
    if u.session.must_change {
        return Redirect::to("/portal/password").into_response();
    }
    Redirect::to(&home(u.session.contractor_id)).into_response()
}

pub async fn logout(
    AxState(state): AxState<State>,
    u: PortalUser,
    Form(f): Form<auth::CsrfForm>,
) -> Response {
    if !u.csrf_ok(&f.csrf) {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
    }
    state.portal_sessions.remove(&u.token);
    tracing::info!(user = %u.session.login, "portal logout");
    PORTAL_LOGIN.with_session("/portal/login", COOKIE, None)
}

// ------------------------------------------------------------------ password

fn password_page(u: &PortalUser, status: StatusCode, msg: Option<(&str, &str)>) -> Response {
    let note = if u.session.must_change {
        "<p id=\"must-change\">初回ログインです。お送りした一時パスワードを新しいパスワードに変更してください。</p>"
    } else {
        ""
    };
    let msg = msg
        .map(|(class, m)| {
            format!(
                "<p class=\"{class}\" role=\"alert\" id=\"password-msg\">{}</p>",
                esc(m)
            )
        })
        .unwrap_or_default();
    let back = if u.session.must_change {
        String::new()
    } else {
        format!(
            "<p><a href=\"{}\">戻る</a></p>",
            home(u.session.contractor_id)
        )
    };
    let mut r = html_page(
        "パスワード変更 - smartdesk",
        &format!(
            "<main class=\"login\"><h1>パスワード変更</h1>{note}{msg}\
             <form method=\"post\" action=\"/portal/password\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"current\">現在のパスワード</label>\
             <input id=\"current\" name=\"current\" type=\"password\" autocomplete=\"current-password\" required>\
             <label for=\"new\">新しいパスワード（{min}文字以上）</label>\
             <input id=\"new\" name=\"new\" type=\"password\" autocomplete=\"new-password\" required>\
             <label for=\"confirm\">新しいパスワード（確認）</label>\
             <input id=\"confirm\" name=\"confirm\" type=\"password\" autocomplete=\"new-password\" required>\
             <button type=\"submit\" id=\"change\">変更する</button></form>{back}{logout}</main>",
            csrf = esc(&u.session.csrf),
            min = crate::password::MIN_WEB_PASSWORD_LEN,
            logout = logout_form(u),
        ),
    );
    *r.status_mut() = status;
    r
}

pub async fn password_form(u: PortalUser) -> Response {
    password_page(&u, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    new: String,
    #[serde(default)]
    confirm: String,
}

pub async fn change_password(
    AxState(state): AxState<State>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    u: PortalUser,
    Form(f): Form<PasswordForm>,
) -> Response {
    if !u.csrf_ok(&f.csrf) {
        return (StatusCode::FORBIDDEN, "CSRF token mismatch").into_response();
    }
    let ip = peer.ip();
    let th = &state.portal_throttle;
    if !th.allowed(&u.session.login, ip) {
        return password_page(
            &u,
            StatusCode::TOO_MANY_REQUESTS,
            Some(("error", auth::LOCKED_OUT)),
        );
    }
    let ledger = &state.daemon.ledger;
    let stored = match ledger.web_user(u.session.user_id).await {
        Ok(Some(s)) => s,
        Ok(None) => return refused(StatusCode::FORBIDDEN),
        Err(e) => return unavailable(e),
    };
    if !verify_password(f.current, Some(stored.password)).await {
        th.failed(&u.session.login, ip);
        tracing::info!(user = %u.session.login, client = %ip, "portal: password change with a wrong password");
        return password_page(
            &u,
            StatusCode::UNAUTHORIZED,
            Some(("error", "現在のパスワードが違います。")),
        );
    }
    if f.new != f.confirm {
        return password_page(
            &u,
            StatusCode::BAD_REQUEST,
            Some(("error", "新しいパスワード（確認）が一致しません。")),
        );
    }
    let new = f.new;
    let phc = match tokio::task::spawn_blocking(move || crate::password::hash(&new)).await {
        Ok(Ok(p)) => p,
        Ok(Err(crate::password::PasswordError::TooShort)) => {
            return password_page(
                &u,
                StatusCode::BAD_REQUEST,
                Some((
                    "error",
                    &format!(
                        "新しいパスワード: {}文字以上にしてください。",
                        crate::password::MIN_WEB_PASSWORD_LEN
                    ),
                )),
            )
        }
        Ok(Err(e)) => return unavailable(e),
        Err(e) => return unavailable(e),
    };
    if let Err(e) = ledger
        .set_web_password(u.session.user_id, &phc, false)
        .await
    {
        return unavailable(e);
    }
    // Other sessions of this user end; this one goes on.
    let (uid, me) = (u.session.user_id, u.token.clone());
    let keep = state.portal_sessions.get(&me);
    state.portal_sessions.remove_where(|p| p.user_id == uid);
    let t = match keep {
        Some(mut s) => {
            s.who.must_change = false;
            s.who.credential = credential_of(&phc);
            state.portal_sessions.create(s.who)
        }
        None => return Redirect::to("/portal/login").into_response(),
    };
    tracing::info!(user = %u.session.login, "portal password changed");
    PORTAL_LOGIN.with_session("/portal/password/done", COOKIE, Some(&t))
}

pub async fn password_done(u: PortalUser) -> Response {
    let mut r = password_page(
        &u,
        StatusCode::OK,
        Some(("ok", "パスワードを変更しました。")),
    );
    *r.status_mut() = StatusCode::OK;
    r
}

// ------------------------------------------------------------------ call log

#[derive(Deserialize, Default)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The date range asked for (inclusive days, Asia/Tokyo); default: this month so far.
fn range(state: &State, q: &RangeQuery) -> Result<(NaiveDate, NaiveDate), Response> {
    let today = today(state);
    let parse =
        |field: &str, v: &Option<String>, default: NaiveDate| match v.as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| bad_input(field, "日付は YYYY-MM-DD で指定してください")),
        };
    let from = parse("from", &q.from, YearMonth::of(today).first_day())?;
    let to = parse("to", &q.to, today)?;
    if to < from {
        return Err(bad_input("to", "終了日が開始日より前です"));
    }
    if (to - from).num_days() >= MAX_RANGE_DAYS {
        return Err(bad_input("to", "期間は1年以内で指定してください"));
    }
    Ok((from, to))
}

fn bounds(from: NaiveDate, to: NaiveDate) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    Some((tokyo_midnight(from)?, tokyo_midnight(to.succ_opt()?)?))
}

async fn calls_in(
    state: &State,
    cid: i64,
    q: &RangeQuery,
) -> Result<(NaiveDate, NaiveDate, Vec<CallView>), Response> {
    let (from, to) = range(state, q)?;
    let (a, b) = bounds(from, to).ok_or_else(|| bad_input("from", "範囲外の日付です"))?;
    let calls = state
        .daemon
        .ledger
        .calls(&CallFilter {
            from: Some(a),
            to: Some(b),
            contractor_id: Some(cid),
        })
        .await
        .map_err(unavailable)?;
    Ok((from, to, calls))
}

fn range_form(action: &str, from: NaiveDate, to: NaiveDate) -> String {
    format!(
        "<form method=\"get\" action=\"{action}\" class=\"range\">\
         <label for=\"from\">開始日</label><input id=\"from\" name=\"from\" type=\"date\" value=\"{from}\">\
         <label for=\"to\">終了日</label><input id=\"to\" name=\"to\" type=\"date\" value=\"{to}\">\
         <button type=\"submit\" id=\"filter\">表示</button></form>"
    )
}

pub async fn calls(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path(cid): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let c = tri!(open(&state, &u, cid, "calls").await);
    let (from, to, calls) = tri!(calls_in(&state, cid, &q).await);
    let mut rows = String::new();
    for call in calls.iter().rev().take(MAX_ROWS_SHOWN) {
        let (wait, talk) = wait_and_talk(call);
        let _ = write!(
            rows,
            "<tr id=\"call-{id}\"><td><a href=\"/portal/{cid}/calls/{id}\">{at}</a></td>\
             <td class=\"caller\">{caller}</td><td>{outcome}</td><td class=\"billable\">{billable}</td>\
             <td>{wait}</td><td>{talk}</td></tr>",
            id = call.id,
            at = tokyo(call.started_at),
            caller = esc(&display_number(call.caller.as_deref())),
            outcome = esc(outcome_label(call.outcome.as_deref())),
            billable = if call.billable { "対象" } else { "対象外" },
            wait = secs(wait),
            talk = secs(talk),
        );
    }
    let billable = calls.iter().filter(|c| c.billable).count();
    let body = format!(
        "{form}<p id=\"calls-summary\">{from} 〜 {to}：<span id=\"calls-count\">{n}</span>件\
         （請求対象 <span id=\"calls-billable\">{billable}</span>件）\
         <a id=\"calls-csv\" href=\"/portal/{cid}/calls.csv?from={from}&amp;to={to}\" download>CSVダウンロード</a></p>\
         <div class=\"scroll\"><table id=\"calls-table\"><thead><tr><th>着信日時</th><th>発信者番号</th>\
         <th>結果</th><th>請求</th><th>待ち時間</th><th>通話時間</th></tr></thead><tbody>{rows}</tbody></table></div>{more}",
        form = range_form(&format!("/portal/{cid}/calls"), from, to),
        more = if calls.len() > MAX_ROWS_SHOWN {
            format!("<p class=\"note\">新しい順に{MAX_ROWS_SHOWN}件を表示しています。すべての通話はCSVでご覧ください。</p>")
        } else {
            String::new()
        },
        n = calls.len(),
    );
    page(&u, &c, "通話ログ", &body)
}

/// One CSV field (RFC 4180), with a leading `'` against spreadsheet formula injection.
fn csv_field(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        // A BOM so that spreadsheet software reads the Japanese as UTF-8.
        format!("\u{feff}{body}"),
    )
        .into_response()
}

pub async fn calls_csv(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path(cid): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> Response {
    if let Err(r) = open(&state, &u, cid, "calls.csv").await {
        return r;
    }
    let (from, to, calls) = tri!(calls_in(&state, cid, &q).await);
    let mut out = String::from("call_id,started_at_jst,caller,outcome,billable,wait_s,talk_s\n");
    for call in &calls {
        let (wait, talk) = wait_and_talk(call);
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{}",
            call.id,
            csv_field(&tokyo(call.started_at)),
            csv_field(&display_number(call.caller.as_deref())),
            csv_field(call.outcome.as_deref().unwrap_or("in_progress")),
            if call.billable { 1 } else { 0 },
            wait.map(|w| w.to_string()).unwrap_or_default(),
            talk.map(|t| t.to_string()).unwrap_or_default(),
        );
    }
    csv_response(&format!("calls-{cid}-{from}-{to}.csv"), out)
}

pub async fn call(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path((cid, id)): Path<(i64, i64)>,
) -> Response {
    let c = tri!(open(&state, &u, cid, "call").await);
    let ledger = &state.daemon.ledger;
    let call = match ledger.call_by_id(id).await {
        Ok(Some(call)) if call.contractor_id == Some(cid) => call,
        Ok(_) => return u.not_ours(cid, "call", id),
        Err(e) => return unavailable(e),
    };
    let records = match ledger
        .first_responses(&RecordFilter {
            call_id: Some(id),
            contractor_id: Some(cid),
            ..RecordFilter::default()
        })
        .await
    {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let message = match ledger.voice_message(id).await {
        Ok(m) => m,
        Err(e) => return unavailable(e),
    };
    let (wait, talk) = wait_and_talk(&call);
    let mut body = format!(
        "<dl class=\"facts\" id=\"call-facts\"><dt>着信日時</dt><dd>{at}</dd>\
         <dt>発信者番号</dt><dd id=\"call-caller\">{caller}</dd><dt>着信番号</dt><dd>{number}</dd>\
         <dt>結果</dt><dd id=\"call-outcome\">{outcome}</dd><dt>請求</dt><dd>{billable}</dd>\
         <dt>待ち時間</dt><dd>{wait}</dd><dt>通話時間</dt><dd>{talk}</dd></dl>",
        at = tokyo(call.started_at),
        caller = esc(&display_number(call.caller.as_deref())),
        number = esc(&display_number(Some(&call.number))),
        outcome = esc(outcome_label(call.outcome.as_deref())),
        billable = if call.billable { "対象" } else { "対象外" },
        wait = secs(wait),
        talk = secs(talk),
    );
    if let Some(m) = message {
        body.push_str(&audio(cid, m.call_id, m.duration_ms));
    }
    for r in &records {
        body.push_str(&record_html(cid, r));
    }
    page(&u, &c, "通話の詳細", &body)
}

// ------------------------------------------------------------------ records and messages

fn audio(cid: i64, call: i64, duration_ms: i64) -> String {
    format!(
        "<div class=\"message\" id=\"message-{call}\"><p>伝言（{}）</p>\
         <audio controls preload=\"none\" src=\"/portal/{cid}/recordings/{call}\"></audio></div>",
        secs(Some(duration_ms / 1000))
    )
}

fn record_html(cid: i64, r: &RecordView) -> String {
    let mut hearing = String::new();
    if let Some(items) = r.hearing_answers.as_array() {
        for a in items {
            let _ = write!(
                hearing,
                "<dt>{}</dt><dd>{}</dd>",
                esc(a["item"].as_str().unwrap_or("")),
                esc(a["answer"].as_str().unwrap_or(""))
            );
        }
    }
    let state = if r.superseded_by.is_some() {
        "（訂正前）"
    } else if r.supersedes.is_some() {
        "（訂正）"
    } else {
        ""
    };
    format!(
        "<article class=\"record\" id=\"record-{id}\"><h3><a href=\"/portal/{cid}/records/{id}\">{at}</a> \
         {caller}{state}</h3><dl class=\"facts\"><dt>お名前・会社名</dt><dd class=\"caller-name\">{name}</dd>\
         <dt>折り返し</dt><dd>{cb}</dd><dt>用件</dt><dd class=\"purpose\">{purpose}</dd>\
         <dt>分類</dt><dd>{cat}</dd>{hearing}<dt>対応</dt><dd>{by}（{written}）</dd></dl></article>",
        id = r.id,
        at = tokyo(r.call_started_at),
        caller = esc(&display_number(r.caller.as_deref())),
        name = esc(&r.caller_name),
        cb = if r.callback_wanted {
            format!(
                "要（{}）",
                esc(r.callback_number.as_deref().unwrap_or("番号なし"))
            )
        } else {
            "不要".to_owned()
        },
        purpose = esc(&r.purpose),
        cat = category_label(&r.category),
        by = esc(r.seat.as_deref().unwrap_or(&r.written_by)),
        written = tokyo(r.created_at),
    )
}

pub async fn records(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path(cid): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let c = tri!(open(&state, &u, cid, "records").await);
    let (from, to) = tri!(range(&state, &q));
    let Some((a, b)) = bounds(from, to) else {
        return bad_input("from", "範囲外の日付です");
    };
    let ledger = &state.daemon.ledger;
    let list = match ledger
        .first_responses(&RecordFilter {
            contractor_id: Some(cid),
            from: Some(a),
            to: Some(b),
            ..RecordFilter::default()
        })
        .await
    {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    let messages = match ledger.contractor_voice_messages(cid, a, b).await {
        Ok(m) => m,
        Err(e) => return unavailable(e),
    };
    let mut body = range_form(&format!("/portal/{cid}/records"), from, to);
    let _ = write!(
        body,
        "<h3>伝言（<span id=\"messages-count\">{}</span>件）</h3>",
        messages.len()
    );
    for m in &messages {
        body.push_str(&format!(
            "<p><a href=\"/portal/{cid}/calls/{0}\">{1}</a></p>",
            m.call_id,
            tokyo(m.created_at)
        ));
        body.push_str(&audio(cid, m.call_id, m.duration_ms));
    }
    let current: Vec<&RecordView> = list.iter().filter(|r| r.superseded_by.is_none()).collect();
    let _ = write!(
        body,
        "<h3>一次対応記録（<span id=\"records-count\">{}</span>件）</h3>",
        current.len()
    );
    for r in current.iter().rev() {
        body.push_str(&record_html(cid, r));
    }
    page(&u, &c, "対応記録・伝言", &body)
}

pub async fn record(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path((cid, id)): Path<(i64, i64)>,
) -> Response {
    let c = tri!(open(&state, &u, cid, "record").await);
    let list = match state
        .daemon
        .ledger
        .first_responses(&RecordFilter {
            id: Some(id),
            ..RecordFilter::default()
        })
        .await
    {
        Ok(l) => l,
        Err(e) => return unavailable(e),
    };
    match list.into_iter().find(|r| r.id == id) {
        Some(r) if r.contractor_id == cid => {
            let body = format!(
                "{}<p><a href=\"/portal/{cid}/calls/{}\">この通話の詳細</a></p>",
                record_html(cid, &r),
                r.call_id
            );
            page(&u, &c, "一次対応記録", &body)
        }
        _ => u.not_ours(cid, "record", id),
    }
}

pub async fn recording(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path((cid, call)): Path<(i64, i64)>,
) -> Response {
    if let Err(r) = u.allow(cid, "recording") {
        return r;
    }
    let m = match state.daemon.ledger.voice_message(call).await {
        Ok(Some(m)) if m.contractor_id == Some(cid) => m,
        Ok(_) => return u.not_ours(cid, "recording", call),
        Err(e) => return unavailable(e),
    };
    let path = std::path::PathBuf::from(&m.path);
    let too_big = tokio::fs::metadata(&path)
        .await
        .map(|md| md.len() > MAX_RECORDING)
        .unwrap_or(false);
    match tokio::fs::read(&path).await {
        Ok(bytes) if !too_big => (
            [
                (header::CONTENT_TYPE, "audio/wav".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("inline; filename=\"message-{call}.wav\""),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(_) => (StatusCode::INTERNAL_SERVER_ERROR, "録音が大きすぎます").into_response(),
        Err(e) => {
            tracing::warn!(call, error = %e, "portal: recording not readable");
            (StatusCode::NOT_FOUND, "録音が見つかりません").into_response()
        }
    }
}

// ------------------------------------------------------------------ bills

/// Every month of the contract up to `last` (newest first) with its statement.
async fn statements(
    state: &State,
    c: &Contractor,
    last: YearMonth,
) -> Result<Vec<Statement>, Response> {
    let mut out = Vec::new();
    let mut m = last;
    let first = YearMonth::of(c.start_date);
    while m >= first && out.len() < MAX_STATEMENTS {
        match contractor_statement(&state.daemon.ledger, c, m, None).await {
            Ok(Some(s)) => out.push(s.statement),
            Ok(None) => {}
            Err(e) => return Err(unavailable(e)),
        }
        match m.prev() {
            Some(p) => m = p,
            None => break,
        }
    }
    Ok(out)
}

pub async fn bill(AxState(state): AxState<State>, u: PortalUser, Path(cid): Path<i64>) -> Response {
    let c = tri!(open(&state, &u, cid, "bill").await);
    let today = today(&state);
    let month = YearMonth::of(today);
    let ledger = &state.daemon.ledger;
    let mut body = String::new();
    // This month so far, and projected to the month's end at the pace so far.
    match contractor_statement(ledger, &c, month, None).await {
        Ok(Some(cur)) => {
            let st = &cur.statement;
            let elapsed = today.day();
            let days = month.days();
            let projected_calls =
                (u64::from(st.calls) * u64::from(days)).div_ceil(u64::from(elapsed.max(1)));
            let projected = match ledger.contract_history(&c).await {
                Ok(h) => crate::billing::statement(
                    &h,
                    month,
                    &Usage {
                        billable_calls: u32::try_from(projected_calls).unwrap_or(u32::MAX),
                        by_outcome: Default::default(),
                    },
                    None,
                )
                .map(|p| p.total)
                .ok(),
                Err(e) => return unavailable(e),
            };
            let _ = write!(
                body,
                "<section id=\"current\"><h3>{month} の状況（{today} 現在）</h3><dl class=\"facts\">\
                 <dt>請求対象の通話</dt><dd id=\"current-calls\">{calls}件</dd>\
                 <dt>プラン内の残り件数</dt><dd id=\"current-left\">{left}件（{included}件まで）</dd>\
                 <dt>現時点の金額（税込）</dt><dd id=\"current-total\">{total}</dd>\
                 <dt>月末の見込み（税込）</dt><dd id=\"current-projected\">{proj}</dd>\
                 <dt>お支払期日</dt><dd>{due}</dd></dl>\
                 <p class=\"note\">見込みは今月これまでの1日あたりの件数が月末まで続いた場合の金額です\
                 （{projected_calls}件）。</p></section>",
                calls = st.calls,
                left = st.included_calls.saturating_sub(st.calls),
                included = st.included_calls,
                total = yen(st.total),
                proj = projected.map(yen).unwrap_or_else(|| "—".into()),
                due = st.due,
            );
        }
        Ok(None) => body.push_str("<p id=\"current\">今月は契約期間外です。</p>"),
        Err(e) => return unavailable(e),
    }
    let past = match month.prev() {
        Some(p) => tri!(statements(&state, &c, p).await),
        None => Vec::new(),
    };
    let mut rows = String::new();
    for st in &past {
        let m = st.month;
        let _ = write!(
            rows,
            "<tr id=\"bill-{m}\"><td><a href=\"/portal/{cid}/bill/{m}\">{m}</a></td>\
             <td class=\"calls\">{}</td><td class=\"total\">{}</td><td class=\"due\">{}</td></tr>",
            st.calls,
            yen(st.total),
            st.due
        );
    }
    let _ = write!(
        body,
        "<section id=\"statements\"><h3>過去のご請求 <a id=\"bill-csv\" href=\"/portal/{cid}/bill.csv\" download>CSVダウンロード</a></h3>\
         <div class=\"scroll\"><table id=\"bill-table\"><thead><tr><th>月</th><th>請求対象の通話</th>\
         <th>合計（税込）</th><th>お支払期日</th></tr></thead><tbody>{rows}</tbody></table></div></section>"
    );
    page(&u, &c, "ご請求", &body)
}

pub async fn bill_month(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path((cid, month)): Path<(i64, String)>,
) -> Response {
    let c = tri!(open(&state, &u, cid, "bill").await);
    let Ok(m) = month.parse::<YearMonth>() else {
        return bad_input("month", "YYYY-MM で指定してください");
    };
    if m > YearMonth::of(today(&state)) {
        return bad_input("month", "まだ始まっていない月です");
    }
    match contractor_statement(&state.daemon.ledger, &c, m, None).await {
        Ok(Some(s)) => {
            let st = &s.statement;
            let body = format!(
                "<dl class=\"facts\"><dt>請求対象の通話</dt><dd id=\"statement-calls\">{}件</dd>\
                 <dt>合計（税込）</dt><dd id=\"statement-total\">{}</dd>\
                 <dt>お支払期日</dt><dd id=\"statement-due\">{}</dd></dl>\
                 <pre id=\"statement\">{}</pre>",
                st.calls,
                yen(st.total),
                st.due,
                esc(&st.render_ja())
            );
            page(&u, &c, &format!("{m} のご請求"), &body)
        }
        Ok(None) => bad_input("month", "契約期間外の月です"),
        Err(e) => unavailable(e),
    }
}

pub async fn bill_csv(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path(cid): Path<i64>,
) -> Response {
    let c = tri!(open(&state, &u, cid, "bill.csv").await);
    let Some(last) = YearMonth::of(today(&state)).prev() else {
        return bad_input("month", "範囲外です");
    };
    let past = tri!(statements(&state, &c, last).await);
    let mut out = format!("{}\n", Statement::csv_header());
    for st in past.iter().rev() {
        let _ = writeln!(out, "{}", st.csv_row(&c.id.to_string(), &c.name));
    }
    csv_response(&format!("statements-{cid}.csv"), out)
}

// ------------------------------------------------------------------ settings

fn settings_body(
    c: &Contractor,
    u: &PortalUser,
    channels: &[crate::ledger::ReportChannel],
    hearing: Option<&[String]>,
    recent: &[crate::ledger::OutboxRow],
    msg: Option<(&str, &str)>,
) -> String {
    let cid = c.id;
    let csrf = esc(&u.session.csrf);
    let emails: Vec<&str> = channels
        .iter()
        .filter(|ch| ch.kind == "email")
        .map(|ch| ch.target.as_str())
        .collect();
    let webhook = channels.iter().find(|ch| ch.kind == "webhook");
    let slack = channels.iter().find(|ch| ch.kind == "slack");
    let msg = msg
        .map(|(class, m)| {
            format!(
                "<p class=\"{class}\" role=\"alert\" id=\"settings-msg\">{}</p>",
                esc(m)
            )
        })
        .unwrap_or_default();
    let mut list = String::new();
    for ch in channels {
        let _ = write!(list, "<li>{}：{}</li>", esc(&ch.kind), esc(&ch.target));
    }
    if list.is_empty() {
        list.push_str("<li>報告先が登録されていません</li>");
    }
    let mut sent = String::new();
    for r in recent {
        let _ = write!(
            sent,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"state\">{}</td></tr>",
            tokyo(r.created_at),
            match r.report_kind.as_str() {
                "record" => "対応記録",
                "message" => "伝言",
                "test" => "テスト送信",
                other => other,
            },
            esc(&r.channel_kind),
            match r.state.as_str() {
                "delivered" => "送信済み",
                "pending" => "送信待ち",
                "failed" => "失敗",
                other => other,
            }
        );
    }
    let hearing_html = match hearing {
        Some(items) => format!(
            "<section id=\"hearing\"><h3>ヒアリング項目</h3>\
             <form method=\"post\" action=\"/portal/{cid}/settings/hearing\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <label for=\"items\">1行に1項目（20項目・各200文字まで）</label>\
             <textarea id=\"items\" name=\"items\" rows=\"6\">{}</textarea>\
             <button type=\"submit\" id=\"save-hearing\">保存</button></form></section>",
            esc(&items.join("\n"))
        ),
        None => String::new(),
    };
    format!(
        "{msg}<section id=\"channels\"><h3>報告先</h3><ul id=\"channel-list\">{list}</ul>\
         <form method=\"post\" action=\"/portal/{cid}/settings/channels\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"emails\">メールアドレス（1行に1件）</label>\
         <textarea id=\"emails\" name=\"emails\" rows=\"3\">{emails}</textarea>\
         <label for=\"webhook\">Webhook URL</label>\
         <input id=\"webhook\" name=\"webhook\" type=\"url\" value=\"{wh}\">\
         <label for=\"webhook_secret\">Webhook 署名用シークレット（16文字以上。変更しない場合は空欄）</label>\
         <input id=\"webhook_secret\" name=\"webhook_secret\" type=\"password\" autocomplete=\"off\">\
         <label for=\"slack\">Slack Webhook URL</label>\
         <input id=\"slack\" name=\"slack\" type=\"url\" value=\"{sl}\">\
         <button type=\"submit\" id=\"save-channels\">報告先を保存</button></form>\
         <form method=\"post\" action=\"/portal/{cid}/settings/test\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <button type=\"submit\" id=\"send-test\">テスト送信</button></form>\
         <h3>最近の送信</h3><div class=\"scroll\"><table id=\"recent-reports\"><thead><tr><th>日時</th><th>種類</th>\
         <th>報告先</th><th>状態</th></tr></thead><tbody>{sent}</tbody></table></div></section>{hearing_html}",
        emails = esc(&emails.join("\n")),
        wh = esc(webhook.map(|w| w.target.as_str()).unwrap_or("")),
        sl = esc(slack.map(|w| w.target.as_str()).unwrap_or("")),
    )
}

async fn settings_page(
    state: &State,
    u: &PortalUser,
    c: &Contractor,
    status: StatusCode,
    msg: Option<(&str, &str)>,
) -> Response {
    let ledger = &state.daemon.ledger;
    let channels = match ledger.report_channels(c.id).await {
        Ok(x) => x,
        Err(e) => return unavailable(e),
    };
    let recent = match ledger.recent_reports(c.id, RECENT_REPORTS).await {
        Ok(x) => x,
        Err(e) => return unavailable(e),
    };
    let hearing = match ledger.contract_history(c).await {
        Ok(h) if h.plan_on(today(state)).1 => Some(c.hearing_items.as_slice()),
        Ok(_) => None,
        Err(e) => return unavailable(e),
    };
    let mut r = page(
        u,
        c,
        "設定",
        &settings_body(c, u, &channels, hearing, &recent, msg),
    );
    *r.status_mut() = status;
    r
}

#[derive(Deserialize, Default)]
pub struct MsgQuery {
    done: Option<String>,
}

pub async fn settings(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path(cid): Path<i64>,
    Query(q): Query<MsgQuery>,
) -> Response {
    let c = tri!(open(&state, &u, cid, "settings").await);
    let msg = match q.done.as_deref() {
        Some("channels") => Some(("ok", "報告先を保存しました。")),
        Some("hearing") => Some(("ok", "ヒアリング項目を保存しました。")),
        Some("test") => Some((
            "ok",
            "テスト送信を受け付けました。各報告先に届いたかご確認ください。",
        )),
        _ => None,
    };
    settings_page(&state, &u, &c, StatusCode::OK, msg).await
}

#[derive(Deserialize)]
pub struct ChannelsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    emails: String,
    #[serde(default)]
    webhook: String,
    #[serde(default)]
    webhook_secret: String,
    #[serde(default)]
    slack: String,
}

pub async fn save_channels(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path(cid): Path<i64>,
    Form(f): Form<ChannelsForm>,
) -> Response {
    let c = tri!(open_post(&state, &u, cid, "settings", &f.csrf).await);
    let ledger = &state.daemon.ledger;
    let existing = match ledger.report_channels(cid).await {
        Ok(x) => x,
        Err(e) => return unavailable(e),
    };
    let mut new = Vec::new();
    let mut problem = None;
    for e in f
        .emails
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(20)
    {
        match reports::parse_channel("email", e, None) {
            Ok(ch) => new.push(ch),
            Err(e) => problem = problem.or(Some(("emails", e.message))),
        }
    }
    let webhook = f.webhook.trim();
    if !webhook.is_empty() {
        // An empty secret keeps the one of the same URL.
        let secret = if f.webhook_secret.is_empty() {
            existing
                .iter()
                .find(|ch| ch.kind == "webhook" && ch.target == webhook)
                .and_then(|ch| ch.secret.clone())
        } else {
            Some(f.webhook_secret.clone())
        };
        match reports::parse_channel("webhook", webhook, secret.as_deref()) {
            Ok(ch) => new.push(ch),
            Err(e) => {
                let field = if e.field.contains("secret") {
                    "webhook_secret"
                } else {
                    "webhook"
                };
                problem = problem.or(Some((field, e.message)))
            }
        }
    }
    let slack = f.slack.trim();
    if !slack.is_empty() {
        match reports::parse_channel("slack", slack, None) {
            Ok(ch) => new.push(ch),
            Err(e) => problem = problem.or(Some(("slack", e.message))),
        }
    }
    if let Some((field, m)) = problem {
        let label = match field {
            "emails" => "メールアドレス",
            "webhook" => "Webhook URL",
            "webhook_secret" => "Webhook 署名用シークレット",
            _ => "Slack Webhook URL",
        };
        return settings_page(
            &state,
            &u,
            &c,
            StatusCode::BAD_REQUEST,
            Some(("error", &format!("{label}: {m}"))),
        )
        .await;
    }
    if let Err(e) = ledger
        .set_report_channels(cid, &new, state.daemon.clock.now())
        .await
    {
        return unavailable(e);
    }
    tracing::info!(user = %u.session.login, contractor = cid, channels = new.len(), "portal: report channels replaced");
    Redirect::to(&format!("/portal/{cid}/settings?done=channels")).into_response()
}

pub async fn send_test(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path(cid): Path<i64>,
    Form(f): Form<auth::CsrfForm>,
) -> Response {
    let c = tri!(open_post(&state, &u, cid, "settings", &f.csrf).await);
    let now = state.daemon.clock.now();
    let report = Report::test(cid, &c.name, &u.session.login, now);
    let payload = match serde_json::to_value(&report) {
        Ok(p) => p,
        Err(e) => return unavailable(e),
    };
    let test_id = now.timestamp_micros();
    match state
        .daemon
        .ledger
        .queue_test_report(cid, test_id, &payload, now)
        .await
    {
        Ok(0) => {
            settings_page(
                &state,
                &u,
                &c,
                StatusCode::BAD_REQUEST,
                Some(("error", "報告先が登録されていないため、送信できません。")),
            )
            .await
        }
        Ok(n) => {
            state.reports_wake.notify_one();
            tracing::info!(user = %u.session.login, contractor = cid, queued = n, "portal: test report queued");
            Redirect::to(&format!("/portal/{cid}/settings?done=test")).into_response()
        }
        Err(e) => unavailable(e),
    }
}

#[derive(Deserialize)]
pub struct HearingForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    items: String,
}

pub async fn save_hearing(
    AxState(state): AxState<State>,
    u: PortalUser,
    Path(cid): Path<i64>,
    Form(f): Form<HearingForm>,
) -> Response {
    let c = tri!(open_post(&state, &u, cid, "settings", &f.csrf).await);
    let items: Vec<String> = f
        .items
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if items.len() > 20
        || items
            .iter()
            .any(|i| i.chars().count() > 200 || i.chars().any(char::is_control))
    {
        return settings_page(
            &state,
            &u,
            &c,
            StatusCode::BAD_REQUEST,
            Some((
                "error",
                "ヒアリング項目: 20項目まで、各200文字までで入力してください。",
            )),
        )
        .await;
    }
    if let Err(e) = state.daemon.ledger.set_hearing_items(cid, &items).await {
        return unavailable(e);
    }
    Redirect::to(&format!("/portal/{cid}/settings?done=hearing")).into_response()
}

// ------------------------------------------------------------------ admin view

pub async fn admin(AxState(state): AxState<State>, u: PortalUser) -> Response {
    if u.session.must_change {
        return Redirect::to("/portal/password").into_response();
    }
    if !u.is_admin() {
        tracing::warn!(user = %u.session.login, "portal: contractor user refused the admin view");
        return refused(StatusCode::FORBIDDEN);
    }
    let ledger = &state.daemon.ledger;
    let today = today(&state);
    let (Some(a), Some(b)) = (
        tokyo_midnight(today),
        today.succ_opt().and_then(tokyo_midnight),
    ) else {
        return unavailable("date out of range");
    };
    let contractors = match ledger.contractors().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let calls = match ledger
        .calls(&CallFilter {
            from: Some(a),
            to: Some(b),
            contractor_id: None,
        })
        .await
    {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let mut rows = String::new();
    let mut flags = String::new();
    for c in &contractors {
        let mine: Vec<&CallView> = calls
            .iter()
            .filter(|x| x.contractor_id == Some(c.id))
            .collect();
        let verdict = match crate::complaints::evaluate(
            ledger,
            c.id,
            false,
            state.daemon.clock.now(),
        )
        .await
        {
            Ok(v) => v,
            Err(e) => return unavailable(e),
        };
        let flag = match &verdict.flagged {
            Some(w) => format!(
                "<a href=\"#flag-{}\">苦情{}件（{}〜{}）</a>",
                c.id, w.count, w.first_day, w.last_day
            ),
            None => "—".to_owned(),
        };
        let _ = write!(
            rows,
            "<tr id=\"contractor-{id}\"><td><a href=\"/portal/{id}/calls\">{name}</a></td>\
             <td class=\"state\">{state}</td><td class=\"today-calls\">{n}</td>\
             <td class=\"today-billable\">{billable}</td><td class=\"flag\">{flag}</td></tr>",
            id = c.id,
            name = esc(&c.name),
            state = match c.state.as_str() {
                "active" => "契約中",
                "suspended" => "停止中",
                "ended" => "終了",
                other => other,
            },
            n = mine.len(),
            billable = mine.iter().filter(|x| x.billable).count(),
        );
        if let Some(w) = &verdict.flagged {
            let (Some(fa), Some(fb)) = (
                tokyo_midnight(w.first_day),
                w.last_day.succ_opt().and_then(tokyo_midnight),
            ) else {
                continue;
            };
            let recs = match ledger
                .first_responses(&RecordFilter {
                    contractor_id: Some(c.id),
                    from: Some(fa),
                    to: Some(fb),
                    ..RecordFilter::default()
                })
                .await
            {
                Ok(r) => r,
                Err(e) => return unavailable(e),
            };
            let _ = write!(
                flags,
                "<section class=\"flag\" id=\"flag-{}\"><h3>{}：苦情ルールに該当（{}件、{}〜{}）</h3>",
                c.id,
                esc(&c.name),
                w.count,
                w.first_day,
                w.last_day
            );
            for r in recs
                .iter()
                .filter(|r| r.category == "complaint" && r.superseded_by.is_none())
            {
                flags.push_str(&record_html(c.id, r));
            }
            flags.push_str("</section>");
        }
    }
    let body = format!(
        "<header class=\"bar portal\"><h1>smartdesk 管理者画面</h1><span>{login}</span>{logout}</header>\
         <main class=\"portal\"><h2>契約者（{today} の着信）</h2><div class=\"scroll\"><table id=\"contractors\">\
         <thead><tr><th>契約者</th><th>状態</th><th>本日の着信</th><th>うち請求対象</th><th>苦情ルール</th></tr></thead>\
         <tbody>{rows}</tbody></table></div><h2>停止の判断材料</h2>{flags_or_none}</main>",
        login = esc(&u.session.login),
        logout = logout_form(&u),
        flags_or_none = if flags.is_empty() {
            "<p id=\"no-flags\">苦情ルールに該当する契約者はいません。</p>".to_owned()
        } else {
            flags
        },
    );
    html_page("管理者画面 - smartdesk", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("abc"), "abc");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(csv_field("非通知"), "非通知");
    }

    #[test]
    fn durations() {
        assert_eq!(secs(Some(5)), "5秒");
        assert_eq!(secs(Some(125)), "2分05秒");
        assert_eq!(secs(None), "—");
    }
}
