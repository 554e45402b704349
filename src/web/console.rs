//! The console page, its live call feed and its actions (record, pause, resume).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::{session_valid, Operator};
use super::{esc, html_page, State};
use crate::daemon::seat_feed::{SeatCall, SeatPhase};
use crate::ledger::{RecordFilter, CATEGORIES};
use crate::reports::{self, category_label, display_number, Author, RecordInput, SubmitError};

/// Earlier calls shown per caller.
const EARLIER_CALLS: i64 = 10;
/// Records listed on the console.
const RECORDS_SHOWN: i64 = 50;
/// How often a quiet live feed re-checks its session.
const FEED_SESSION_CHECK: Duration = Duration::from_secs(30);
/// Pause reasons offered (the ACD may define its own list).
const PAUSE_REASONS: &[&str] = &["休憩", "後処理", "離席", "研修", "その他"];

fn tokyo(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y/%m/%d %H:%M")
        .to_string()
}

pub async fn page(AxState(state): AxState<State>, op: Operator) -> Response {
    let s = &op.session;
    let paused = state
        .paused
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&s.seat_id)
        .cloned();
    let csrf = esc(&s.csrf);
    let reasons: String = PAUSE_REASONS
        .iter()
        .map(|r| format!("<option value=\"{0}\">{0}</option>", esc(r)))
        .collect();
    let categories: String = CATEGORIES
        .iter()
        .map(|c| format!("<option value=\"{c}\">{}</option>", category_label(c)))
        .collect();
    let seat_state = match &paused {
        Some(r) => format!("休止中（{}）", esc(r)),
        None => "受付中".to_owned(),
    };
    let body = format!(
        r#"<header class="bar">
<h1>smartdesk コンソール</h1>
<span id="seat-name">席：{seat}</span>
<span id="seat-state" role="status">{seat_state}</span>
<form id="pause-form" method="post" action="/console/pause">
<input type="hidden" name="csrf" value="{csrf}">
<label for="pause-reason">休止理由</label>
<select id="pause-reason" name="reason">{reasons}</select>
<button type="submit" id="pause">休止</button>
</form>
<form id="resume-form" method="post" action="/console/resume">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" id="resume">再開</button>
</form>
<form method="post" action="/console/logout">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" id="logout">ログアウト</button>
</form>
</header>
<main id="main" data-csrf="{csrf}">
<section id="phone" aria-labelledby="phone-title">
<h2 id="phone-title">ブラウザ電話</h2>
<p id="phone-state" role="status" aria-live="assertive">未接続（ソフトフォンで受付）</p>
<button type="button" id="phone-start">ブラウザ電話を開始</button>
<button type="button" id="phone-answer" hidden>応答（F2）</button>
<button type="button" id="phone-decline" hidden>拒否（F4）</button>
<button type="button" id="phone-hangup" hidden>切断（F4）</button>
<button type="button" id="phone-mute" hidden aria-pressed="false">ミュート</button>
<button type="button" id="phone-hold" hidden aria-pressed="false">保留</button>
<audio id="phone-audio" autoplay></audio>
</section>
<section id="call" aria-labelledby="call-title">
<h2 id="call-title">通話</h2>
<p id="call-state" role="status" aria-live="polite">待機中</p>
<div id="call-info" hidden>
<p class="contractor">契約者：<strong id="contractor"></strong></p>
<p class="greeting-label">第一声</p>
<p class="greeting" id="greeting"></p>
<dl class="facts">
<dt>発信者番号</dt><dd id="caller"></dd>
<dt>待ち時間</dt><dd id="waited"></dd>
<dt>着信番号</dt><dd id="number"></dd>
</dl>
<h3>この番号からの過去の着信</h3>
<ul id="earlier"><li>なし</li></ul>
</div>
</section>
<section id="record" aria-labelledby="record-title">
<h2 id="record-title">一次対応記録 <span id="record-for"></span></h2>
<form id="record-form" novalidate>
<input type="hidden" id="call_row" name="call_row" value="">
<input type="hidden" id="supersedes" name="supersedes" value="">
<p id="form-status" role="status" aria-live="assertive"></p>
<div class="field"><label for="caller_name">お名前・会社名</label>
<input id="caller_name" name="caller_name" maxlength="200" autocomplete="off">
<span class="field-error" id="err-caller_name"></span></div>
<div class="field"><label for="callback_number">折り返し先電話番号</label>
<input id="callback_number" name="callback_number" type="tel" maxlength="40" autocomplete="off">
<span class="field-error" id="err-callback_number"></span></div>
<fieldset class="field" id="callback_wanted"><legend>折り返し</legend>
<label><input type="radio" name="callback_wanted" value="yes" id="cb_yes"> 要</label>
<label><input type="radio" name="callback_wanted" value="no" id="cb_no"> 不要</label>
<span class="field-error" id="err-callback_wanted"></span></fieldset>
<div class="field"><label for="purpose">用件</label>
<textarea id="purpose" name="purpose" rows="4" maxlength="4000"></textarea>
<span class="field-error" id="err-purpose"></span></div>
<div class="field"><label for="category">分類</label>
<select id="category" name="category">{categories}</select>
<span class="field-error" id="err-category"></span></div>
<fieldset class="field" id="hearing" hidden><legend>ヒアリング項目</legend>
<div id="hearing-items"></div>
<span class="field-error" id="err-hearing"></span></fieldset>
<button type="submit" id="submit">記録して報告（Ctrl+Enter）</button>
<button type="button" id="cancel-correction" hidden>訂正をやめる</button>
</form>
</section>
<section id="records" aria-labelledby="records-title">
<h2 id="records-title">最近の記録</h2>
<table id="records-table"><thead><tr><th>着信</th><th>発信者</th><th>お名前</th><th>分類</th><th>用件</th><th>報告</th><th></th></tr></thead>
<tbody id="records-body"></tbody></table>
</section>
</main>
<script src="/console/app.js"></script>"#,
        seat = esc(&s.seat),
    );
    html_page("smartdesk コンソール", &body)
}

