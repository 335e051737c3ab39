//! `GET /v1/statistics`: the cells add up to the living population, one
//! province agrees with a count made independently from `dancu-data`'s
//! export, small cells are suppressed, and deaths and births recorded since
//! the snapshot are counted.

use dancu_data::{export, ExportOptions, Format};
use dancu_engine::{Memory, Snapshot};
use serde_json::Value;

use crate::support::*;

fn stats(c: &mut Client, by: &str) -> Value {
    let path = match by {
        "" => "/v1/statistics".to_string(),
        by => format!("/v1/statistics?by={by}"),
    };
    let r = c.get(&path, Some(key::STATISTICS));
    assert_eq!(r.status, 200, "{by}: {}", r.text());
    r.json()
}

fn count(cell: &Value) -> u64 {
    cell["count"]
        .as_u64()
        .unwrap_or_else(|| panic!("suppressed: {cell}"))
}

/// Living people per ID province prefix, from the NDJSON export.
fn exported_living_in(snapshot: &std::path::Path, prefix: &str) -> (u64, u64) {
    let snap = Snapshot::open_file(snapshot, Memory::Map).unwrap();
    let mut out = Vec::new();
    let options = ExportOptions {
        format: Format::Ndjson,
        limit: None,
        with_templates: false,
    };
    export(&snap, &options, &mut out).unwrap();
    let (mut living, mut in_province) = (0, 0);
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let record: Value = serde_json::from_slice(line).unwrap();
        if record["date_of_death"].is_null() {
            living += 1;
            if record["id"].as_str().unwrap().starts_with(prefix) {
                in_province += 1;
            }
        }
    }
    (living, in_province)
}

#[test]
fn cells_add_up_and_a_province_matches_the_export() {
    let server = TestServer::shared();
    let mut c = server.client();
    let (living, in_hcmc) = exported_living_in(shared_snapshot(), "079");
    for by in ["sex", "province", "province%2Csex", ""] {
        let body = stats(&mut c, by);
        assert_eq!(body["total"].as_u64(), Some(living), "{by}");
        let sum: u64 = body["cells"].as_array().unwrap().iter().map(count).sum();
        assert_eq!(sum, living, "{by}: {body}");
    }
    let by_province = stats(&mut c, "province");
    let hcmc = by_province["cells"]
        .as_array()
        .unwrap()
        .iter()
        .find(|cell| cell["province"] == "Hồ Chí Minh")
        .unwrap();
    assert_eq!(count(hcmc), in_hcmc);
}

#[test]
fn small_cells_are_suppressed_and_nobody_is_exposed() {
    let server = TestServer::shared();
    let mut c = server.client();
    let body = stats(&mut c, "province,sex,age_band,ethnicity");
    let cells = body["cells"].as_array().unwrap();
    assert!(!cells.is_empty());
    let mut suppressed = 0;
    for cell in cells {
        match &cell["count"] {
            Value::String(s) => {
                assert_eq!(s, "<10");
                suppressed += 1;
            }
            n => assert!(n.as_u64().unwrap() >= 10, "{cell}"),
        }
        assert_eq!(cell.as_object().unwrap().len(), 5, "{cell}");
    }
    // 3001 people over 63 provinces × 2 × 21 × 55: most cells are small.
    assert!(suppressed > 0);
    for bad in ["shoe_size", "sex,sex", "", "sex,"] {
        let r = c.get(&format!("/v1/statistics?by={bad}"), Some(key::STATISTICS));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    let r = c.get("/v1/statistics?id=1", Some(key::STATISTICS));
    assert_eq!(r.status, 400);
    let r = c.get("/v1/statistics?by=sex", Some(key::READER));
    assert_eq!(r.status, 403);
}

#[test]
fn deaths_and_births_since_the_snapshot_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::with_register(dir.path(), 40);
    let mut c = server.client();
    let before = stats(&mut c, "")["total"].as_u64().unwrap();
    assert_eq!(before, 41);
    let send = |c: &mut Client, path: &str, body: &str| {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nX-Change-Reason: test\r\n\
             Idempotency-Key: stats-{}\r\n\r\n{body}",
            key::REGISTRAR,
            body.len(),
            path.len()
        );
        c.send_raw(req.as_bytes());
        c.read_response().unwrap()
    };
    let dead = citizen(5).id;
    let r = send(
        &mut c,
        &format!("/v1/citizens/{dead}:recordDeath"),
        r#"{"date_of_death":"2026-11-28"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(stats(&mut c, "")["total"].as_u64(), Some(before - 1));
    let newborn = r#"{"full_name":"Lê Thị Mới","date_of_birth":"2026-11-20","sex":"female","birth_registration_place":"Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh","nationality":"VN"}"#;
    let r = send(&mut c, "/v1/citizens", newborn);
    assert_eq!(r.status, 201, "{}", r.text());
    let after = stats(&mut c, "sex");
    assert_eq!(
        after["total"].as_u64(),
        Some(before),
        "one death, one birth: {after}"
    );
}
