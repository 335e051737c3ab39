//! `POST /v1/qr:verify` over HTTP: payloads built from the records of the
//! test snapshot, as scanners send them (with and without diacritics, with
//! extra spaces, with an empty legacy ID); every single-field change is
//! detected; every malformed payload is a 400 naming its part; `alive` is
//! told only for a card that matches, and follows a recorded death.

use dancu_engine::{fold, Citizen, Date, Sex};
use serde_json::{json, Value};

use crate::support::*;

fn ddmmyyyy(d: Date) -> String {
    format!("{:02}{:02}{:04}", d.day(), d.month(), d.year())
}

/// The QR text of `c`'s card.
fn card(c: &Citizen) -> [String; 7] {
    [
        c.id.to_string(),
        c.legacy_id.map(|l| l.to_string()).unwrap_or_default(),
        c.full_name.clone(),
        ddmmyyyy(c.date_of_birth),
        match c.sex {
            Sex::Male => "Nam".into(),
            Sex::Female => "Nữ".into(),
        },
        c.permanent_residence.clone().unwrap_or_default(),
        "01072021".into(),
    ]
}

fn qr(c: &mut Client, key: &str, payload: &str) -> Response {
    let body = json!({ "qr": payload }).to_string();
    c.post("/v1/qr:verify", Some(key), &body)
}

fn all_fields_true(r: &Value, legacy: bool) {
    let fields = r["fields"].as_object().unwrap();
    assert_eq!(fields.len(), if legacy { 5 } else { 4 }, "{r}");
    assert!(fields.values().all(|v| v == true), "{r}");
    assert_eq!(fields.contains_key("legacy_id"), legacy, "{r}");
}

#[test]
fn cards_of_the_register_match_however_they_are_scanned() {
    let server = TestServer::shared();
    let mut c = server.client();
    for i in [0u64, 1, 2, 3, 6, 7, 100, 2999] {
        let citizen = if i == 0 {
            example_citizen()
        } else {
            citizen(i)
        };
        let parts = card(&citizen);
        let legacy = citizen.legacy_id.is_some();
        let printed = parts.join("|");
        // What a scanner that drops diacritics and adds spaces sends.
        let plain: Vec<String> = parts
            .iter()
            .map(|p| format!("  {}  ", fold(p).to_uppercase().replace(' ', "   ")))
            .collect();
        for payload in [printed, plain.join("|")] {
            let r = qr(&mut c, key::VERIFIER, &payload);
            assert_eq!(r.status, 200, "{payload}: {}", r.text());
            assert_eq!(r.header("cache-control"), Some("no-store"));
            let body = r.json();
            assert_eq!(body["match"], true, "{payload}: {body}");
            assert_eq!(body["alive"], true, "{payload}: {body}");
            all_fields_true(&body, legacy);
            assert_eq!(body.as_object().unwrap().len(), 3, "nothing else: {body}");
        }
    }
}

#[test]
fn each_single_field_change_is_detected() {
    let server = TestServer::shared();
    let mut c = server.client();
    // A citizen with a legacy ID (i % 3 == 0); one subject per change, so
    // that the mismatch throttle never steps in.
    let changes: [(usize, &str, &str); 5] = [
        (1, "legacy_id", "299999999"),
        (2, "full_name", "Nguyễn Văn Khác"),
        (3, "date_of_birth", "01011901"),
        (4, "sex", "?"),
        (5, "permanent_residence", "99 Trần Hưng Đạo, Hà Nội"),
    ];
    for (n, (part, field, value)) in changes.into_iter().enumerate() {
        let citizen = citizen(300 + 3 * n as u64);
        let mut parts = card(&citizen);
        parts[part] = if part == 4 {
            match citizen.sex {
                Sex::Male => "Nữ".into(),
                Sex::Female => "Nam".into(),
            }
        } else {
            value.into()
        };
        let r = qr(&mut c, key::VERIFIER, &parts.join("|"));
        assert_eq!(r.status, 200, "{field}: {}", r.text());
        let body = r.json();
        assert_eq!(body["match"], false, "{field}: {body}");
        assert_eq!(body["alive"], Value::Null, "{field}: {body}");
        for (name, held) in body["fields"].as_object().unwrap() {
            assert_eq!(held, &Value::Bool(name != field), "{field}: {body}");
        }
    }
}

#[test]
fn every_malformed_payload_is_a_400_naming_its_part() {
    let server = TestServer::shared();
    let mut c = server.client();
    let good = card(&example_citizen());
    let with = |part: usize, value: &str| {
        let mut p = good.clone();
        p[part] = value.into();
        p.join("|")
    };
    let cases = [
        (good[..6].join("|"), "7"),
        (format!("{}|x", good.join("|")), "7"),
        (String::new(), "7"),
        (with(0, "07908901234"), "part 1 (ID)"),
        (with(0, "0790890123ab"), "part 1 (ID)"),
        (with(1, "12345678"), "part 2 (legacy ID)"),
        (with(2, " "), "part 3 (full name)"),
        (with(3, "1989-03-14"), "part 4 (date of birth)"),
        (with(3, "30021989"), "part 4 (date of birth)"),
        (with(4, "male"), "part 5 (sex)"),
        (with(5, ""), "part 6 (permanent address)"),
        (with(6, "0107202"), "part 7 (issue date)"),
    ];
    for (payload, part) in cases {
        let r = qr(&mut c, key::VERIFIER, &payload);
        assert_eq!(r.status, 400, "{payload}: {}", r.text());
        assert_eq!(r.error_code(), "invalid_qr", "{payload}");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(part), "{payload}: {message}");
    }
    for body in ["{}", "{\"qr\":1}", "{\"qr\":\"x\",\"id\":\"1\"}", "qr"] {
        let r = c.post("/v1/qr:verify", Some(key::VERIFIER), body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
    }
    let r = qr(&mut c, key::VERIFIER, &with(0, UNKNOWN_ID));
    assert_eq!(r.status, 404, "{}", r.text());
    let r = qr(&mut c, key::READER, &good.join("|"));
    assert_eq!(r.status, 403, "{}", r.text());
}

#[test]
fn mismatches_are_throttled_per_subject_and_alive_follows_a_death() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::with_register(dir.path(), 50);
    let mut c = server.client();
    let target = citizen(10);
    let mut wrong = card(&target);
    wrong[2] = "Ai Đó".into();
    let statuses: Vec<u16> = (0..7)
        .map(|_| qr(&mut c, key::VERIFIER, &wrong.join("|")).status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert_eq!(
        qr(&mut c, key::VERIFIER, &card(&citizen(11)).join("|")).status,
        200
    );

    let dead = citizen(12);
    let body = r#"{"date_of_death":"2026-11-28"}"#;
    let req = format!(
        "POST /v1/citizens/{}:recordDeath HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nX-Change-Reason: test\r\n\r\n{body}",
        dead.id,
        key::REGISTRAR,
        body.len()
    );
    c.send_raw(req.as_bytes());
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = qr(&mut c, key::VERIFIER, &card(&dead).join("|"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["match"], true);
    assert_eq!(r.json()["alive"], false);
}
