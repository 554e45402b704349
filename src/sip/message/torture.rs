//! RFC 4475 torture messages, size limits and fuzz-style invariants for the message layer.

use std::path::PathBuf;

use proptest::prelude::*;

use super::*;

/// The torture corpus: `SMARTDESK_TORTURE_DIR` wins, else the in-repository copy.
fn torture_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SMARTDESK_TORTURE_DIR") {
        return PathBuf::from(dir);
    }
    // A byte-exact copy of ../shared/testdata/sip-torture lives in the repository so the
    // suite runs from any clone; `manifest_hashes_match` proves the copy is exact.
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sip-torture"))
}

/// Every file's bytes match the sha256 its MANIFEST row records (the files must never
/// be rewritten by git or an editor: they are marked `-text`).
#[test]
fn manifest_hashes_match() {
    use sha2::{Digest, Sha256};
    let manifest = String::from_utf8(load("MANIFEST.tsv")).expect("utf8 manifest");
    let mut checked = 0;
    for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, size, sha) = (cols[0], cols[5], cols[6]);
        let bytes = load(file);
        assert_eq!(bytes.len().to_string(), size, "{file} size");
        assert_eq!(hex::encode(Sha256::digest(&bytes)), sha, "{file} sha256");
        checked += 1;
    }
    assert_eq!(checked, 50);
}

fn load(file: &str) -> Vec<u8> {
    let path = torture_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Well-formed; `precheck` is what [`uas_precheck`] answers (`None`: process normally).
    Accept { precheck: Option<u16> },
    /// Refused with this status.
    Reject(u16),
    /// Silently dropped (a malformed response).
    Drop,
}

const fn ok() -> Expect {
    Expect::Accept { precheck: None }
}

const fn refused_by_uas(status: u16) -> Expect {
    Expect::Accept {
        precheck: Some(status),
    }
}

/// One line per MANIFEST.tsv entry, encoding its expected_behaviour column.
const TABLE: &[(&str, Expect)] = &[
    ("wsinv.dat", ok()),
    ("intmeth.dat", refused_by_uas(501)),
    ("esc01.dat", ok()),
    ("escnull.dat", ok()),
    ("esc02.dat", refused_by_uas(501)),
    ("lwsdisp.dat", ok()),
    ("longreq.dat", ok()),
    ("dblreq.dat", ok()),
    ("semiuri.dat", ok()),
    ("transports.dat", ok()),
    // MESSAGE is not among the B2BUA's methods, so the UAS answers 405 (RFC 3261 §8.2.1).
    ("mpart01.dat", refused_by_uas(405)),
    ("unreason.dat", ok()),
    ("noreason.dat", ok()),
    ("badinv01.dat", Expect::Reject(400)),
    ("clerr.dat", Expect::Reject(400)),
    ("ncl.dat", Expect::Reject(400)),
    ("scalar02.dat", Expect::Reject(400)),
    ("scalarlg.dat", Expect::Drop),
    ("quotbal.dat", Expect::Reject(400)),
    ("ltgtruri.dat", Expect::Reject(400)),
    ("lwsruri.dat", Expect::Reject(400)),
    ("lwsstart.dat", Expect::Reject(400)),
    ("trws.dat", Expect::Reject(400)),
    ("escruri.dat", Expect::Reject(400)),
    // Date plays no part in our processing, so RFC 4475 §3.1.2.12 says ignore its value.
    ("baddate.dat", ok()),
    ("regbadct.dat", Expect::Reject(400)),
    ("badaspec.dat", Expect::Reject(400)),
    ("baddn.dat", Expect::Reject(400)),
    ("badvers.dat", Expect::Reject(505)),
    ("mismatch01.dat", Expect::Reject(400)),
    ("mismatch02.dat", Expect::Reject(501)),
    ("bigcode.dat", Expect::Drop),
    // Branch "z9hG4bK" alone: accepted, the transaction layer falls back to RFC 2543 matching.
    ("badbranch.dat", ok()),
    ("insuf.dat", Expect::Reject(400)),
    ("unkscm.dat", refused_by_uas(416)),
    ("novelsc.dat", refused_by_uas(416)),
    ("unksm2.dat", refused_by_uas(400)),
    ("bext01.dat", refused_by_uas(420)),
    ("invut.dat", refused_by_uas(415)),
    // 401/405 is the registrar's decision, not a syntax or capability matter.
    ("regaut01.dat", ok()),
    ("multi01.dat", Expect::Reject(400)),
    ("mcl01.dat", Expect::Reject(400)),
    ("bcast.dat", ok()),
    // A UAS processes Max-Forwards 0; the flag is there for forwarding decisions.
    ("zeromf.dat", ok()),
    ("cparam01.dat", ok()),
    ("cparam02.dat", ok()),
    ("regescrt.dat", ok()),
    ("sdp01.dat", refused_by_uas(406)),
    ("inv2543.dat", ok()),
    ("test.dat", Expect::Reject(400)),
];

