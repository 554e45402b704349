//! Transaction identity (RFC 3261 §17.1.3 and §17.2.3).

use std::fmt;

use super::envelope::{Kind, Method, TsxMessage};

/// The RFC 3261 branch prefix (§8.1.1.7). Only branches carrying it are matched statefully;
/// RFC 2543 matching (§17.2.3, last paragraphs) is deliberately not implemented: such requests
/// surface as [`super::TsxEvent::NoTransactionMatch`] and the TU handles them statelessly.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// Longest branch or sent-by accepted into a key. Keys live in the table for up to
/// 64·T1 + T4, so an attacker-controlled length must be capped to bound memory per
/// transaction; real stacks use well under 100 characters.
pub const MAX_KEY_FIELD_LEN: usize = 512;

/// Which side of a transaction we play. Part of the key so that a peer echoing one of our
/// client branches can never reach a client transaction through the server table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Client,
    Server,
}

/// Identifies one transaction in a [`super::TransactionLayer`].
///
/// * Client (§17.1.3): top-Via branch + CSeq method.
/// * Server (§17.2.3): top-Via branch + sent-by + request method, where an ACK maps to the
///   INVITE it acknowledges and a CANCEL keeps its own method (§9.2), so a CANCEL is a
///   transaction of its own.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TsxKey {
    role: Role,
    branch: String,
    method: Method,
    /// Empty for client keys: §17.1.3 does not match on sent-by.
    sent_by: String,
}

impl TsxKey {
    /// The key of a client transaction (§17.1.3).
    pub fn client(branch: impl Into<String>, method: Method) -> TsxKey {
        TsxKey {
            role: Role::Client,
            branch: branch.into(),
            method,
            sent_by: String::new(),
        }
    }

    /// The key of a server transaction (§17.2.3). `method` is stored as given; use
    /// [`TsxKey::for_server_request`] to get the ACK→INVITE mapping.
    pub fn server(branch: impl Into<String>, sent_by: impl Into<String>, method: Method) -> TsxKey {
        TsxKey {
            role: Role::Server,
            branch: branch.into(),
            method,
            sent_by: sent_by.into(),
        }
    }

    /// The server key an incoming request matches (§17.2.3), or why it cannot be matched.
    pub fn for_server_request(msg: &TsxMessage) -> Result<TsxKey, Unmatchable> {
        let Kind::Request { method } = &msg.kind else {
            return Err(Unmatchable::NotARequest);
        };
        check_fields(&msg.branch, &msg.sent_by)?;
        let method = match method {
            Method::Ack => Method::Invite,
            other => other.clone(),
        };
        Ok(TsxKey::server(
            msg.branch.clone(),
            msg.sent_by.clone(),
            method,
        ))
    }

    /// The client key an incoming response matches (§17.1.3).
    pub fn for_client_response(msg: &TsxMessage) -> Result<TsxKey, Unmatchable> {
        if !matches!(msg.kind, Kind::Response { .. }) {
            return Err(Unmatchable::NotAResponse);
        }
        check_fields(&msg.branch, "")?;
        Ok(TsxKey::client(msg.branch.clone(), msg.cseq_method.clone()))
    }

    /// The client key of a request the TU is about to send (§17.1.3), with the same field
    /// checks as matching so every key we create can be matched by its responses.
    pub fn for_client_request(msg: &TsxMessage) -> Result<TsxKey, Unmatchable> {
        let Kind::Request { method } = &msg.kind else {
            return Err(Unmatchable::NotARequest);
        };
        check_fields(&msg.branch, "")?;
        Ok(TsxKey::client(msg.branch.clone(), method.clone()))
    }

    /// The INVITE server key a CANCEL targets (§9.2: same matching as §17.2.3 but with the
    /// method taken as INVITE).
    pub(crate) fn invite_for_cancel(cancel: &TsxMessage) -> Result<TsxKey, Unmatchable> {
        if cancel.method() != Some(&Method::Cancel) {
            return Err(Unmatchable::NotACancel);
        }
        check_fields(&cancel.branch, &cancel.sent_by)?;
        Ok(TsxKey::server(
            cancel.branch.clone(),
            cancel.sent_by.clone(),
            Method::Invite,
        ))
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn sent_by(&self) -> &str {
        &self.sent_by
    }
}

impl fmt::Display for TsxKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.role {
            Role::Client => write!(f, "client {} {}", self.method, self.branch),
            Role::Server => write!(f, "server {} {} {}", self.method, self.branch, self.sent_by),
        }
    }
}

