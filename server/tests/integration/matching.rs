//! `POST /v1/citizens:match` over HTTP: one streamed result per row, in
//! order, for each planted kind of row in NDJSON and CSV; a bad row gets its
//! own line; the scope, the claim policy and the body's format are checked;
//! candidates see a birth registered since the snapshot (the overlay).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use dancu_engine::fold;
use serde_json::{json, Value};

use crate::support::*;

/// Sends a match request and reads the whole (chunked) answer.
fn post_match(
    addr: SocketAddr,
    key: &str,
    query: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /v1/citizens:match{query} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status: u16 = line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut chunked = false;
    let mut length = None;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let h = line.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        chunked |= h == "transfer-encoding: chunked";
        if let Some(v) = h.strip_prefix("content-length: ") {
            length = Some(v.parse::<usize>().unwrap());
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let size = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length.unwrap_or(0), 0);
        reader.read_exact(&mut body).unwrap();
    }
    (status, String::from_utf8(body).unwrap())
}

fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn row_of(c: &dancu_engine::Citizen) -> Value {
    json!({
        "id": c.id.to_string(),
        "full_name": fold(&c.full_name).to_uppercase(),
        "date_of_birth": c.date_of_birth.to_string(),
        "sex": c.sex.as_str(),
    })
}

#[test]
fn each_row_gets_its_result_in_order() {
    let server = TestServer::shared();
    let (a, b) = (citizen(3), citizen(4));
    let mut wrong_sex = row_of(&b);
    wrong_sex["sex"] = json!(if b.sex.as_str() == "male" {
        "female"
    } else {
        "male"
    });
    let mut id_less = row_of(&a);
    id_less["id"] = Value::Null;
    id_less["province"] = json!(format!("{:03}", a.id.place_code()));
    let rows = [
        row_of(&a).to_string(),
        wrong_sex.to_string(),
        json!({"id": "001099999999", "full_name": "AI DO"}).to_string(),
        json!({"id": "07908901234", "full_name": "AI DO"}).to_string(),
        id_less.to_string(),
        "{not json".to_string(),
        json!({"id": a.id.to_string(), "ethnicity": "Kinh"}).to_string(),
    ];
    let body = rows.join("\n") + "\n";
    let (status, text) = post_match(
        server.addr,
        key::MATCHER,
        "?candidates=true",
        "application/x-ndjson",
        &body,
    );
    assert_eq!(status, 200, "{text}");
    let results = lines(&text);
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "found",
            "found",
            "not_found",
            "malformed_id",
            "missing_id",
            "invalid",
            "invalid"
        ]
    );
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["row"], i + 1);
    }
    assert_eq!(results[0]["mismatched"], json!([]));
    assert_eq!(results[1]["mismatched"], json!(["sex"]));
    assert!(results[1]["candidates"]
        .as_array()
        .unwrap()
        .contains(&json!(b.id.to_string())));
    assert!(results[4]["candidates"]
        .as_array()
        .unwrap()
        .contains(&json!(a.id.to_string())));
    assert_eq!(results[3]["error"]["code"], "invalid_id");

    // The same rows as CSV (quoted address), same answers.
    let csv = format!(
        "id,full_name,date_of_birth,sex,permanent_residence\n{},{},{},{},\"{}\"\n,{},{},,\n",
        a.id,
        fold(&a.full_name).to_uppercase(),
        a.date_of_birth,
        a.sex.as_str(),
        a.permanent_residence
            .clone()
            .unwrap_or_default()
            .replace('"', "\"\""),
        a.full_name,
        a.date_of_birth,
    );
    let (status, text) = post_match(
        server.addr,
        key::MATCHER,
        "?candidates=true",
        "text/csv",
        &csv,
    );
    assert_eq!(status, 200, "{text}");
    let mut out = text.lines();
    assert_eq!(
        out.next(),
        Some("row,id,status,mismatched,candidates,error")
    );
    assert_eq!(out.next(), Some(format!("1,{},found,,,", a.id).as_str()));
    let second = out.next().unwrap();
    assert!(
        second.starts_with("2,,missing_id,,") && second.contains(&a.id.to_string()),
        "{second}"
    );
    assert_eq!(out.next(), None);
}

#[test]
fn scope_columns_and_format_are_checked_before_streaming() {
    let server = TestServer::shared();
    let row = row_of(&citizen(5)).to_string();
    let (status, _) = post_match(server.addr, key::VERIFIER, "", "application/x-ndjson", &row);
    assert_eq!(status, 403);
    let (status, _) = post_match(server.addr, key::MATCHER, "", "application/json", &row);
    assert_eq!(status, 415);
    // A fixed Content-Type is overridden by ?format=.
    let (status, text) = post_match(
        server.addr,
        key::MATCHER,
        "?format=ndjson",
        "application/json",
        &row,
    );
    assert_eq!((status, lines(&text).len()), (200, 1));
    let (status, text) = post_match(
        server.addr,
        key::MATCHER,
        "",
        "text/csv",
        "id,blood_type\n1,O+\n",
    );
    assert_eq!(status, 400, "{text}");
    let (status, _) = post_match(server.addr, key::MATCHER, "?nearby=1", "text/csv", "id\n");
    assert_eq!(status, 400);
    // A header and no rows: just the result header.
    let (status, text) = post_match(server.addr, key::MATCHER, "", "text/csv", "id,full_name\n");
    assert_eq!(
        (status, text.as_str()),
        (200, "row,id,status,mismatched,candidates,error\n")
    );
    // An empty body is an empty dataset, in either format.
    let (status, text) = post_match(server.addr, key::MATCHER, "", "text/csv", "");
    assert_eq!(
        (status, text.as_str()),
        (200, "row,id,status,mismatched,candidates,error\n")
    );
    let (status, text) = post_match(server.addr, key::MATCHER, "", "application/x-ndjson", "");
    assert_eq!((status, text.as_str()), (200, ""));
    let (status, text) = post_match(server.addr, key::MATCHER, "", "", "");
    assert_eq!(
        (status, text.as_str()),
        (200, ""),
        "no Content-Type: NDJSON"
    );
}

#[test]
fn candidates_see_a_birth_registered_since_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::with_register(dir.path(), 200);
    let mut c = server.client();
    let body = json!({
        "full_name": "Vũ Thị Mới Sinh",
        "date_of_birth": "2026-11-20",
        "sex": "female",
        "birth_registration_place": "Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh",
        "permanent_residence": "Số 5 Lê Lợi, TP. Hồ Chí Minh",
        "nationality": "VN",
    })
    .to_string();
    let req = format!(
        "POST /v1/citizens HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nX-Change-Reason: birth certificate 1\r\n\
         Idempotency-Key: match-test-1\r\n\r\n{body}",
        key::REGISTRAR,
        body.len()
    );
    c.send_raw(req.as_bytes());
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let row = json!({"full_name": "VU THI MOI SINH", "date_of_birth": "2026-11-20"}).to_string();
    let (status, text) = post_match(
        server.addr,
        key::MATCHER,
        "?candidates=true",
        "application/x-ndjson",
        &row,
    );
    assert_eq!(status, 200, "{text}");
    assert_eq!(lines(&text)[0]["candidates"], json!([id]));
    let found = json!({"id": id, "full_name": "VU THI MOI SINH"}).to_string();
    let (_, text) = post_match(
        server.addr,
        key::MATCHER,
        "",
        "application/x-ndjson",
        &found,
    );
    assert_eq!(lines(&text)[0]["status"], "found");
}
