//! The control socket: live commands from the CLI (and other local tools) to the running
//! daemon (issue #9 §1).
//!
//! A Unix stream socket `<data_dir>/control.sock`, mode 0600 (only the daemon's user), one
//! JSON object per line each way:
//!
//! ```text
//!  → {"cmd": "hangup", "args": {"id": 42}}
//!  ← {"ok": true, "result": {...}}
//!  ← {"ok": false, "error": "no such call in progress", "kind": "input"}
//! ```
//!
//! `kind` is `input` for a request that cannot succeed as asked (unknown command, bad
//! argument, unknown call: the CLI exits 2) and `failed` for anything else (exit 1). A
//! connection may send several requests; it is closed after [`IDLE_TIMEOUT`] without one.
//!
//! Commands: `ping`, `status`, `calls` (in progress), `hangup {id}`, `reload`,
//! `seat {action, name, reason}` (pause/resume/reset), `queue`.
//!
//! **Adding a command** (e.g. the ACD's `seat pause`): write an `async fn` taking
//! `(&Control, &Value)` and returning `Result<Value, CommandError>` (usually one
//! [`CoreHandle`] request — add its variant in [`super::requests`]), add one line to
//! [`COMMANDS`], and call it from the CLI with [`request`]`(path, "name", args)`.

use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::requests::{CoreError, CoreHandle};
use super::Daemon;

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "control.sock";
/// Longest request line; a longer one closes the connection.
pub const MAX_LINE: usize = 64 * 1024;
/// Concurrent connections; more wait for a slot in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;
/// A connection without a request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the CLI waits for an answer (a reload loads prompts; a status asks the ledger).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the daemon with data directory `data_dir` listens.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

#[derive(Debug, Deserialize)]
struct Request {
    cmd: String,
    #[serde(default)]
    args: Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct Response {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<ErrorKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    Input,
    Failed,
}

/// A command's refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
}

impl CommandError {
    pub fn input(m: impl Into<String>) -> CommandError {
        CommandError {
            kind: ErrorKind::Input,
            message: m.into(),
        }
    }
    pub fn failed(m: impl Into<String>) -> CommandError {
        CommandError {
            kind: ErrorKind::Failed,
            message: m.into(),
        }
    }
}

impl From<CoreError> for CommandError {
    fn from(e: CoreError) -> Self {
        CommandError::failed(e.to_string())
    }
}

/// What commands may use.
pub struct Control {
    pub daemon: Arc<Daemon>,
    pub core: CoreHandle,
    pub started: Instant,
}

type CommandFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, CommandError>> + Send + 'a>>;
type Command = for<'a> fn(&'a Control, &'a Value) -> CommandFuture<'a>;

/// The command table: name → handler.
pub const COMMANDS: &[(&str, Command)] = &[
    ("ping", |c, _| Box::pin(ping(c))),
    ("status", |c, _| Box::pin(super::status::status(c))),
    ("calls", |c, _| Box::pin(super::status::live_calls(c))),
    ("hangup", |c, a| Box::pin(hangup(c, a))),
    ("reload", |c, _| Box::pin(reload(c))),
    ("seat", |c, a| Box::pin(seat(c, a))),
    ("queue", |c, _| Box::pin(queue(c))),
];

async fn ping(c: &Control) -> Result<Value, CommandError> {
    Ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "uptime_s": c.started.elapsed().as_secs(),
    }))
}

async fn hangup(c: &Control, args: &Value) -> Result<Value, CommandError> {
    let id = args
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| CommandError::input("hangup: args.id (a call id) is required"))?;
    match c.core.hangup(id).await? {
        Ok(()) => Ok(json!({ "id": id, "hung_up": true })),
        Err(e) => Err(CommandError::input(format!("call {id}: {e}"))),
    }
}

