//! REGISTER header values through the registrar's own parsers: `parse_contacts` (each input
//! line is one Contact header value), `Aor::parse` and `sip_uri_eq`, then `Registrar::apply`
//! with what parsed, against bindings from an earlier REGISTER of the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smartdesk::sip::registrar::{
    parse_contacts, sip_uri_eq, Aor, ExpiryBounds, QValue, RegisterContacts, RegisterRequest,
    Registrar,
};

const NOW: u64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The message layer hands over unfolded single-line values.
    let values: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let contacts = parse_contacts(values.iter().copied());
    if let Ok(RegisterContacts::List(list)) = &contacts {
        for c in list {
            let _ = (
                c.opaque_params(),
                c.q.map(QValue::thousandths),
                c.expires_param,
            );
            if let Some(q) = c.q {
                assert_eq!(QValue::parse(&q.to_string()), Some(q), "q prints back");
            }
        }
    }
    for v in &values {
        if let Ok(aor) = Aor::parse(v) {
            let _ = (aor.user(), aor.host());
            // Canonical form is a fixed point (documented in uri.rs).
            let again = Aor::parse(aor.as_str())
                .unwrap_or_else(|e| panic!("canonical AOR {:?} does not parse: {e}", aor.as_str()));
            assert_eq!(again, aor, "Aor::parse(aor.as_str()) is identity");
        }
        let _ = sip_uri_eq(v, v);
    }
    if let [a, b, ..] = values.as_slice() {
        assert_eq!(
            sip_uri_eq(a, b),
            sip_uri_eq(b, a),
            "URI equality is symmetric"
        );
    }

    let Ok(contacts) = contacts else { return };
    let registrar = Registrar::new("smartdesk", ExpiryBounds::default());
    let aor = values.first().copied().unwrap_or_default();
    let user = Aor::parse(aor)
        .map(|a| a.user().to_owned())
        .unwrap_or_default();
    let req = RegisterRequest {
        aor: aor.to_owned(),
        authenticated_user: user,
        contacts,
        expires_header: values.get(1).and_then(|v| v.trim().parse().ok()),
        call_id: "fz".into(),
        cseq: 1,
        source: "192.0.2.5:5060/udp".into(),
    };
    if let Ok(first) = registrar.apply(NOW, &req, &[]) {
        let req2 = RegisterRequest { cseq: 2, ..req };
        let _ = registrar.apply(NOW + 10, &req2, &first.upserts);
    }
});
