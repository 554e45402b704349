//! First-response records and the reports made of them (issue #7 §2–§3), without I/O:
//! validating what an operator typed, the report's content, how each channel presents it,
//! the webhook signature and the retry schedule. [`worker`] carries reports out.

pub mod worker;

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::ledger::{NewChannel, CATEGORIES};

/// Longest caller name / organisation accepted.
pub const MAX_NAME: usize = 200;
/// Longest purpose (用件) accepted.
pub const MAX_PURPOSE: usize = 4000;
/// Longest answer to one hearing item.
pub const MAX_ANSWER: usize = 1000;

/// The Japanese label of a category.
pub fn category_label(c: &str) -> &'static str {
    match c {
        "normal" => "通常",
        "wrong_number" => "間違い電話",
        "silent" => "無言電話",
        "sales" => "営業電話",
        "complaint" => "クレーム",
        _ => "その他",
    }
}

/// What an operator (or admin) typed, unchecked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RecordInput {
    pub caller_name: String,
    pub callback_number: String,
    /// "yes"/"要"/"true" or "no"/"不要"/"false".
    pub callback_wanted: String,
    pub purpose: String,
    pub category: String,
    /// One answer per hearing item, in the contractor's item order.
    pub hearing_answers: Vec<String>,
}

/// A record that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidRecord {
    pub caller_name: String,
    pub callback_number: Option<String>,
    pub callback_wanted: bool,
    pub purpose: String,
    pub category: String,
    pub hearing_answers: Vec<HearingAnswer>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HearingAnswer {
    pub item: String,
    pub answer: String,
}

/// A problem with one field; `field` is the form field's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn err(field: &'static str, message: &str) -> FieldError {
    FieldError {
        field,
        message: message.to_owned(),
    }
}

/// Text without control characters other than line breaks and tabs (when `multiline`).
fn clean(field: &'static str, s: &str, max: usize, multiline: bool) -> Result<String, FieldError> {
    let t = s.trim().replace("\r\n", "\n");
    if t.chars().count() > max {
        return Err(err(field, &format!("{max}文字以内で入力してください")));
    }
    let bad = t
        .chars()
        .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')));
    if bad {
        return Err(err(field, "制御文字は使えません"));
    }
    Ok(t)
}

/// A phone number as people write it: digits with an optional leading `+` and the usual
/// separators; 10–15 digits (Japanese numbers are 10 or 11, international up to 15).
pub fn parse_callback_number(s: &str) -> Result<String, &'static str> {
    let t = s.trim();
    let mut digits = String::new();
    for (i, c) in t.chars().enumerate() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => digits.push(c),
            '-' | ' ' | '(' | ')' | '‐' | '－' => {}
            _ => return Err("電話番号は数字で入力してください"),
        }
    }
    let n = digits.trim_start_matches('+').len();
    if !(10..=15).contains(&n) {
        return Err("電話番号の桁数が正しくありません（10〜15桁）");
    }
    Ok(t.to_owned())
}