/// RFC 4475 "invalid" messages we accept, each because the RFC allows ignoring the defect.
const LIBERAL: &[&str] = &["baddate.dat"];

const SUPPORTED: &[&str] = &["100rel", "timer", "replaces"];
const ALLOWED: &[&str] = &[
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "UPDATE", "INFO",
];

fn expected(file: &str) -> Expect {
    TABLE
        .iter()
        .find(|(f, _)| *f == file)
        .map(|(_, e)| *e)
        .unwrap_or_else(|| panic!("{file} has no expectation"))
}

#[test]
fn table_covers_the_manifest_exactly() {
    let manifest = String::from_utf8(load("MANIFEST.tsv")).unwrap();
    let mut files = Vec::new();
    for line in manifest.lines().skip(1).filter(|l| !l.is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, verdict, size) = (cols[0], cols[1], cols[5]);
        let data = load(file);
        assert_eq!(data.len().to_string(), size, "{file}: corpus file changed");
        match (verdict, expected(file)) {
            ("valid", Expect::Accept { .. }) => {}
            ("invalid", Expect::Reject(_) | Expect::Drop) => {}
            ("invalid", Expect::Accept { .. }) if LIBERAL.contains(&file) => {}
            (v, e) => panic!("{file}: manifest says {v}, table says {e:?}"),
        }
        files.push(file.to_owned());
    }
    assert_eq!(files.len(), TABLE.len());
    assert_eq!(files.len(), 50);
}

#[test]
fn every_torture_message_through_parse_datagram() {
    for (file, expect) in TABLE {
        let data = load(file);
        let result = parse_datagram(&data);
        match (expect, &result) {
            (Expect::Accept { precheck }, Ok(m)) => {
                let got = uas_precheck(m, SUPPORTED, ALLOWED).map(|r| r.status);
                assert_eq!(got, *precheck, "{file}: uas_precheck");
                let again = parse_datagram(&m.to_bytes())
                    .unwrap_or_else(|e| panic!("{file}: re-parse of own output: {e}"));
                assert_eq!(&again, m, "{file}: round trip");
                let _ = m.as_rsip();
            }
            (Expect::Reject(code), Err(e)) => {
                assert_eq!(e.status(), Some(*code), "{file}: {e}");
                assert!(
                    stateless_error_response(&data, e, "stateless1").is_some()
                        || file == &"test.dat",
                    "{file}: no stateless answer"
                );
            }
            (Expect::Drop, Err(e)) => assert_eq!(e.status(), None, "{file}: {e}"),
            (e, r) => panic!("{file}: expected {e:?}, got {r:?}"),
        }
    }
}

