//! The live register over HTTP: every write route, the change feed,
//! restart and compaction.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// A server with a change log in its temp dir, over its own snapshot copy
/// (compaction writes the next generation beside it).
fn start_register(dir: &std::path::Path) -> TestServer {
    let snapshot = dir.join("base.snap");
    if !snapshot.exists() {
        build(&snapshot, 1, 300);
    }
    let changes = dir.join("changes");
    TestServer::start(&snapshot, |c| c.changes = Some(changes))
}

/// A write with the registrar's headers.
pub(crate) fn write(
    client: &mut Client,
    method: &str,
    path: &str,
    body: &serde_json::Value,
    idempotency_key: Option<&str>,
) -> Response {
    write_as(
        client,
        key::REGISTRAR,
        method,
        path,
        body,
        Some("test certificate 1"),
        idempotency_key,
    )
}

fn write_as(
    client: &mut Client,
    key: &str,
    method: &str,
    path: &str,
    body: &serde_json::Value,
    reason: Option<&str>,
    idempotency_key: Option<&str>,
) -> Response {
    let body = body.to_string();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(reason) = reason {
        req.push_str(&format!("X-Change-Reason: {reason}\r\n"));
    }
    if let Some(k) = idempotency_key {
        req.push_str(&format!("Idempotency-Key: {k}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    client.send_raw(req.as_bytes());
    client.read_response().expect("a response")
}

pub(crate) fn newborn(name: &str) -> serde_json::Value {
    json!({
        "full_name": name,
        "date_of_birth": "2026-11-20",
        "sex": "female",
        "birth_registration_place": "Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh",
        "permanent_residence": "Số 5 Lê Lợi, TP. Hồ Chí Minh",
        "nationality": "VN",
        "ethnicity": "Kinh",
    })
}

#[test]
fn every_write_route_changes_every_read_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_register(dir.path());
    let mut c = server.client();

    // A birth: a new ID of province 079, readable at once.
    let r = write(
        &mut c,
        "POST",
        "/v1/citizens",
        &newborn("Nguyễn Thị Bé"),
        Some("birth-42"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("0793"), "{id}");
    let got = c.get(&format!("/v1/citizens/{id}"), Some(key::READER));
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["full_name"], "Nguyễn Thị Bé");
    // A retry with the same key: the same ID, nothing new.
    let again = write(
        &mut c,
        "POST",
        "/v1/citizens",
        &newborn("Nguyễn Thị Bé"),
        Some("birth-42"),
    );
    assert_eq!(
        (again.status, again.json()["id"].as_str()),
        (201, Some(id.as_str()))
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    // The same key with another body is refused.
    let other = write(
        &mut c,
        "POST",
        "/v1/citizens",
        &newborn("Trần Văn Khác"),
        Some("birth-42"),
    );
    assert_eq!(
        (other.status, other.error_code().as_str()),
        (422, "idempotency_key_reused")
    );

    // A move: the patch answers the new record; verify sees it.
    let patch = json!({"permanent_residence": "Số 9 Tràng Tiền, Hà Nội"});
    let r = write(&mut c, "PATCH", &format!("/v1/citizens/{id}"), &patch, None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["citizen"]["permanent_residence"],
        "Số 9 Tràng Tiền, Hà Nội"
    );
    let claim = json!({"id": id, "permanent_residence": "SO 9 TRANG TIEN, HA NOI"}).to_string();
    let v = c.post("/v1/citizens:verify", Some(key::VERIFIER), &claim);
    assert_eq!(v.json()["match"], true, "{}", v.text());

    // Refusals name what is wrong.
    let r = write(
        &mut c,
        "PATCH",
        &format!("/v1/citizens/{id}"),
        &json!({"sex": "male"}),
        None,
    );
    assert_eq!(r.status, 400);
    assert!(r.text().contains("sex"), "{}", r.text());
    let mut orphan = newborn("Lê Văn Mồ Côi");
    orphan["father"] = json!({"full_name": "Lê Văn Bố", "id": "001090999999", "nationality": "VN"});
    let r = write(&mut c, "POST", "/v1/citizens", &orphan, None);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (422, "unknown_reference")
    );
    assert!(r.text().contains("father.id"), "{}", r.text());
    let r = write(
        &mut c,
        "POST",
        "/v1/citizens",
        &json!({"full_name": "X", "sex": "female", "date_of_birth": "2026-11-20", "birth_registration_place": "Mars"}),
        None,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("birth_registration_place"),
        "{}",
        r.text()
    );
    let r = write_as(
        &mut c,
        key::REGISTRAR,
        "POST",
        "/v1/citizens",
        &newborn("A"),
        None,
        None,
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "missing_reason"));
    let r = write_as(
        &mut c,
        key::READER,
        "POST",
        "/v1/citizens",
        &newborn("A"),
        Some("x"),
        None,
    );
    assert_eq!(r.status, 403);
    let r = write(&mut c, "PATCH", "/v1/citizens/001090999999", &patch, None);
    assert_eq!(r.status, 404);

    // A death: reads show it; a second one conflicts.
    let death = json!({"date_of_death": "2026-11-28"});
    let r = write(
        &mut c,
        "POST",
        &format!("/v1/citizens/{id}:recordDeath"),
        &death,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got = c.get(&format!("/v1/citizens/{id}"), Some(key::READER));
    assert_eq!(got.json()["date_of_death"], "2026-11-28");
    // A bank that verifies the (matching) card learns the holder has died;
    // a caller whose claims do not hold learns nothing.
    let claim = json!({"id": id, "full_name": "NGUYEN THI BE", "date_of_birth": "2026-11-20"});
    let v = c.post(
        "/v1/citizens:verify",
        Some(key::VERIFIER),
        &claim.to_string(),
    );
    assert_eq!(
        (v.json()["match"].as_bool(), v.json()["alive"].as_bool()),
        (Some(true), Some(false)),
        "{}",
        v.text()
    );
    let wrong = json!({"id": id, "full_name": "NGUYEN THI KHAC"});
    let v = c.post(
        "/v1/citizens:verify",
        Some(key::VERIFIER),
        &wrong.to_string(),
    );
    assert!(v.json().get("alive").is_none(), "{}", v.text());
    let r = write(
        &mut c,
        "POST",
        &format!("/v1/citizens/{id}:recordDeath"),
        &death,
        None,
    );
    assert_eq!(r.status, 409);

    // An enrolment: identify finds the new template.
    let hash = "ab".repeat(16);
    let r = write(
        &mut c,
        "PUT",
        &format!("/v1/citizens/{id}/biometrics/face"),
        &json!({"template_hash": hash}),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let body = json!({"modality": "face", "template_hash": hash}).to_string();
    let r = c.post("/v1/biometrics:identify", Some(key::BIOMETRIC), &body);
    assert_eq!(r.json()["id"], id.as_str(), "{}", r.text());
    let r = write(
        &mut c,
        "PUT",
        &format!("/v1/citizens/{id}/biometrics/iris"),
        &json!({"template_hash": hash}),
        None,
    );
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (400, "invalid_modality")
    );

    // The feed: every change in order, as NDJSON; its reader is audited.
    let r = c.get("/v1/changes?after=0", Some(key::FEED));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = r
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["register", "update", "death", "biometric"]);
    assert_eq!(lines[0]["citizen"]["full_name"], "Nguyễn Thị Bé");
    assert_eq!(lines[2]["reason"], "test certificate 1");
    assert_eq!(lines[3]["sequence"], 4);
    // Past the head, even at the largest sequence number: no lines (this
    // overflowed the log reader's `after + 1`, a 500).
    for after in [4, u64::MAX] {
        let r = c.get(&format!("/v1/changes?after={after}"), Some(key::FEED));
        assert_eq!((r.status, r.text()), (200, String::new()), "after={after}");
    }
    let r = c.get("/v1/changes?after=0", Some(key::READER));
    assert_eq!(r.status, 403);

    // Every change is in the audit log as the registrar's.
    drop(c);
    let mut server = server;
    server.stop();
    let audit = std::fs::read_to_string(server.audit_path()).unwrap();
    for op in [
        "\"register\"",
        "\"update\"",
        "\"death\"",
        "\"enrol\"",
        "\"changes\"",
    ] {
        assert!(audit.contains(op), "{op} missing from the audit log");
    }
    assert!(audit.contains("\"refused\""));
}

#[test]
fn a_long_poll_wakes_on_the_next_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_register(dir.path());
    let addr = server.addr;
    let waiter = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let started = Instant::now();
        let r = c.get("/v1/changes?after=0&wait=20", Some(key::FEED));
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut c = server.client();
    let r = write(
        &mut c,
        "POST",
        "/v1/citizens",
        &newborn("Phạm Thị Chờ"),
        None,
    );
    assert_eq!(r.status, 201);
    let (r, waited) = waiter.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text().lines().count(), 1);
    assert!(
        waited < Duration::from_secs(15),
        "woken by the change, not the timeout"
    );
}

