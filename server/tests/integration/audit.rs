//! The audit log: every data access written, flushed on shutdown, readable
//! with `audit-query`; a full queue refuses with 503.

use std::process::Command;

use crate::support::*;

fn lines(server: &TestServer) -> Vec<serde_json::Value> {
    std::fs::read_to_string(server.audit_path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_data_access_is_audited_and_flushed_on_shutdown() {
    let mut server = TestServer::shared();
    let mut c = server.client();
    let known = citizen(5).id.to_string();
    assert_eq!(
        c.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::READER))
            .status,
        200
    );
    assert_eq!(
        c.get(&format!("/v1/citizens/{UNKNOWN_ID}"), Some(key::READER))
            .status,
        404
    );
    assert_eq!(c.get("/v1/citizens/123", Some(key::READER)).status, 400);
    let batch = format!(r#"{{"ids":["{known}","{UNKNOWN_ID}","bad"]}}"#);
    assert_eq!(
        c.post("/v1/citizens:batchGet", Some(key::BASIC), &batch)
            .status,
        200
    );
    let verify = format!(r#"{{"id":"{EXAMPLE_ID}","sex":"female"}}"#);
    assert_eq!(
        c.post("/v1/citizens:verify", Some(key::VERIFIER), &verify)
            .status,
        200
    );
    let bv = format!(
        r#"{{"requests":[{{"id":"{known}","sex":"{}"}}]}}"#,
        citizen(5).sex
    );
    assert_eq!(
        c.post("/v1/citizens:batchVerify", Some(key::VERIFIER), &bv)
            .status,
        200
    );
    assert_eq!(
        c.get(
            &format!("/v1/legacy-ids/{EXAMPLE_LEGACY}"),
            Some(key::READER)
        )
        .status,
        200
    );
    let id = format!(r#"{{"modality":"face","template_hash":"{EXAMPLE_FACE}"}}"#);
    assert_eq!(
        c.post("/v1/biometrics:identify", Some(key::BIOMETRIC), &id)
            .status,
        200
    );
    // Not data accesses: no entries.
    c.get("/v1/snapshot", Some(key::READER));
    c.get("/v1/citizens/079089012345", Some(key::VERIFIER));
    // Written while running, within the writer's tick (bounded wait).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(server.audit_path())
        .unwrap()
        .lines()
        .count()
        < 7
    {
        assert!(
            std::time::Instant::now() < deadline,
            "audit entries not written while running"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    server.stop();
    let got = lines(&server);
    // A batch request is one line listing its items under their outcomes;
    // the malformed ID "bad" is not an access.
    assert_eq!(got[2]["found"], serde_json::json!([known]));
    assert_eq!(got[2]["not_found"], serde_json::json!([UNKNOWN_ID]));
    let summary: Vec<(String, String, String, String)> = got
        .iter()
        .flat_map(|l| {
            let s = |v: &serde_json::Value| v.as_str().unwrap_or("null").to_string();
            let (client, operation) = (s(&l["client"]), s(&l["operation"]));
            let items: Vec<(String, String)> = if l.get("outcome").is_some() {
                vec![(s(&l["subject"]), s(&l["outcome"]))]
            } else {
                ["found", "not_found", "match", "mismatch"]
                    .iter()
                    .flat_map(|o| {
                        let ids = l[*o].as_array().cloned().unwrap_or_default();
                        ids.into_iter().map(move |id| (s(&id), o.to_string()))
                    })
                    .collect()
            };
            items.into_iter().map(move |(subject, outcome)| {
                (client.clone(), operation.clone(), subject, outcome)
            })
        })
        .collect();
    let want = [
        ("reader", "get", EXAMPLE_ID, "found"),
        ("reader", "get", UNKNOWN_ID, "not_found"),
        ("basic", "batch_get", known.as_str(), "found"),
        ("basic", "batch_get", UNKNOWN_ID, "not_found"),
        ("verifier", "verify", EXAMPLE_ID, "mismatch"),
        ("verifier", "batch_verify", known.as_str(), "match"),
        ("reader", "legacy", EXAMPLE_ID, "found"),
        ("biometric", "identify", EXAMPLE_ID, "found"),
    ];
    let want: Vec<(String, String, String, String)> = want
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect();
    assert_eq!(summary, want);
    assert_eq!(got[5]["legacy_id"], EXAMPLE_LEGACY);
    let time = got[0]["time"].as_str().unwrap();
    assert!(
        time.len() == 27 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
        "{time}"
    );

    // "Who looked me up?"
    let out = Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .args(["audit-query", "--audit"])
        .arg(server.audit_path())
        .args(["--subject", EXAMPLE_ID])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 4, "{stdout}");
    assert!(stdout.lines().all(|l| l.contains(EXAMPLE_ID)));
    // Batch items are found too, one line per access.
    let out = Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .args(["audit-query", "--audit"])
        .arg(server.audit_path())
        .args(["--subject", &known])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let found: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ops: Vec<&str> = found
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    assert_eq!(ops, ["batch_get", "batch_verify"], "{stdout}");
    assert!(found.iter().all(|l| l["subject"] == known.as_str()));
    let out = Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .args(["audit-query", "--audit"])
        .arg(server.audit_path())
        .args(["--subject", "12345"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a malformed subject is an error");
}

#[test]
fn a_full_audit_queue_refuses_with_503() {
    // A queue smaller than one batch can never take it.
    let server = TestServer::start(shared_snapshot(), |c| c.audit_queue = 10);
    let mut c = server.client();
    let ids: Vec<String> = (1..=20).map(|i| citizen(i).id.to_string()).collect();
    let r = c.post(
        "/v1/citizens:batchGet",
        Some(key::READER),
        &serde_json::json!({ "ids": ids }).to_string(),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.error_code(), "audit_backlog");
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(
        c.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::READER))
            .status,
        200
    );
    let metrics = c.get("/metrics", None).text();
    assert!(metrics.contains("dancu_audit_refused_total 1"), "{metrics}");
}

#[test]
fn hash_key_reads_the_key_from_stdin_and_prints_what_keys_toml_holds() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .arg("hash-key")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"test\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
    // The key is never an argument (`ps` shows arguments to everyone).
    let out = Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .args(["hash-key", "test"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