#[test]
fn torture_details() {
    let m = parse_datagram(&load("wsinv.dat")).unwrap();
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.cseq(), 9);
    assert_eq!(m.via_count(), 3);
    assert_eq!(m.top_via().branch(), Some("390skdjuw"));
    assert_eq!(m.vias()[2].branch(), Some("z9hG4bK30239"));
    assert_eq!(m.from_tag(), Some("98asjd8"));
    assert_eq!(m.to_tag(), Some("1918181833n"));
    assert_eq!(
        m.header("newfangledheader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(m.header("UnknownHeaderWithUnusualValue"), Some(";;,,;;,;"));
    assert_eq!(m.header("s"), Some(""));
    assert_eq!(m.body().len(), 150);

    let m = parse_datagram(&load("intmeth.dat")).unwrap();
    assert_eq!(
        m.method().map(Method::as_str),
        Some("!interesting-Method0123456789_*+`.%indeed'~")
    );
    assert!(m.as_rsip().is_none(), "rsip cannot hold extension methods");
    assert!(m.header("To").unwrap().contains('\0'));

    let m = parse_datagram(&load("esc02.dat")).unwrap();
    assert_eq!(m.method(), Some(&Method::Extension("RE%47IST%45R".into())));
    assert_eq!(m.headers("Contact").count(), 2);
    assert_eq!(
        m.header("C%6Fntact"),
        Some("<sip:alias2@host2.example.com>")
    );

    let m = parse_datagram(&load("escnull.dat")).unwrap();
    let contacts: Vec<&str> = m.headers("m").collect();
    assert_eq!(
        contacts,
        [
            "<sip:%00@host5.example.com>",
            "<sip:%00%00@host5.example.com>"
        ]
    );

    let m = parse_datagram(&load("dblreq.dat")).unwrap();
    assert_eq!(m.method(), Some(&Method::Register));
    assert_eq!(m.call_id(), "dblreq.0ha0isndaksdj99sdfafnl3lk233412");
    assert!(m.body().is_empty());

    let m = parse_datagram(&load("mpart01.dat")).unwrap();
    assert_eq!(m.body().len(), 553);
    assert_eq!(m.content_type(), Some("multipart/mixed"));

    let m = parse_datagram(&load("inv2543.dat")).unwrap();
    assert_eq!(m.body().len(), 105);
    assert_eq!(m.top_via().branch(), None);
    assert_eq!(m.from_tag(), None);
    assert_eq!(m.max_forwards(), None);

    let m = parse_datagram(&load("unreason.dat")).unwrap();
    assert_eq!(m.status(), Some(200));
    assert!(m.reason().unwrap().starts_with("= 2**3 * 5**2 "));
    assert!(!m.reason().unwrap().is_ascii());
    let m = parse_datagram(&load("noreason.dat")).unwrap();
    assert_eq!((m.status(), m.reason()), (Some(100), Some("")));

    let m = parse_datagram(&load("longreq.dat")).unwrap();
    assert_eq!(m.via_count(), 34);
    assert!(m.call_id().len() > 100);

    let m = parse_datagram(&load("transports.dat")).unwrap();
    let t: Vec<&str> = m.vias().iter().map(Via::transport).collect();
    assert_eq!(t, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);

    let m = parse_datagram(&load("bcast.dat")).unwrap();
    assert_eq!(m.vias()[1].host(), "255.255.255.255");

    let m = parse_datagram(&load("semiuri.dat")).unwrap();
    assert_eq!(
        m.request_uri(),
        Some("sip:user;par=u%40example.net@example.com")
    );

    let m = parse_datagram(&load("esc01.dat")).unwrap();
    assert_eq!(m.from().uri, "sip:I%20have%20spaces@example.net");

    assert!(parse_datagram(&load("zeromf.dat"))
        .unwrap()
        .is_zero_max_forwards());

    let m = parse_datagram(&load("cparam01.dat")).unwrap();
    assert_eq!(
        m.header("Contact"),
        Some("sip:+19725552222@gw1.example.net;unknownparam")
    );

    let m = parse_datagram(&load("bext01.dat")).unwrap();
    let r = uas_precheck(&m, SUPPORTED, ALLOWED).unwrap();
    assert_eq!(
        r.headers,
        vec![(
            "Unsupported".to_owned(),
            "nothingSupportsThis, nothingSupportsThisEither".to_owned()
        )]
    );
}

/// rsip 0.4 cannot hold extension methods (intmeth, esc02), a user part with `;` (semiuri)
/// or a non-SIP Request-URI (unkscm); everything else we accept it represents.
#[test]
fn rsip_represents_all_but_four_accepted_messages() {
    let mut unrepresentable = Vec::new();
    for (file, _) in TABLE {
        if let Ok(m) = parse_datagram(&load(file)) {
            if m.as_rsip().is_none() {
                unrepresentable.push(*file);
            }
        }
    }
    assert_eq!(
        unrepresentable,
        ["intmeth.dat", "esc02.dat", "semiuri.dat", "unkscm.dat"]
    );
}

/// Deterministic xorshift so chunked feeding is reproducible.
struct Chunks(u64);

impl Chunks {
    fn next(&mut self, max: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % max as u64) as usize + 1
    }
}

