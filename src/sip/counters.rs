//! SIP traffic counters for metrics (issue #9 §2): messages by method and response class in
//! each direction, and transaction timeouts. Plain integers owned by the endpoint; the edge
//! copies them out on request, so counting costs the call path no atomics and no locks.

/// Methods counted by name; anything else counts as `other`.
pub const METHODS: [&str; 8] = [
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "other",
];

/// Per-direction counters: requests by [`METHODS`] index, responses by class (1xx … 6xx).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub requests: [u64; METHODS.len()],
    pub responses: [u64; 6],
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipCounters {
    pub inbound: Traffic,
    pub outbound: Traffic,
    /// Client transactions that timed out (Timer B/F) or hit a transport error.
    pub timeouts: u64,
    /// Datagrams or frames that were not a SIP message.
    pub malformed: u64,
}

fn method_index(m: &[u8]) -> usize {
    METHODS
        .iter()
        .position(|x| x.as_bytes() == m)
        .unwrap_or(METHODS.len() - 1)
}

impl Traffic {
    pub fn count_request(&mut self, method: &str) {
        if let Some(slot) = self.requests.get_mut(method_index(method.as_bytes())) {
            *slot += 1;
        }
    }

    pub fn count_status(&mut self, status: u16) {
        let class = usize::from(status / 100);
        if let Some(slot) = class.checked_sub(1).and_then(|c| self.responses.get_mut(c)) {
            *slot += 1;
        }
    }

    /// Counts one message from its start line (`SIP/2.0 200 OK` or `BYE sip:… SIP/2.0`).
    pub fn count(&mut self, bytes: &[u8]) {
        let first = bytes.split(|b| *b == b' ').next().unwrap_or_default();
        if first == b"SIP/2.0" {
            let class = bytes
                .get(8)
                .and_then(|c| c.checked_sub(b'1'))
                .map(usize::from)
                .filter(|c| *c < 6);
            if let Some(slot) = class.and_then(|c| self.responses.get_mut(c)) {
                *slot += 1;
            }
        } else if !first.is_empty() && first.iter().all(u8::is_ascii_uppercase) {
            if let Some(slot) = self.requests.get_mut(method_index(first)) {
                *slot += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines_are_classified() {
        let mut t = Traffic::default();
        t.count(b"INVITE sip:a@b SIP/2.0\r\n");
        t.count(b"SUBSCRIBE sip:a@b SIP/2.0\r\n");
        t.count(b"SIP/2.0 200 OK\r\n");
        t.count(b"SIP/2.0 487 Request Terminated\r\n");
        t.count(b"SIP/2.0 9");
        t.count(b"\r\n");
        t.count(b"");
        assert_eq!(t.requests[0], 1);
        assert_eq!(t.requests[METHODS.len() - 1], 1);
        assert_eq!(t.responses, [0, 1, 0, 1, 0, 0]);
    }
}