/// `seat {action: pause|resume|reset, name, reason?}` (issue #6 §6).
async fn seat(c: &Control, args: &Value) -> Result<Value, CommandError> {
    use crate::acd::AcdError;
    use crate::sip::b2bua::SeatCommand;
    let text = |k: &str| args.get(k).and_then(Value::as_str).map(str::to_owned);
    let action = text("action").unwrap_or_default();
    let name = text("name")
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| CommandError::input("seat: args.name (a seat name) is required"))?;
    let seat = name.clone().into();
    let command = match action.as_str() {
        "pause" => SeatCommand::Pause {
            seat,
            reason: text("reason").unwrap_or_default(),
        },
        "resume" => SeatCommand::Resume { seat },
        "reset" => SeatCommand::Reset { seat },
        other => {
            return Err(CommandError::input(format!(
                "seat: args.action must be pause, resume or reset (got {other:?})"
            )))
        }
    };
    match c.core.seat(command).await? {
        Ok(()) => {
            let q = c.core.queue().await?;
            let state = q.seats.iter().find(|s| s.name == name).map(|s| &s.state);
            Ok(json!({ "name": name, "action": action, "seat": state }))
        }
        Err(AcdError::UnknownSeat(_)) => Err(CommandError::input(format!(
            "NAME: no seat named {name:?} (`smartdesk seat list` shows them)"
        ))),
        Err(AcdError::EmptyReason) => Err(CommandError::input(
            "--reason: a pause needs a reason (e.g. 休憩, 研修)",
        )),
    }
}

/// `queue`: waiting callers (oldest first) and every seat's state (issue #6 §6). The
/// callers' numbers are shown (national format, or 非通知): the socket is the daemon
/// user's only, as the ledger is.
async fn queue(c: &Control) -> Result<Value, CommandError> {
    let q = c.core.queue().await?;
    let snap = c.core.snapshot().await?;
    let names: std::collections::HashMap<i64, &str> = q
        .seats
        .iter()
        .map(|s| (s.seat_id, s.name.as_str()))
        .collect();
    let waiting: Vec<Value> = q
        .waiting
        .iter()
        .map(|w| {
            let call = snap.calls.iter().find(|l| l.call == w.call);
            json!({
                "position": w.position,
                "call": call.and_then(|l| l.id),
                "contractor_id": w.contractor,
                "contractor": call.and_then(|l| l.contractor.clone()),
                "caller": call.map(|l| l.caller.clone()),
                "wait_s": w.wait_ms / 1000,
                "ringing_seat": w.ringing_seat.and_then(|s| names.get(&s).copied()),
                "skill": w.skill,
            })
        })
        .collect();
    let seats: Vec<Value> = q
        .seats
        .iter()
        .map(|s| {
            let reason = match &s.state {
                crate::acd::SeatState::Paused { reason } => Some(reason.clone()),
                _ => None,
            };
            json!({
                "id": s.seat_id,
                "name": s.name,
                "state": s.state.name(),
                "reason": reason,
                "in_state_s": s.in_state_ms / 1000,
                "handled_today": s.handled,
                "skills": s.skills,
                "consecutive_no_answers": s.consecutive_no_answers,
            })
        })
        .collect();
    Ok(json!({ "waiting": waiting, "seats": seats }))
}