/// Why a message cannot be matched to a transaction statefully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmatchable {
    /// Branch lacks [`MAGIC_COOKIE`]: an RFC 2543 peer (§17.2.3); handled statelessly.
    LegacyBranch,
    /// Branch or sent-by longer than [`MAX_KEY_FIELD_LEN`].
    OversizedKey,
    NotARequest,
    NotAResponse,
    NotACancel,
}

fn check_fields(branch: &str, sent_by: &str) -> Result<(), Unmatchable> {
    if branch.len() > MAX_KEY_FIELD_LEN || sent_by.len() > MAX_KEY_FIELD_LEN {
        return Err(Unmatchable::OversizedKey);
    }
    // The cookie alone is not a unique branch; §8.1.1.7 requires something after it.
    if !branch.starts_with(MAGIC_COOKIE) || branch.len() == MAGIC_COOKIE.len() {
        return Err(Unmatchable::LegacyBranch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn request(method: Method, branch: &str, sent_by: &str) -> TsxMessage {
        TsxMessage {
            kind: Kind::Request {
                method: method.clone(),
            },
            branch: branch.into(),
            sent_by: sent_by.into(),
            cseq: 1,
            cseq_method: method,
            call_id: "c".into(),
            from_tag: None,
            to_tag: None,
            bytes: Arc::from(&b""[..]),
        }
    }

    #[test]
    fn ack_matches_the_invite_server_key_and_cancel_keeps_its_own() {
        let invite = TsxKey::for_server_request(&request(Method::Invite, "z9hG4bK1", "h:5060"));
        let ack = TsxKey::for_server_request(&request(Method::Ack, "z9hG4bK1", "h:5060"));
        let cancel = TsxKey::for_server_request(&request(Method::Cancel, "z9hG4bK1", "h:5060"));
        assert_eq!(invite, ack);
        assert_ne!(invite, cancel);
        let target = TsxKey::invite_for_cancel(&request(Method::Cancel, "z9hG4bK1", "h:5060"));
        assert_eq!(target, invite);
    }

    #[test]
    fn sent_by_separates_server_keys_but_not_client_keys() {
        let a = TsxKey::for_server_request(&request(Method::Bye, "z9hG4bK1", "a:5060"));
        let b = TsxKey::for_server_request(&request(Method::Bye, "z9hG4bK1", "b:5060"));
        assert_ne!(a, b);
        let mut resp = request(Method::Bye, "z9hG4bK1", "a:5060");
        resp.kind = Kind::Response { status: 200 };
        let mut resp_b = resp.clone();
        resp_b.sent_by = "b:5060".into();
        assert_eq!(
            TsxKey::for_client_response(&resp),
            TsxKey::for_client_response(&resp_b)
        );
    }

    #[test]
    fn legacy_and_oversized_branches_are_unmatchable() {
        let legacy = request(Method::Invite, "1234", "h");
        assert_eq!(
            TsxKey::for_server_request(&legacy),
            Err(Unmatchable::LegacyBranch)
        );
        let bare = request(Method::Invite, MAGIC_COOKIE, "h");
        assert_eq!(
            TsxKey::for_server_request(&bare),
            Err(Unmatchable::LegacyBranch)
        );
        let long = format!("{MAGIC_COOKIE}{}", "x".repeat(MAX_KEY_FIELD_LEN));
        let huge = request(Method::Invite, &long, "h");
        assert_eq!(
            TsxKey::for_server_request(&huge),
            Err(Unmatchable::OversizedKey)
        );
    }

    #[test]
    fn client_request_and_response_keys_agree() {
        let req = request(Method::Options, "z9hG4bK9", "h");
        let mut resp = req.clone();
        resp.kind = Kind::Response { status: 200 };
        assert_eq!(
            TsxKey::for_client_request(&req),
            TsxKey::for_client_response(&resp)
        );
        assert_eq!(
            TsxKey::for_client_request(&resp),
            Err(Unmatchable::NotARequest)
        );
    }

    #[test]
    fn client_and_server_keys_never_collide() {
        let c = TsxKey::client("z9hG4bK1", Method::Invite);
        let s = TsxKey::server("z9hG4bK1", "", Method::Invite);
        assert_ne!(c, s);
    }
}