#[test]
fn changes_survive_a_restart_and_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<String> = {
        let server = start_register(dir.path());
        let mut c = server.client();
        (0..5)
            .map(|i| {
                let r = write(
                    &mut c,
                    "POST",
                    "/v1/citizens",
                    &newborn(&format!("Bé {i}")),
                    None,
                );
                assert_eq!(r.status, 201);
                r.json()["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    // Restart: the log is replayed.
    let server = start_register(dir.path());
    let mut c = server.client();
    for id in &ids {
        assert_eq!(
            c.get(&format!("/v1/citizens/{id}"), Some(key::READER))
                .status,
            200
        );
    }
    // Compaction: generation 2 holds them; the log starts after the fold.
    let r = c.post("/v1/admin/compact", Some(key::ADMIN), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 2);
    assert_eq!(r.json()["folded_sequence"], 5);
    let info = c.get("/v1/snapshot", Some(key::ADMIN)).json();
    assert_eq!(
        (
            info["generation"].as_u64(),
            info["folded_sequence"].as_u64()
        ),
        (Some(2), Some(5))
    );
    assert_eq!(info["record_count"], 301 + 5);
    for id in &ids {
        assert_eq!(
            c.get(&format!("/v1/citizens/{id}"), Some(key::READER))
                .status,
            200
        );
    }
    let r = c.get("/v1/changes?after=0", Some(key::FEED));
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (410, "changes_trimmed")
    );
    // The primary's head is on this answer too (a caller's lag).
    assert_eq!(r.header("x-dancu-applied"), Some("5"));
    let r = write(&mut c, "POST", "/v1/citizens", &newborn("Bé sau"), None);
    assert_eq!(r.json()["sequence"], 6);
    drop(c);
    drop(server);
    // A restart opens generation 2 and replays only change 6.
    let server = start_register(dir.path());
    let mut c = server.client();
    let info = c.get("/v1/snapshot", Some(key::ADMIN)).json();
    assert_eq!(info["generation"], 2);
    let r = c.get("/v1/changes?after=5", Some(key::FEED));
    assert_eq!(r.text().lines().count(), 1);
}

#[test]
fn concurrent_registrations_get_distinct_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_register(dir.path());
    let addr = server.addr;
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                s.spawn(move || {
                    let mut c = Client::connect(addr);
                    (0..25)
                        .map(|i| {
                            let r = write(
                                &mut c,
                                "POST",
                                "/v1/citizens",
                                &newborn(&format!("Bé {t}-{i}")),
                                None,
                            );
                            assert_eq!(r.status, 201, "{}", r.text());
                            r.json()["id"].as_str().unwrap().to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 200);
}

#[test]
fn a_server_without_a_change_log_refuses_writes_clearly() {
    let server = TestServer::shared();
    let mut c = server.client();
    let r = write(&mut c, "POST", "/v1/citizens", &newborn("A"), None);
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (503, "writes_disabled")
    );
}