async fn reload(c: &Control) -> Result<Value, CommandError> {
    match super::reload::reload(&c.daemon, &c.core).await {
        Ok(report) => Ok(serde_json::to_value(report).unwrap_or(Value::Null)),
        Err(errors) => Err(CommandError::input(format!(
            "configuration refused; the running one is kept:\n{}",
            errors
                .iter()
                .map(|e| format!("  - {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))),
    }
}

async fn dispatch(c: &Control, line: &str) -> Response {
    let result = match serde_json::from_str::<Request>(line) {
        Err(e) => Err(CommandError::input(format!("not a request: {e}"))),
        Ok(req) => match COMMANDS.iter().find(|(name, _)| *name == req.cmd) {
            Some((_, run)) => run(c, &req.args).await,
            None => Err(CommandError::input(format!(
                "unknown command {:?}; known: {}",
                req.cmd,
                COMMANDS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    };
    match result {
        Ok(v) => Response {
            ok: true,
            result: Some(v),
            error: None,
            kind: None,
        },
        Err(e) => Response {
            ok: false,
            result: None,
            error: Some(e.message),
            kind: Some(e.kind),
        },
    }
}

/// Binds the socket with mode 0600. A socket file left by a daemon that died is replaced; a
/// socket that answers means another daemon uses this data directory, which is refused.
pub async fn bind(path: &Path) -> Result<UnixListener, String> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "{}: another smartdesk daemon is running with this data directory",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove stale {}: {e}", path.display()))?;
    }
    // Bound under a temporary name, restricted, then renamed: the socket is never reachable
    // with wider permissions.
    let tmp = path.with_extension(format!("sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).map_err(|e| format!("cannot bind {}: {e}", tmp.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot set up {}: {e}", path.display())
        })?;
    Ok(listener)
}

/// Serves connections until aborted.
pub async fn serve(listener: UnixListener, control: Arc<Control>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let control = control.clone();
        tokio::spawn(async move {
            connection(stream, &control).await;
            drop(slot);
        });
    }
}

async fn connection(stream: UnixStream, control: &Control) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = AsyncBufReader::new(rd);
    let mut line = Vec::new();
    loop {
        line.clear();
        // A bounded line: read through `take` so a peer without newlines cannot grow memory.
        let read = tokio::time::timeout(
            IDLE_TIMEOUT,
            (&mut rd)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await;
        match read {
            Ok(Ok(0)) | Err(_) | Ok(Err(_)) => return,
            Ok(Ok(_)) => {}
        }
        let response = if line.len() > MAX_LINE || !line.ends_with(b"\n") {
            let r = Response {
                ok: false,
                result: None,
                error: Some(format!("request line longer than {MAX_LINE} bytes")),
                kind: Some(ErrorKind::Input),
            };
            let _ = write_response(&mut wr, &r).await;
            return;
        } else {
            dispatch(control, String::from_utf8_lossy(&line).trim()).await
        };
        if write_response(&mut wr, &response).await.is_err() {
            return;
        }
    }
}

use tokio::io::AsyncReadExt as _;

async fn write_response(
    wr: &mut tokio::net::unix::OwnedWriteHalf,
    r: &Response,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    bytes.push(b'\n');
    wr.write_all(&bytes).await
}

/// Errors of [`request`], for the CLI.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("the smartdesk daemon is not running (no control socket at {0})")]
    NotRunning(PathBuf),
    /// The daemon refused the request as asked (CLI exit 2).
    #[error("{0}")]
    Input(String),
    /// The daemon could not do it, or the socket failed (CLI exit 1).
    #[error("{0}")]
    Failed(String),
}

/// Sends one command to the daemon listening at `path` and returns its result (blocking;
/// for the CLI).
pub fn request(path: &Path, cmd: &str, args: Value) -> Result<Value, ControlError> {
    use std::os::unix::net::UnixStream as StdStream;
    let stream = StdStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            ControlError::NotRunning(path.to_owned())
        }
        _ => ControlError::Failed(format!("cannot connect to {}: {e}", path.display())),
    })?;
    let io = |e: std::io::Error| ControlError::Failed(format!("control socket: {e}"));
    stream.set_read_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT)).map_err(io)?;
    let mut line = serde_json::to_vec(&json!({ "cmd": cmd, "args": args }))
        .map_err(|e| ControlError::Failed(e.to_string()))?;
    line.push(b'\n');
    (&stream).write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .take(64 * 1024 * 1024)
        .read_line(&mut answer)
        .map_err(io)?;
    let r: Response = serde_json::from_str(&answer).map_err(|e| {
        ControlError::Failed(format!(
            "unexpected answer from the daemon ({e}): {answer:?}"
        ))
    })?;
    if r.ok {
        return Ok(r.result.unwrap_or(Value::Null));
    }
    let msg = r.error.unwrap_or_else(|| "request refused".into());
    Err(match r.kind {
        Some(ErrorKind::Input) => ControlError::Input(msg),
        _ => ControlError::Failed(msg),
    })
}

use std::io::Read as _;