/// Checks a record against the rules; every problem is returned, each naming its field.
pub fn validate(
    input: &RecordInput,
    hearing_items: &[String],
) -> Result<ValidRecord, Vec<FieldError>> {
    let mut errors = Vec::new();
    let caller_name = clean("caller_name", &input.caller_name, MAX_NAME, false)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    let callback_wanted = match input.callback_wanted.trim() {
        "yes" | "要" | "true" | "1" => Some(true),
        "no" | "不要" | "false" | "0" => Some(false),
        "" => {
            errors.push(err("callback_wanted", "折り返しの要・不要を選んでください"));
            None
        }
        _ => {
            errors.push(err(
                "callback_wanted",
                "要 (yes) か 不要 (no) を選んでください",
            ));
            None
        }
    };
    let callback_number = if input.callback_number.trim().is_empty() {
        if callback_wanted == Some(true) {
            errors.push(err(
                "callback_number",
                "折り返しが必要な場合は折り返し先の電話番号が必要です",
            ));
        }
        None
    } else {
        match parse_callback_number(&input.callback_number) {
            Ok(n) => Some(n),
            Err(m) => {
                errors.push(err("callback_number", m));
                None
            }
        }
    };
    let purpose = clean("purpose", &input.purpose, MAX_PURPOSE, true)
        .map_err(|e| errors.push(e))
        .unwrap_or_default();
    let category = input.category.trim().to_owned();
    if !CATEGORIES.contains(&category.as_str()) {
        errors.push(err(
            "category",
            &format!("分類を選んでください（{}）", CATEGORIES.join(", ")),
        ));
    }
    if category == "normal" && purpose.is_empty() {
        errors.push(err("purpose", "用件を入力してください"));
    }
    if input.hearing_answers.len() > hearing_items.len() {
        errors.push(err("hearing", "ヒアリング項目の数と回答の数が合いません"));
    }
    let mut hearing_answers = Vec::new();
    for (i, item) in hearing_items.iter().enumerate() {
        let raw = input
            .hearing_answers
            .get(i)
            .map(String::as_str)
            .unwrap_or("");
        match clean("hearing", raw, MAX_ANSWER, true) {
            Ok(answer) => hearing_answers.push(HearingAnswer {
                item: item.clone(),
                answer,
            }),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidRecord {
        caller_name,
        callback_number,
        callback_wanted: callback_wanted.unwrap_or(false),
        purpose,
        category,
        hearing_answers,
    })
}

/// The content of a report: everything a contractor needs, the same for every channel.
/// Stored as the outbox payload; the webhook body is exactly this (plus the key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// "record" (a first-response record) or "message" (left on overflow).
    pub kind: String,
    pub record_id: Option<i64>,
    pub version: i64,
    /// The record this one corrects (its report was sent before).
    pub supersedes: Option<i64>,
    pub call_id: i64,
    pub contractor_id: i64,
    pub contractor_name: String,
    /// When the call arrived (UTC).
    pub received_at: DateTime<Utc>,
    /// The caller's number as presented, `None` when withheld (非通知).
    pub caller: Option<String>,
    /// The contractor's number the call came in on (national format).
    pub number: String,
    pub caller_name: String,
    pub callback_number: Option<String>,
    pub callback_wanted: bool,
    pub purpose: String,
    pub category: String,
    pub hearing_answers: Vec<HearingAnswer>,
    /// The operator (seat name) or admin who wrote it.
    pub written_by: String,
    pub written_at: DateTime<Utc>,
    /// A voice message (kind "message"): its length and the recording's file name on the
    /// daemon's host (`<data_dir>/recordings/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_message: Option<VoiceMessageInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceMessageInfo {
    pub duration_ms: i64,
    pub recording: String,
}

/// The facts of a call a message report needs (read by the ledger in the transaction that
/// stores the voice message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFacts {
    pub call_id: i64,
    pub contractor_id: i64,
    pub contractor_name: String,
    pub received_at: DateTime<Utc>,
    pub caller: Option<String>,
    /// E.164 as stored.
    pub number: String,
    pub duration_ms: i64,
    pub recording: String,
    pub at: DateTime<Utc>,
}

impl Report {
    /// The report of a voice message left on overflow (issue #6 §4): nobody could answer,
    /// the caller left a message. Sent through the same outbox and channels as records.
    pub fn voice_message(f: &MessageFacts) -> Report {
        Report {
            kind: "message".into(),
            record_id: None,
            version: 1,
            supersedes: None,
            call_id: f.call_id,
            contractor_id: f.contractor_id,
            contractor_name: f.contractor_name.clone(),
            received_at: f.received_at,
            caller: f.caller.clone(),
            number: crate::number::E164::parse_jp(&f.number)
                .map(|e| e.national())
                .unwrap_or_else(|_| f.number.clone()),
            caller_name: String::new(),
            callback_number: None,
            callback_wanted: false,
            purpose: String::new(),
            category: "other".into(),
            hearing_answers: Vec::new(),
            written_by: "smartdesk".into(),
            written_at: f.at,
            voice_message: Some(VoiceMessageInfo {
                duration_ms: f.duration_ms,
                recording: f.recording.clone(),
            }),
        }
    }
}

