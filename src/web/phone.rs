//! The browser phone's signalling (issue #11): the page posts its SDP offer (ICE gathered,
//! no trickle) and gets the daemon's answer; everything after that travels on the
//! connection's own data channel (see [`crate::daemon::browser_seat`]).

use axum::extract::State as AxState;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::Operator;
use super::State;
use crate::daemon::browser_seat::{self, PhoneError};

/// Longest SDP offer accepted (a browser's audio + data channel offer is a few KiB).
const OFFER_MAX: usize = 32 * 1024;

#[derive(Deserialize)]
pub struct OfferBody {
    #[serde(default)]
    sdp: String,
}

fn error(status: StatusCode, field: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"ok": false, "errors": [{"field": field, "message": message}]})),
    )
        .into_response()
}

pub async fn start(
    AxState(state): AxState<State>,
    op: Operator,
    headers: HeaderMap,
    Json(body): Json<OfferBody>,
) -> Response {
    if !op.csrf_ok(&headers, None) {
        return error(
            StatusCode::FORBIDDEN,
            "csrf",
            "画面の有効期限が切れました。再読み込みしてください。",
        );
    }
    if body.sdp.is_empty() || body.sdp.len() > OFFER_MAX || !body.sdp.starts_with("v=0") {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sdp",
            "sdp: not a session description",
        );
    }
    if !state.daemon.config.sip.udp {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "sdp",
            "browser phone needs sip.udp = true",
        );
    }
    let s = &op.session;
    let r = browser_seat::start(
        state.daemon.clone(),
        state.core.clone(),
        state.phones.clone(),
        s.seat_id,
        s.seat.clone(),
        body.sdp,
    )
    .await;
    match r {
        Ok(sdp) => Json(json!({"ok": true, "sdp": sdp})).into_response(),
        Err(e @ PhoneError::Offer(_)) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "sdp",
            &format!("sdp: {e}"),
        ),
        Err(e) => {
            tracing::warn!(seat = %s.seat, error = %e, "browser phone not started");
            error(StatusCode::SERVICE_UNAVAILABLE, "phone", &e.to_string())
        }
    }
}
