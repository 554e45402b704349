//! An SDP body through `Sdp::parse_bytes`, printing, and the anchor rewrite the B2BUA applies
//! to every offer and answer (`rewrite_for_anchor`).
//!
//! Oracles beyond "no panic": printing is a fixed point after one parse (what we print parses
//! back to the same thing), and what the rewrite produces parses and describes the stream it
//! reports in `MediaInfo`.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use smartdesk::sip::sdp::{rewrite_for_anchor, Codec, Sdp, SdpError};

const ADDRS: [&str; 3] = ["192.0.2.1", "2001:db8::5", "0.0.0.0"];
const CODECS: [&[Codec]; 4] = [
    &[Codec::Pcmu, Codec::Pcma],
    &[Codec::Pcma],
    &[Codec::Pcma, Codec::Pcmu],
    &[],
];

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse_bytes(data) else {
        return;
    };
    let printed = sdp.to_string();
    let reparsed = Sdp::parse(&printed)
        .unwrap_or_else(|e| panic!("printed SDP does not parse ({e}): {printed:?}"));
    assert_eq!(
        reparsed.to_string(),
        printed,
        "printing is not a fixed point"
    );
    for m in &sdp.media {
        let _ = m.is_t38();
        let _ = m.connection.as_ref().map(|c| c.ip());
    }

    // Parameters vary with the input length so that every body meets every configuration
    // without reserving input bytes for them.
    let addr: IpAddr = ADDRS[data.len() % ADDRS.len()].parse().unwrap();
    let codecs = CODECS[(data.len() / 3) % CODECS.len()];
    let port = [40000, 0, 65535][(data.len() / 12) % 3];
    match rewrite_for_anchor(&sdp, addr, port, codecs) {
        Ok((out, info)) => {
            let _ = (
                info.is_t38(),
                info.remote,
                info.remote_rtcp,
                info.direction.as_str(),
            );
            assert!(
                info.stream_index < out.media.len(),
                "anchored stream exists"
            );
            assert_eq!(
                out.media.len(),
                sdp.media.len(),
                "RFC 3264 §6: same m-lines"
            );
            let text = out.to_string();
            match Sdp::parse(&text) {
                Ok(back) => assert_eq!(back.to_string(), text),
                Err(SdpError::TooLarge(_) | SdpError::TooMany(_)) => {}
                Err(e) => panic!("rewritten SDP does not parse ({e}): {text:?}"),
            }
            // Rewriting our own output again (what the other leg's re-offer looks like) works.
            let _ = rewrite_for_anchor(&out, addr, port, codecs);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