fn tokyo(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Tokyo)
        .format("%Y年%m月%d日 %H:%M")
        .to_string()
}

/// A caller number for people: national format for Japanese numbers.
pub fn display_number(n: Option<&str>) -> String {
    match n {
        None => "非通知".to_owned(),
        Some(n) => crate::number::E164::parse_jp(n)
            .map(|e| e.national())
            .unwrap_or_else(|_| n.to_owned()),
    }
}

impl Report {
    /// A test report ("send test report" in the contractor portal, issue #8 §2): proves the
    /// channels work; goes through the same outbox and delivery as real reports.
    pub fn test(contractor_id: i64, contractor_name: &str, by: &str, at: DateTime<Utc>) -> Report {
        Report {
            kind: "test".into(),
            record_id: None,
            version: 1,
            supersedes: None,
            call_id: 0,
            contractor_id,
            contractor_name: contractor_name.to_owned(),
            received_at: at,
            caller: None,
            number: String::new(),
            caller_name: String::new(),
            callback_number: None,
            callback_wanted: false,
            purpose: "これはテスト送信です。smartdesk 契約者画面の「テスト送信」から送られました。"
                .into(),
            category: "other".into(),
            hearing_answers: Vec::new(),
            written_by: by.to_owned(),
            written_at: at,
            voice_message: None,
        }
    }

    pub fn email_subject(&self) -> String {
        if self.kind == "test" {
            return format!(
                "【テスト送信】smartdesk 報告のテスト（{}）",
                tokyo(self.received_at)
            );
        }
        if self.voice_message.is_some() {
            return format!(
                "【伝言】お電話のご報告：{}（{}）",
                display_number(self.caller.as_deref()),
                tokyo(self.received_at)
            );
        }
        let who = if self.caller_name.is_empty() {
            display_number(self.caller.as_deref())
        } else {
            format!("{}様", self.caller_name)
        };
        let head = if self.supersedes.is_some() {
            "【訂正】"
        } else {
            ""
        };
        format!("{head}お電話のご報告：{who}（{}）", tokyo(self.received_at))
    }

    /// Plain text, one fact a line; the same text goes to Slack.
    pub fn text(&self) -> String {
        if let Some(m) = &self.voice_message {
            return self.message_text(m);
        }
        let mut s = String::new();
        s.push_str(&format!("{} 御中\n\n", self.contractor_name));
        if let Some(old) = self.supersedes {
            s.push_str(&format!(
                "先にお送りしたご報告（記録 {old}）を訂正いたします。\n\n"
            ));
        }
        s.push_str("お電話をお受けしましたのでご報告いたします。\n\n");
        s.push_str(&format!("受付日時：{}\n", tokyo(self.received_at)));
        s.push_str(&format!(
            "発信者番号：{}\n",
            display_number(self.caller.as_deref())
        ));
        s.push_str(&format!(
            "お名前・会社名：{}\n",
            if self.caller_name.is_empty() {
                "（お名乗りなし）"
            } else {
                &self.caller_name
            }
        ));
        s.push_str(&format!(
            "折り返し：{}\n",
            if self.callback_wanted {
                "要"
            } else {
                "不要"
            }
        ));
        if let Some(n) = &self.callback_number {
            s.push_str(&format!("折り返し先：{n}\n"));
        }
        s.push_str(&format!("分類：{}\n", category_label(&self.category)));
        s.push_str(&format!(
            "用件：\n{}\n",
            if self.purpose.is_empty() {
                "（なし）"
            } else {
                &self.purpose
            }
        ));
        if !self.hearing_answers.is_empty() {
            s.push_str("\nヒアリング項目：\n");
            for h in &self.hearing_answers {
                s.push_str(&format!("・{}：{}\n", h.item, h.answer));
            }
        }
        s.push_str(&format!(
            "\n着信番号：{}\n対応者：{}\n記録番号：{}（第{}版）\n",
            self.number,
            self.written_by,
            self.record_id.unwrap_or_default(),
            self.version
        ));
        s.push_str("\n-- \nsmartdesk 受電代行\n");
        s
    }