#[derive(Debug, PartialEq)]
enum Seen {
    Msg(Box<Message>),
    Ping,
    Rejected(MessageError),
    Fatal(MessageError),
}

/// Feeds `data` in chunks (sizes from `chunk`), draining after every push.
fn feed(data: &[u8], mut chunk: impl FnMut() -> usize) -> (Vec<Seen>, StreamFramer) {
    let mut framer = StreamFramer::new();
    let mut seen = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = chunk().min(rest.len());
        let (now, later) = rest.split_at(n);
        rest = later;
        if let Err(e) = framer.push(now) {
            seen.push(Seen::Fatal(e));
            break;
        }
        assert!(framer.buffered_len() <= MAX_MESSAGE_SIZE + n);
        while let Some(frame) = framer.next_frame() {
            seen.push(match frame {
                Ok(Frame::Message(m)) => Seen::Msg(m),
                Ok(Frame::Ping) => Seen::Ping,
                Ok(Frame::Rejected { error, .. }) => Seen::Rejected(error),
                Err(e) => Seen::Fatal(e),
            });
        }
        if framer.is_closed() {
            break;
        }
    }
    (seen, framer)
}

fn feed_all_ways(file: &str, data: &[u8], check: impl Fn(&[Seen], &StreamFramer)) {
    let (seen, framer) = feed(data, || 1);
    check(&seen, &framer);
    for seed in 1..=8u64 {
        let mut rng = Chunks(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let (seen2, framer2) = feed(data, || rng.next(97));
        assert_eq!(
            seen2, seen,
            "{file}: chunking changed the outcome (seed {seed})"
        );
        check(&seen2, &framer2);
    }
}

#[test]
fn stream_framing_of_torture_messages() {
    for file in [
        "wsinv.dat",
        "longreq.dat",
        "intmeth.dat",
        "mpart01.dat",
        "unreason.dat",
    ] {
        let data = load(file);
        let expected = parse_datagram(&data).unwrap();
        feed_all_ways(file, &data, |seen, framer| {
            assert_eq!(seen, [Seen::Msg(Box::new(expected.clone()))], "{file}");
            assert_eq!(framer.buffered_len(), 0);
        });
    }
    feed_all_ways("clerr.dat", &load("clerr.dat"), |seen, framer| {
        assert!(seen.is_empty(), "clerr waits for the missing bytes");
        assert!(!framer.is_closed());
        assert!(framer.buffered_len() < MAX_MESSAGE_SIZE);
    });
    for (file, fatal) in [
        ("ncl.dat", MessageError::InvalidContentLength),
        ("mcl01.dat", MessageError::ConflictingContentLength),
        ("inv2543.dat", MessageError::MissingContentLength),
    ] {
        feed_all_ways(file, &load(file), |seen, framer| {
            assert_eq!(seen, [Seen::Fatal(fatal.clone())], "{file}");
            assert!(framer.is_closed());
            assert_eq!(framer.buffered_len(), 0);
        });
    }
    // On a stream the bytes after the REGISTER really are the next message (RFC 3261 §18.3);
    // the INVITE's body is 5 bytes longer than its Content-Length, and those 5 bytes
    // ("C\r\n\r\n") then form a header section without Content-Length: fatal.
    feed_all_ways("dblreq.dat", &load("dblreq.dat"), |seen, framer| {
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(matches!(&seen[0], Seen::Msg(m) if m.method() == Some(&Method::Register)));
        assert!(matches!(&seen[1], Seen::Msg(m) if m.method() == Some(&Method::Invite)));
        assert_eq!(seen[2], Seen::Fatal(MessageError::MissingContentLength));
        assert!(framer.is_closed());
    });
    // A framed but invalid message does not close the connection.
    let mut data = load("multi01.dat");
    data.extend_from_slice(b"\r\n\r\n");
    data.extend(load("wsinv.dat"));
    feed_all_ways("multi01+wsinv", &data, |seen, framer| {
        assert!(matches!(
            &seen[0],
            Seen::Rejected(MessageError::DuplicateHeader(_))
        ));
        assert_eq!(seen[1], Seen::Ping);
        assert!(matches!(&seen[2], Seen::Msg(_)));
        assert!(!framer.is_closed());
    });
}

#[test]
fn keepalives_between_messages() {
    let wsinv = load("wsinv.dat");
    let mut data = b"\r\n\r\n".to_vec();
    data.extend_from_slice(&wsinv);
    data.extend_from_slice(b"\r\n\r\n\r\n");
    data.extend_from_slice(&wsinv);
    feed_all_ways("pings", &data, |seen, _| {
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert_eq!(seen[0], Seen::Ping);
        assert!(matches!(seen[1], Seen::Msg(_)));
        assert_eq!(seen[2], Seen::Ping);
        assert!(matches!(seen[3], Seen::Msg(_)));
    });
    assert_eq!(parse_datagram(b"\r\n\r\n"), Err(MessageError::Empty));
    assert_eq!(parse_datagram(b""), Err(MessageError::Empty));
    assert_eq!(MessageError::Empty.status(), None);
}

const MINIMAL: &str = "OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
    To: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c\r\n\
    CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n";

fn with_extra(extra: &str) -> Vec<u8> {
    format!("{MINIMAL}{extra}Content-Length: 0\r\n\r\n").into_bytes()
}

#[test]
fn limits_fail_cleanly() {
    assert!(parse_datagram(&with_extra("")).is_ok());

    let huge_call_id = MINIMAL.replace("Call-ID: c", &format!("Call-ID: {}", "c".repeat(65536)));
    let e =
        parse_datagram(format!("{huge_call_id}Content-Length: 0\r\n\r\n").as_bytes()).unwrap_err();
    assert_eq!(e.status(), Some(513), "{e}");

    let many = "X: y\r\n".repeat(10_000);
    let e = parse_datagram(&with_extra(&many)).unwrap_err();
    assert_eq!(e, MessageError::TooManyHeaders { limit: MAX_HEADERS });

    let long = format!("X: {}\r\n", "a".repeat(MAX_HEADER_LINE));
    let e = parse_datagram(&with_extra(&long)).unwrap_err();
    assert_eq!(
        e,
        MessageError::HeaderLineTooLong {
            limit: MAX_HEADER_LINE
        }
    );

    for cl in ["99999999999999999999999999", "33000"] {
        let raw = format!("{MINIMAL}Content-Length: {cl}\r\n\r\n");
        assert_eq!(
            parse_datagram(raw.as_bytes()).unwrap_err(),
            MessageError::BodyTooLarge {
                limit: MAX_BODY_SIZE
            }
        );
        let (seen, framer) = feed(raw.as_bytes(), || 7);
        assert_eq!(
            seen,
            [Seen::Fatal(MessageError::BodyTooLarge {
                limit: MAX_BODY_SIZE
            })]
        );
        assert!(framer.is_closed());
    }
    for cl in ["-1", "abc", "", "1 2", "0x10"] {
        let raw = format!("{MINIMAL}Content-Length: {cl}\r\n\r\n");
        assert_eq!(
            parse_datagram(raw.as_bytes()).unwrap_err(),
            MessageError::InvalidContentLength,
            "{cl:?}"
        );
    }
    let raw = format!("{MINIMAL}Content-Length: 0005\r\n\r\nhello trailing");
    assert_eq!(parse_datagram(raw.as_bytes()).unwrap().body(), b"hello");

    let raw = MINIMAL.replace("CSeq: 1 ", "CSeq: 4294967296 ");
    let e = parse_datagram(format!("{raw}\r\n").as_bytes()).unwrap_err();
    assert_eq!(e.status(), Some(400));

    for nul in [
        "OPTIONS sip:a@exa\0mple.com SIP/2.0\r\n",
        "OPTIONS\0sip:a@example.com SIP/2.0\r\n",
    ] {
        let raw = MINIMAL.replacen("OPTIONS sip:a@example.com SIP/2.0\r\n", nul, 1);
        assert_eq!(
            parse_datagram(format!("{raw}\r\n").as_bytes())
                .unwrap_err()
                .status(),
            Some(400)
        );
    }
    assert_eq!(
        parse_datagram(&with_extra("X-Nul: a\0b\r\n"))
            .unwrap_err()
            .status(),
        Some(400)
    );
    assert_eq!(
        parse_datagram(&with_extra("X\0: ab\r\n"))
            .unwrap_err()
            .status(),
        Some(400)
    );

    let vias = "Via: SIP/2.0/UDP relay.example.com;branch=z9hG4bKr\r\n".repeat(100);
    let e = parse_datagram(&with_extra(&vias)).unwrap_err();
    assert_eq!(e, MessageError::TooManyVias { limit: MAX_VIAS });
    let vias = "Via: SIP/2.0/UDP relay.example.com;branch=z9hG4bKr\r\n".repeat(MAX_VIAS - 1);
    assert_eq!(
        parse_datagram(&with_extra(&vias)).unwrap().via_count(),
        MAX_VIAS
    );

    // Truncated stream: nothing comes out and nothing is held beyond what arrived.
    let wsinv = load("wsinv.dat");
    let half = &wsinv[..wsinv.len() / 2];
    let (seen, framer) = feed(half, || 13);
    assert!(seen.is_empty());
    assert_eq!(framer.buffered_len(), half.len());
    assert_eq!(parse_datagram(half).unwrap_err().status(), Some(400));

    // A peer streaming an endless header is cut off at the line limit, well before 64 KiB.
    let mut framer = StreamFramer::new();
    framer.push(b"INVITE sip:a@b SIP/2.0\r\nX: ").unwrap();
    let mut outcome = None;
    for _ in 0..100 {
        if let Err(e) = framer.push(&[b'a'; 1024]) {
            outcome = Some(e);
            break;
        }
        assert!(framer.buffered_len() <= MAX_MESSAGE_SIZE + 1024);
        if let Some(Err(e)) = framer.next_frame() {
            outcome = Some(e);
            break;
        }
    }
    assert_eq!(
        outcome,
        Some(MessageError::HeaderLineTooLong {
            limit: MAX_HEADER_LINE
        })
    );
    assert_eq!(framer.push(b"more"), Err(MessageError::StreamClosed));
    assert_eq!(framer.next_frame(), None);

    // Many short header lines: cut off at the message limit.
    let mut framer = StreamFramer::new();
    let mut outcome = None;
    for _ in 0..2000 {
        if let Err(e) =
            framer.push(b"X: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n")
        {
            outcome = Some(e);
            break;
        }
        assert!(framer.buffered_len() <= MAX_MESSAGE_SIZE + 64);
        if let Some(Err(e)) = framer.next_frame() {
            outcome = Some(e);
            break;
        }
    }
    assert_eq!(
        outcome,
        Some(MessageError::MessageTooLarge {
            limit: MAX_MESSAGE_SIZE
        })
    );
}

#[test]
fn compact_forms_and_folding_round_trip() {
    let compact = "OPTIONS sip:a@example.com SIP/2.0\r\n\
        v: SIP/2.0/UDP h;branch=z9hG4bK1\r\nt: <sip:a@example.com>\r\n\
        f: <sip:b@example.com>\r\n ;tag=1\r\ni: c\r\nCSeq: 1\r\n\tOPTIONS\r\nk: 100rel\r\n\
        o: presence\r\nu: dialog\r\nx: 1800\r\nr: <sip:c@example.com>\r\nb: <sip:d@example.com>\r\n\
        a: *;audio\r\nj: *;video\r\nd: proxy\r\ny: sig\r\ne: identity\r\ns: hi\r\n\
        c: text/plain\r\nl: 2\r\n\r\nhi";
    let m = parse_datagram(compact.as_bytes()).unwrap();
    let text = String::from_utf8(m.to_bytes().to_vec()).unwrap();
    for (_, full) in COMPACT_FORMS {
        if *full != "Contact" {
            assert!(
                text.contains(&format!("\r\n{full}: ")),
                "{full} missing in\n{text}"
            );
        }
    }
    assert!(text.contains("\r\nFrom: <sip:b@example.com> ;tag=1\r\n"));
    assert!(text.contains("\r\nCSeq: 1 OPTIONS\r\n"));
    let again = parse_datagram(text.as_bytes()).unwrap();
    assert_eq!(again, m);
    assert_eq!(again.to_bytes(), m.to_bytes());
    assert_eq!(again.from_tag(), Some("1"));
}

fn corpus() -> Vec<Vec<u8>> {
    TABLE.iter().map(|(f, _)| load(f)).collect()
}

fn check_invariants(data: &[u8], chunk: usize) {
    if let Ok(m) = parse_datagram(data) {
        let again = parse_datagram(&m.to_bytes()).expect("own output re-parses");
        assert_eq!(again, m);
        let _ = m.as_rsip();
        let _ = uas_precheck(&m, SUPPORTED, ALLOWED);
    } else if let Err(e) = parse_datagram(data) {
        let _ = stateless_error_response(data, &e, "t");
    }
    let (_, framer) = feed(data, || chunk);
    assert!(framer.buffered_len() <= MAX_MESSAGE_SIZE + chunk);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..200) {
        check_invariants(&data, chunk);
    }

    #[test]
    fn mutated_torture_messages_never_panic(
        file in 0usize..TABLE.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
        chunk in 1usize..300,
    ) {
        let mut data = corpus().swap_remove(file);
        for (at, byte, kind) in edits {
            if data.is_empty() {
                break;
            }
            let i = at.index(data.len());
            match kind {
                0 => data[i] = byte,
                1 => data.insert(i, byte),
                2 => { data.remove(i); }
                _ => data.truncate(i),
            }
        }
        check_invariants(&data, chunk);
    }

    #[test]
    fn framer_stays_bounded_on_endless_input(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..4096), 1..64)) {
        let mut framer = StreamFramer::new();
        for c in &chunks {
            if framer.push(c).is_err() {
                break;
            }
            prop_assert!(framer.buffered_len() <= MAX_MESSAGE_SIZE + c.len());
            while let Some(f) = framer.next_frame() {
                if f.is_err() {
                    break;
                }
            }
            prop_assert!(framer.buffered_len() <= MAX_MESSAGE_SIZE);
        }
    }
}