/// What the console shows about the call at the seat.
#[derive(Debug, Serialize)]
struct CallViewOut {
    phase: &'static str,
    row: i64,
    contractor_name: String,
    greeting: String,
    caller: Option<String>,
    caller_display: String,
    /// What the callback field is prefilled with.
    callback_prefill: String,
    number: String,
    arrived_at: String,
    /// Seconds the caller waited until answered (or has waited so far while ringing).
    waited_s: i64,
    hearing_items: Vec<String>,
    earlier: Vec<serde_json::Value>,
    recorded: bool,
}

async fn call_view(state: &State, seat_call: &SeatCall) -> Option<CallViewOut> {
    let ledger = &state.daemon.ledger;
    let call = match ledger.call_by_id(seat_call.row).await {
        Ok(Some(c)) => c,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "console: call not readable");
            return None;
        }
    };
    let contractor = match call.contractor_id {
        Some(id) => ledger.contractor(id).await.ok()?,
        None => return None,
    };
    let hearing_items = reports::hearing_items_on(ledger, &contractor, call.started_at)
        .await
        .unwrap_or_default();
    let earlier = match &call.caller {
        Some(c) => ledger
            .earlier_calls(contractor.id, c, call.id, EARLIER_CALLS)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                json!({
                    "at": tokyo(e.started_at),
                    "outcome": e.outcome,
                    "caller_name": e.caller_name,
                    "purpose": e.purpose,
                    "category": e.category.as_deref().map(category_label),
                })
            })
            .collect(),
        None => Vec::new(),
    };
    let recorded = ledger
        .first_responses(&RecordFilter {
            call_id: Some(call.id),
            limit: Some(1),
            ..RecordFilter::default()
        })
        .await
        .map(|r| !r.is_empty())
        .unwrap_or(false);
    let until = seat_call
        .answered_at
        .or(seat_call.ended_at)
        .unwrap_or_else(|| state.daemon.clock.now());
    let caller_display = display_number(call.caller.as_deref());
    Some(CallViewOut {
        phase: match seat_call.phase {
            SeatPhase::Ringing => "ringing",
            SeatPhase::Connected => "connected",
            SeatPhase::Ended => "ended",
        },
        row: call.id,
        contractor_name: contractor.name,
        greeting: contractor.greeting,
        callback_prefill: if call.caller.is_some() {
            caller_display.clone()
        } else {
            String::new()
        },
        caller: call.caller.clone(),
        caller_display,
        number: display_number(Some(&call.number)),
        arrived_at: tokyo(call.started_at),
        waited_s: (until - call.started_at).num_seconds().max(0),
        hearing_items,
        earlier,
        recorded,
    })
}