    fn message_text(&self, m: &VoiceMessageInfo) -> String {
        let mut s = String::new();
        s.push_str(&format!("{} 御中\n\n", self.contractor_name));
        s.push_str("オペレーターがお受けできなかったお電話で、お客様が伝言を残されました。\n\n");
        s.push_str(&format!("受付日時：{}\n", tokyo(self.received_at)));
        s.push_str(&format!(
            "発信者番号：{}\n",
            display_number(self.caller.as_deref())
        ));
        s.push_str(&format!(
            "伝言の長さ：{}秒\n録音：{}\n",
            (m.duration_ms + 500) / 1000,
            m.recording
        ));
        s.push_str(&format!("\n着信番号：{}\n", self.number));
        s.push_str("\n-- \nsmartdesk 受電代行\n");
        s
    }

    /// The webhook's JSON body: the report with its idempotency key.
    pub fn webhook_body(&self, key: &str) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("idempotency_key".into(), key.into());
        }
        v.to_string()
    }

    /// A Slack incoming-webhook message.
    pub fn slack_body(&self) -> String {
        serde_json::json!({ "text": format!("*{}*\n{}", self.email_subject(), self.text()) })
            .to_string()
    }
}

/// The webhook signature header's name and value: `sha256=` and the hex HMAC-SHA256 of the
/// exact body bytes under the channel's secret.
pub const SIGNATURE_HEADER: &str = "X-Smartdesk-Signature";
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Retry schedule: `initial` doubled per failed attempt, at most `max`.
pub fn backoff(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let shift = attempts.saturating_sub(1).min(30);
    initial.saturating_mul(1u32 << shift).min(max)
}

