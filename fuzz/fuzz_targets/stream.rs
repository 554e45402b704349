//! A TCP byte stream through `StreamFramer`, cut into reads of varying size the way the edge
//! (`daemon/sip.rs`) drives it: `push` one read, then `next_frame` until `None`.
//!
//! Oracles beyond "no panic":
//! * memory: after draining, the framer holds at most `MAX_MESSAGE_SIZE` plus one read;
//! * framing does not depend on how the bytes were cut: the frames (and whether the stream
//!   ends in a fatal error) are the same as when everything arrives in one read;
//! * a rejected frame's stateless answer, and a message's own serialisation, parse.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartdesk::sip::message::{
    parse_datagram, stateless_error_response, Frame, MessageError, StreamFramer, MAX_MESSAGE_SIZE,
};
use smartdesk_fuzz::assert_stateless_answer;

/// The edge's read size (`TCP_READ_CHUNK`).
const READ_CHUNK: usize = 8192;
/// Read sizes cycled through; the first input byte picks where the cycle starts, so the fuzzer
/// controls the cut without any input byte being reserved for it.
const CUTS: [usize; 9] = [1, 2, 3, 7, 64, 500, 1400, 4096, READ_CHUNK];

#[derive(Debug, PartialEq)]
enum Out {
    Frame(Frame),
    /// A fatal error from `next_frame` or `push`; nothing follows it.
    Fatal(MessageError),
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 256 * 1024 {
        return;
    }
    let start = data.first().map_or(0, |b| usize::from(*b));
    let chunked = run(data, |i| CUTS[(start + i) % CUTS.len()]);
    let whole = run(data, |_| usize::MAX);
    // One big read may hold more than the framer accepts in one go; with reads of at most
    // READ_CHUNK the framer refuses early. Compare only when the input fits one read.
    if data.len() <= READ_CHUNK {
        assert_eq!(chunked, whole, "framing depends on how the stream was cut");
    }
    for out in &chunked {
        check(out);
    }
});

fn run(data: &[u8], cut: impl Fn(usize) -> usize) -> Vec<Out> {
    let mut framer = StreamFramer::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = cut(i).min(rest.len());
        i += 1;
        let (read, tail) = rest.split_at(n);
        rest = tail;
        if let Err(e) = framer.push(read) {
            assert!(framer.is_closed());
            out.push(Out::Fatal(e));
            return out;
        }
        while let Some(frame) = framer.next_frame() {
            match frame {
                Ok(f) => out.push(Out::Frame(f)),
                Err(e) => {
                    assert!(framer.is_closed());
                    assert!(framer.next_frame().is_none());
                    out.push(Out::Fatal(e));
                    return out;
                }
            }
        }
        assert!(
            framer.buffered_len() <= MAX_MESSAGE_SIZE + n,
            "framer holds {} bytes after draining a {n}-byte read",
            framer.buffered_len()
        );
    }
    out
}

fn check(out: &Out) {
    match out {
        Out::Frame(Frame::Message(m)) => {
            let bytes = m.to_bytes();
            let back = parse_datagram(&bytes)
                .unwrap_or_else(|e| panic!("own serialisation does not parse ({e}): {bytes:?}"));
            assert_eq!(&back, m.as_ref());
            let mut again = StreamFramer::new();
            again.push(&bytes).unwrap();
            assert_eq!(again.next_frame(), Some(Ok(Frame::Message(m.clone()))));
        }
        Out::Frame(Frame::Rejected { error, raw }) => {
            if let Some(answer) = stateless_error_response(raw, error, "fz") {
                assert_stateless_answer(&answer);
            }
        }
        Out::Frame(Frame::Ping) | Out::Fatal(_) => {}
    }
}