/// The live feed of the seat's call (Server-Sent Events): an event `call` with the view
/// (or `{"phase":"idle"}`) at once and on every change; `expired` when the session ends.
pub async fn events(AxState(state): AxState<State>, op: Operator) -> impl IntoResponse {
    let seat = op.session.seat_id;
    let token = op.token;
    let rx = state.seats.clone();
    struct Feed {
        state: State,
        seat: i64,
        token: String,
        rx: tokio::sync::watch::Receiver<crate::daemon::seat_feed::SeatCalls>,
        last: Option<Option<SeatCall>>,
        done: bool,
    }
    let feed = Feed {
        state,
        seat,
        token,
        rx,
        last: None,
        done: false,
    };
    let stream = futures_util::stream::unfold(feed, |mut f| async move {
        if f.done {
            return None;
        }
        loop {
            let current = f.rx.borrow_and_update().get(&f.seat).cloned();
            if f.last.as_ref() != Some(&current) {
                f.last = Some(current.clone());
                let data = match &current {
                    Some(c) => match call_view(&f.state, c).await {
                        Some(v) => serde_json::to_string(&v).unwrap_or_default(),
                        None => json!({"phase": "idle"}).to_string(),
                    },
                    None => json!({"phase": "idle"}).to_string(),
                };
                let ev = Event::default().event("call").data(data);
                return Some((Ok::<Event, Infallible>(ev), f));
            }
            tokio::select! {
                changed = f.rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
                _ = tokio::time::sleep(FEED_SESSION_CHECK) => {}
            }
            if !session_valid(&f.state, &f.token) {
                f.done = true;
                let ev = Event::default().event("expired").data("{}");
                return Some((Ok(ev), f));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

fn operator_filter(state: &State, op: &Operator) -> RecordFilter {
    let hours = i64::try_from(state.daemon.config.web.records_hours).unwrap_or(12);
    RecordFilter {
        operator: Some((op.session.seat.clone(), op.session.seat_id)),
        from: Some(state.daemon.clock.now() - chrono::Duration::hours(hours)),
        ..RecordFilter::default()
    }
}

/// The operator's visible records (JSON), current versions only, with delivery status.
pub async fn records(AxState(state): AxState<State>, op: Operator) -> Response {
    let ledger = &state.daemon.ledger;
    let list = match ledger
        .first_responses(&RecordFilter {
            limit: Some(RECORDS_SHOWN * 2),
            ..operator_filter(&state, &op)
        })
        .await
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "console: records not readable");
            return (StatusCode::SERVICE_UNAVAILABLE, "記録を読めません").into_response();
        }
    };
    let list: Vec<_> = list
        .into_iter()
        .filter(|r| r.superseded_by.is_none())
        .take(RECORDS_SHOWN as usize)
        .collect();
    let ids: Vec<i64> = list.iter().map(|r| r.id).collect();
    let deliveries = ledger.reports_of_records(&ids).await.unwrap_or_default();
    let out: Vec<serde_json::Value> = list
        .iter()
        .map(|r| {
            let d: Vec<_> = deliveries
                .iter()
                .filter(|o| o.record_id == Some(r.id))
                .map(|o| json!({"channel": o.channel_kind, "state": o.state, "attempts": o.attempts}))
                .collect();
            json!({
                "id": r.id,
                "call_id": r.call_id,
                "version": r.version,
                "at": tokyo(r.call_started_at),
                "contractor_name": r.contractor_name,
                "caller_display": display_number(r.caller.as_deref()),
                "caller_name": r.caller_name,
                "callback_number": r.callback_number,
                "callback_wanted": r.callback_wanted,
                "purpose": r.purpose,
                "category": r.category,
                "category_label": category_label(&r.category),
                "hearing_answers": r.hearing_answers,
                "written_by": r.written_by,
                "delivery": d,
            })
        })
        .collect();
    Json(json!({ "records": out })).into_response()
}

#[derive(Deserialize)]
pub struct SubmitBody {
    call_row: i64,
    #[serde(default)]
    supersedes: Option<i64>,
    #[serde(flatten)]
    input: RecordInput,
}

fn field_errors(status: StatusCode, errors: Vec<reports::FieldError>) -> Response {
    (status, Json(json!({ "ok": false, "errors": errors }))).into_response()
}

fn forbidden(msg: &str) -> Response {
    field_errors(
        StatusCode::FORBIDDEN,
        vec![reports::FieldError {
            field: "form",
            message: msg.to_owned(),
        }],
    )
}

/// Writes a record (or a correction) for a call the operator may write for.
pub async fn submit(
    AxState(state): AxState<State>,
    op: Operator,
    headers: HeaderMap,
    body: Result<Json<SubmitBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !op.csrf_ok(&headers, None) {
        return forbidden("画面の有効期限が切れました。再読み込みしてください。");
    }
    let Ok(Json(b)) = body else {
        return field_errors(
            StatusCode::BAD_REQUEST,
            vec![reports::FieldError {
                field: "form",
                message: "送信内容を読めません".into(),
            }],
        );
    };
    let ledger = &state.daemon.ledger;
    let seat = op.session.seat_id;
    let now = state.daemon.clock.now();
    // May this operator write for this call?
    let allowed = match b.supersedes {
        None => {
            let at_seat_now = state
                .seats
                .borrow()
                .get(&seat)
                .is_some_and(|c| c.row == b.call_row);
            let hours = i64::try_from(state.daemon.config.web.records_hours).unwrap_or(12);
            let recent = |t: DateTime<Utc>| t >= now - chrono::Duration::hours(hours);
            at_seat_now
                || (ledger.call_seat(b.call_row).await.ok().flatten() == Some(seat)
                    && ledger
                        .call_by_id(b.call_row)
                        .await
                        .ok()
                        .flatten()
                        .is_some_and(|c| recent(c.started_at)))
        }
        Some(old) => ledger
            .first_responses(&RecordFilter {
                id: Some(old),
                ..operator_filter(&state, &op)
            })
            .await
            .ok()
            .and_then(|v| v.into_iter().next())
            .is_some_and(|r| r.call_id == b.call_row),
    };
    if !allowed {
        return forbidden("この通話の記録は書けません（ご自身の席の通話のみ）。");
    }
    let author = Author {
        seat_id: Some(seat),
        name: op.session.seat.clone(),
    };
    let auto_suspend = state.daemon.config.billing.auto_suspend_on_complaints;
    match reports::submit(
        ledger,
        b.call_row,
        b.supersedes,
        &b.input,
        &author,
        auto_suspend,
        now,
    )
    .await
    {
        Ok((id, queued)) => {
            state.reports_wake.notify_one();
            tracing::info!(seat = %op.session.seat, record = id, call = b.call_row, reports = queued, "first-response record written");
            // Submitting ends wrap-up (ACD, issue #6).
            if let Err(e) = state.core.record_submitted(seat, b.call_row).await {
                tracing::warn!(error = %e, "call core not told of the record");
            }
            Json(json!({"ok": true, "record_id": id, "reports_queued": queued})).into_response()
        }
        Err(SubmitError::Invalid(errors)) => field_errors(StatusCode::UNPROCESSABLE_ENTITY, errors),
        Err(SubmitError::Ledger(e)) => {
            use crate::ledger::LedgerError;
            match e {
                LedgerError::Conflict(_) | LedgerError::NotFound { .. } => field_errors(
                    StatusCode::CONFLICT,
                    vec![reports::FieldError {
                        field: "form",
                        message: "この通話の記録は既にあります（訂正は一覧の「訂正」から、最新の版に対して行ってください）。".into(),
                    }],
                ),
                other => {
                    tracing::error!(error = %other, "record not written");
                    field_errors(
                        StatusCode::SERVICE_UNAVAILABLE,
                        vec![reports::FieldError {
                            field: "form",
                            message: "記録を保存できませんでした。もう一度送信してください。".into(),
                        }],
                    )
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct PauseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get("x-requested-with")
        .is_some_and(|v| v == "fetch")
}

pub async fn pause(
    AxState(state): AxState<State>,
    op: Operator,
    headers: HeaderMap,
    Form(f): Form<PauseForm>,
) -> Response {
    if !op.csrf_ok(&headers, Some(&f.csrf)) {
        return forbidden("画面の有効期限が切れました。再読み込みしてください。");
    }
    let reason = f.reason.trim();
    if !PAUSE_REASONS.contains(&reason) {
        return field_errors(
            StatusCode::UNPROCESSABLE_ENTITY,
            vec![reports::FieldError {
                field: "reason",
                message: "休止理由を選んでください".into(),
            }],
        );
    }
    let seat = op.session.seat_id;
    let applied = state
        .core
        .seat_pause(seat, reason.to_owned())
        .await
        .unwrap_or(false);
    state
        .paused
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(seat, reason.to_owned());
    tracing::info!(seat = %op.session.seat, reason, applied, "seat paused from the console");
    if wants_json(&headers) {
        Json(json!({"paused": true, "reason": reason, "applied": applied})).into_response()
    } else {
        Redirect::to("/console").into_response()
    }
}

pub async fn resume(
    AxState(state): AxState<State>,
    op: Operator,
    headers: HeaderMap,
    Form(f): Form<PauseForm>,
) -> Response {
    if !op.csrf_ok(&headers, Some(&f.csrf)) {
        return forbidden("画面の有効期限が切れました。再読み込みしてください。");
    }
    let seat = op.session.seat_id;
    let applied = state.core.seat_resume(seat).await.unwrap_or(false);
    state
        .paused
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&seat);
    tracing::info!(seat = %op.session.seat, applied, "seat resumed from the console");
    if wants_json(&headers) {
        Json(json!({"paused": false, "applied": applied})).into_response()
    } else {
        Redirect::to("/console").into_response()
    }
}