/// A channel as the admin gives it; the error names the flag.
pub fn parse_channel(
    kind: &str,
    target: &str,
    secret: Option<&str>,
) -> Result<NewChannel, FieldError> {
    let target = target.trim();
    match kind {
        "email" => {
            let ok = target.parse::<lettre::Address>().is_ok() && !target.contains(['<', '>']);
            if !ok {
                return Err(err(
                    "--email",
                    &format!("{target:?} is not an e-mail address"),
                ));
            }
        }
        "webhook" | "slack" => {
            let field = if kind == "webhook" {
                "--webhook"
            } else {
                "--slack"
            };
            let url = reqwest::Url::parse(target)
                .map_err(|_| err(field, &format!("{target:?} is not a URL")))?;
            if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                return Err(err(field, "must be an http:// or https:// URL"));
            }
        }
        _ => return Err(err("kind", "unknown channel kind")),
    }
    let secret = match (kind, secret) {
        ("webhook", Some(s)) if s.len() >= 16 => Some(s.to_owned()),
        ("webhook", Some(_)) => {
            return Err(err("--webhook-secret", "must be at least 16 characters"))
        }
        ("webhook", None) => {
            return Err(err(
                "--webhook-secret",
                "a webhook needs a secret to sign its requests",
            ))
        }
        _ => None,
    };
    Ok(NewChannel {
        kind: kind.to_owned(),
        target: target.to_owned(),
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> RecordInput {
        RecordInput {
            caller_name: " 山田商事 山田様 ".into(),
            callback_number: "090-1234-5678".into(),
            callback_wanted: "yes".into(),
            purpose: "見積もりの件でお電話ください。".into(),
            category: "normal".into(),
            hearing_answers: vec!["東京".into()],
        }
    }

    #[test]
    fn a_good_record_passes_trimmed() {
        let v = validate(&input(), &["ご住所".into()]).expect("valid");
        assert_eq!(v.caller_name, "山田商事 山田様");
        assert_eq!(v.callback_number.as_deref(), Some("090-1234-5678"));
        assert!(v.callback_wanted);
        assert_eq!(v.hearing_answers[0].item, "ご住所");
    }

    #[test]
    fn callback_wanted_needs_a_number() {
        let mut i = input();
        i.hearing_answers.clear();
        i.callback_number = " ".into();
        let e = validate(&i, &[]).expect_err("needs number");
        assert_eq!(e[0].field, "callback_number");
        i.callback_wanted = "no".into();
        assert!(validate(&i, &[]).is_ok());
    }

    #[test]
    fn every_problem_is_named() {
        let i = RecordInput {
            caller_name: "a\u{7}b".into(),
            callback_number: "12ab".into(),
            callback_wanted: "maybe".into(),
            purpose: String::new(),
            category: "spam".into(),
            hearing_answers: vec![],
        };
        let fields: Vec<_> = validate(&i, &[])
            .expect_err("invalid")
            .iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "caller_name",
                "callback_wanted",
                "callback_number",
                "category"
            ]
        );
    }

    #[test]
    fn numbers() {
        assert!(parse_callback_number("03-1234-5678").is_ok());
        assert!(parse_callback_number("+81 90 1234 5678").is_ok());
        assert!(parse_callback_number("1234").is_err());
        assert!(parse_callback_number("03-1234-567x").is_err());
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let s = Duration::from_secs;
        assert_eq!(backoff(1, s(2), s(60)), s(2));
        assert_eq!(backoff(2, s(2), s(60)), s(4));
        assert_eq!(backoff(5, s(2), s(60)), s(32));
        assert_eq!(backoff(6, s(2), s(60)), s(60));
        assert_eq!(backoff(99, s(2), s(60)), s(60));
    }

    #[test]
    fn channels_are_checked_by_flag() {
        assert!(parse_channel("email", "ops@example.co.jp", None).is_ok());
        assert_eq!(
            parse_channel("email", "not-an-address", None)
                .expect_err("bad")
                .field,
            "--email"
        );
        assert_eq!(
            parse_channel("webhook", "ftp://x", Some("0123456789abcdef"))
                .expect_err("bad")
                .field,
            "--webhook"
        );
        assert_eq!(
            parse_channel("webhook", "https://x.example/hook", None)
                .expect_err("no secret")
                .field,
            "--webhook-secret"
        );
        assert!(parse_channel("slack", "https://hooks.example/T/B/x", None).is_ok());
    }

    #[test]
    fn report_text_is_japanese_and_complete() {
        let r = Report {
            kind: "record".into(),
            record_id: Some(7),
            version: 1,
            supersedes: None,
            call_id: 3,
            contractor_id: 1,
            contractor_name: "株式会社ABC".into(),
            received_at: "2026-11-25T01:02:00Z".parse().expect("t"),
            caller: Some("+819012345678".into()),
            number: "03-1234-5678".into(),
            caller_name: "山田".into(),
            callback_number: Some("090-1234-5678".into()),
            callback_wanted: true,
            purpose: "見積もり".into(),
            category: "normal".into(),
            hearing_answers: vec![],
            written_by: "op1".into(),
            written_at: "2026-11-25T01:05:00Z".parse().expect("t"),
            voice_message: None,
        };
        assert_eq!(
            r.email_subject(),
            "お電話のご報告：山田様（2026年11月25日 10:02）"
        );
        let t = r.text();
        assert!(t.contains("発信者番号：09012345678"), "{t}");
        assert!(t.contains("折り返し：要"));
        let body: serde_json::Value = serde_json::from_str(&r.webhook_body("k1")).expect("json");
        assert_eq!(body["idempotency_key"], "k1");
        assert_eq!(body["record_id"], 7);
    }
}

/// Who writes a record, and which record it corrects.
#[derive(Debug, Clone)]
pub struct Author {
    /// The seat the record is written at (`None` for an admin at the CLI).
    pub seat_id: Option<i64>,
    /// Seat name, or `admin:NAME`.
    pub name: String,
}

/// Why a record was not written.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Ledger(#[from] crate::ledger::LedgerError),
}

/// The hearing items that apply to a call of this contractor today: its items when the
/// contract has the hearing option on that day (SPEC: ヒアリングオプション), else none.
pub async fn hearing_items_on(
    ledger: &crate::ledger::Ledger,
    c: &crate::ledger::Contractor,
    at: DateTime<Utc>,
) -> Result<Vec<String>, crate::ledger::LedgerError> {
    let h = ledger.contract_history(c).await?;
    let day = at.with_timezone(&chrono_tz::Asia::Tokyo).date_naive();
    Ok(if h.plan_on(day).1 {
        c.hearing_items.clone()
    } else {
        Vec::new()
    })
}

/// Validates and writes a record (a correction when `supersedes` is set) with its reports
/// queued in the same transaction, then applies the complaint rule when a complaint is
/// involved (SPEC §6). Returns the record id and the number of reports queued.
pub async fn submit(
    ledger: &crate::ledger::Ledger,
    call_row: i64,
    supersedes: Option<i64>,
    input: &RecordInput,
    author: &Author,
    auto_suspend: bool,
    now: DateTime<Utc>,
) -> Result<(i64, usize), SubmitError> {
    use crate::ledger::{LedgerError, NewFirstResponse, RecordFilter};
    let call = ledger
        .call_by_id(call_row)
        .await?
        .ok_or(LedgerError::NotFound {
            what: "call",
            id: call_row.to_string(),
        })?;
    let contractor_id = call
        .contractor_id
        .ok_or_else(|| SubmitError::Invalid(vec![err("call", "この通話には契約者がありません")]))?;
    let contractor = ledger.contractor(contractor_id).await?;
    let previous = match supersedes {
        Some(old) => ledger
            .first_responses(&RecordFilter {
                id: Some(old),
                ..RecordFilter::default()
            })
            .await?
            .into_iter()
            .next(),
        None => None,
    };
    let items = hearing_items_on(ledger, &contractor, call.started_at).await?;
    let v = validate(input, &items).map_err(SubmitError::Invalid)?;
    let report = |record_id: i64, version: i64| {
        serde_json::to_value(Report {
            kind: "record".into(),
            record_id: Some(record_id),
            version,
            supersedes,
            call_id: call.id,
            contractor_id,
            contractor_name: contractor.name.clone(),
            received_at: call.started_at,
            caller: call.caller.clone(),
            number: crate::number::E164::parse_jp(&call.number)
                .map(|e| e.national())
                .unwrap_or_else(|_| call.number.clone()),
            caller_name: v.caller_name.clone(),
            callback_number: v.callback_number.clone(),
            callback_wanted: v.callback_wanted,
            purpose: v.purpose.clone(),
            category: v.category.clone(),
            hearing_answers: v.hearing_answers.clone(),
            written_by: author.name.clone(),
            written_at: now,
            voice_message: None,
        })
        .unwrap_or_default()
    };
    let (id, queued) = ledger
        .write_first_response(
            &NewFirstResponse {
                call_row,
                contractor_id,
                seat_id: author.seat_id,
                supersedes,
                caller_name: v.caller_name.clone(),
                callback_number: v.callback_number.clone(),
                callback_wanted: v.callback_wanted,
                purpose: v.purpose.clone(),
                category: v.category.clone(),
                hearing_answers: serde_json::to_value(&v.hearing_answers).unwrap_or_default(),
                written_by: author.name.clone(),
                created_at: now,
            },
            &report,
        )
        .await?;
    let complaint_involved =
        v.category == "complaint" || previous.is_some_and(|p| p.category == "complaint");
    if complaint_involved {
        match crate::complaints::evaluate(ledger, contractor_id, auto_suspend, now).await {
            Ok(verdict) if verdict.flagged.is_some() => tracing::warn!(
                contractor_id,
                suspended_now = verdict.suspended_now,
                "complaint rule tripped (SPEC §6)"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!(contractor_id, error = %e, "complaint rule not evaluated"),
        }
    }
    Ok((id, queued))
}
