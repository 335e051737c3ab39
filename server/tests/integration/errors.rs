//! Bad input never hurts: every error class over real HTTP, and no input
//! gives a 5xx or kills the server.

use std::time::Duration;

use crate::support::*;

fn assert_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let j = r.json();
    assert_eq!(j["error"]["code"], code, "{j}");
    assert!(
        j["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{j}"
    );
}

#[test]
fn malformed_ids_are_400_with_the_reason() {
    let server = TestServer::shared();
    let mut c = server.client();
    for (id, reason, says) in [
        ("0790890123", "invalid_length", "12 digits"),
        ("07908901234x", "non_digit", "character 12"),
        ("003089012345", "unknown_province", "003"),
        ("079489012345", "impossible_century", "digit 4"),
        ("%F0%9F%98%80", "non_digit", "character 1 "),
    ] {
        let r = c.get(&format!("/v1/citizens/{id}"), Some(key::READER));
        assert_error(&r, 400, "invalid_id");
        assert_eq!(r.json()["error"]["reason"], reason, "{id}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{id}: {}",
            r.text()
        );
    }
    let r = c.get(&format!("/v1/citizens/{UNKNOWN_ID}"), Some(key::READER));
    assert_error(&r, 404, "not_found");
    let r = c.post(
        "/v1/citizens:verify",
        Some(key::VERIFIER),
        r#"{"id":"07908901234x","sex":"male"}"#,
    );
    assert_error(&r, 400, "invalid_id");
    assert_eq!(r.json()["error"]["reason"], "non_digit");
}

#[test]
fn unknown_routes_and_wrong_methods() {
    let server = TestServer::shared();
    let mut c = server.client();
    for path in [
        "/",
        "/v2/citizens/079089012345",
        "/v1/citizens/",
        "/v1/citizens/1/2",
        "/v1/citizens:delete",
    ] {
        assert_error(&c.get(path, Some(key::READER)), 404, "route_not_found");
    }
    let r = c.request(
        "DELETE",
        &format!("/v1/citizens/{EXAMPLE_ID}"),
        Some(key::READER),
        None,
    );
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, PATCH"));
    let r = c.get("/v1/citizens:batchGet", Some(key::READER));
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = c.post("/healthz", None, "");
    assert_eq!(r.status, 405);
}

#[test]
fn bad_json_says_where() {
    let server = TestServer::shared();
    let mut c = server.client();
    let r = c.post(
        "/v1/citizens:batchGet",
        Some(key::READER),
        "{\"ids\": [\"079089012345\",\n  ]}",
    );
    assert_error(&r, 400, "invalid_json");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 2 column"),
        "{}",
        r.text()
    );
    let r = c.post(
        "/v1/citizens:batchGet",
        Some(key::READER),
        r#"{"ids": "079089012345"}"#,
    );
    assert_error(&r, 400, "invalid_request");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("column"),
        "{}",
        r.text()
    );
    let r = c.post("/v1/citizens:batchGet", Some(key::READER), r#"{"idz": []}"#);
    assert_error(&r, 400, "invalid_request");
    let r = c.post("/v1/citizens:verify", Some(key::VERIFIER), "not json");
    assert_error(&r, 400, "invalid_json");
    let r = c.post(
        "/v1/citizens:verify",
        Some(key::VERIFIER),
        &format!(r#"{{"id":"{EXAMPLE_ID}","date_of_birth":"1989-02-30"}}"#),
    );
    assert_error(&r, 400, "invalid_request");
    let r = c.post(
        "/v1/citizens:batchVerify",
        Some(key::VERIFIER),
        r#"{"requests":[{"id":"079089012345","sex":"male"},]}"#,
    );
    assert_error(&r, 400, "invalid_json");
    let r = c.post("/v1/biometrics:identify", Some(key::BIOMETRIC), "");
    assert_error(&r, 400, "invalid_json");
}

#[test]
fn batches_over_1000_are_400() {
    let server = TestServer::shared();
    let mut c = server.client();
    let ids: Vec<String> = (0..1001).map(|_| EXAMPLE_ID.to_string()).collect();
    let r = c.post(
        "/v1/citizens:batchGet",
        Some(key::READER),
        &serde_json::json!({ "ids": ids }).to_string(),
    );
    assert_error(&r, 400, "batch_too_large");
    let reqs: Vec<serde_json::Value> = (0..1001)
        .map(|_| serde_json::json!({"id": EXAMPLE_ID, "sex": "male"}))
        .collect();
    let r = c.post(
        "/v1/citizens:batchVerify",
        Some(key::VERIFIER),
        &serde_json::json!({ "requests": reqs }).to_string(),
    );
    assert_error(&r, 400, "batch_too_large");
    let ids: Vec<String> = (0..1000).map(|_| EXAMPLE_ID.to_string()).collect();
    let r = c.post(
        "/v1/citizens:batchGet",
        Some(key::BASIC),
        &serde_json::json!({ "ids": ids }).to_string(),
    );
    assert_eq!(r.status, 200);
}

#[test]
fn bodies_over_the_limit_are_413() {
    let server = TestServer::start(shared_snapshot(), |c| c.limits.max_body_bytes = 4096);
    let big = format!(r#"{{"ids":["{}"]}}"#, "0".repeat(5000));
    let r = once(
        server.addr,
        "POST",
        "/v1/citizens:batchGet",
        Some(key::READER),
        Some(&big),
    );
    assert_error(&r, 413, "payload_too_large");
    // Chunked, without a Content-Length: caught while reading.
    let mut c = server.client();
    let mut req = format!(
        "POST /v1/citizens:batchGet HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        key::READER
    )
    .into_bytes();
    for _ in 0..5 {
        req.extend_from_slice(format!("{:x}\r\n{}\r\n", 1000, "x".repeat(1000)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send_raw(&req);
    assert_error(&c.read_response().unwrap(), 413, "payload_too_large");
}

#[test]
fn slow_and_idle_clients_time_out() {
    let server = TestServer::start(shared_snapshot(), |c| {
        c.limits.header_timeout = Duration::from_millis(300);
        c.limits.body_timeout = Duration::from_millis(300);
    });
    // Idle connection: closed after the header timeout.
    let mut idle = server.client();
    assert!(idle.is_closed_within(Duration::from_secs(5)));
    // Half a request head: closed.
    let mut slow = server.client();
    slow.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
    assert!(slow.is_closed_within(Duration::from_secs(5)));
    // A body that never comes: 408.
    let mut c = server.client();
    c.send_raw(
        format!(
            "POST /v1/citizens:verify HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{",
            key::VERIFIER
        )
        .as_bytes(),
    );
    assert_error(&c.read_response().unwrap(), 408, "request_timeout");
}

#[test]
fn connections_are_capped() {
    let server = TestServer::start(shared_snapshot(), |c| {
        c.limits.max_connections = 2;
        // Every test client has one address; its share is tested elsewhere.
        c.limits.max_connections_per_address = Some(10);
    });
    let mut a = server.client();
    let mut b = server.client();
    assert_eq!(a.get("/healthz", None).status, 200);
    assert_eq!(b.get("/healthz", None).status, 200);
    // The third waits in the backlog until one of the first two closes.
    let mut third = server.client();
    third.send_raw(&Client::format("GET", "/healthz", None, None));
    third
        .stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 1];
    assert!(
        std::io::Read::read(&mut third.stream, &mut buf).is_err(),
        "answered over the cap"
    );
    drop(a);
    third
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(third.read_response().unwrap().status, 200);
    let metrics = b.get("/metrics", None).text();
    assert!(metrics.contains("dancu_connections_open 2"), "{metrics}");
}

#[test]
fn clients_that_never_read_their_responses_are_cut_off() {
    let server = TestServer::start(shared_snapshot(), |c| {
        c.limits.write_timeout = Duration::from_millis(300);
    });
    // 64 batches of 1000 whole records: about 64 MB of responses, far more
    // than the socket buffers of both ends hold, sent and not read.
    let ids: Vec<String> = (1..=1000).map(|i| citizen(i).id.to_string()).collect();
    let body = serde_json::json!({ "ids": ids }).to_string();
    let request = Client::format(
        "POST",
        "/v1/citizens:batchGet",
        Some(key::READER),
        Some(body.as_bytes()),
    );
    let mut c = server.client();
    c.stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut sent = 0;
    while sent < 64 && std::io::Write::write_all(&mut c.stream, &request).is_ok() {
        sent += 1;
    }
    // Past the write timeout, the server has closed the connection: what it
    // had sent is readable, then EOF (or a reset), not a read timeout.
    std::thread::sleep(Duration::from_millis(1000));
    c.stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0usize;
    let closed = loop {
        match std::io::Read::read(&mut c.stream, &mut buf) {
            Ok(0) => break true,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
        assert!(received < sent * (2 << 20), "more than every response");
    };
    assert!(
        closed,
        "still open after the write timeout ({received} bytes read)"
    );
    // Its slot under the connection cap is free again.
    let mut m = server.client();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = m.get("/metrics", None).text();
        if metrics.contains("dancu_connections_open 1\n") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_freed_slot_serves_a_client_queued_on_either_listener() {
    // One listener per core, each with its own SO_REUSEPORT queue, and room
    // for one connection: whichever queue the kernel put a waiting client
    // in, closing the served connection must let the next client in.
    let server = TestServer::start(shared_snapshot(), |c| {
        c.layout = dancu_server::Layout::PerCore { threads: 2 };
        c.limits.max_connections = 1;
        c.limits.max_connections_per_address = Some(10);
    });
    let mut first = server.client();
    assert_eq!(first.get("/healthz", None).status, 200);
    let mut waiting: Vec<Client> = (0..6)
        .map(|_| {
            let mut c = server.client();
            c.send_raw(&Client::format("GET", "/healthz", None, None));
            c
        })
        .collect();
    drop(first);
    while !waiting.is_empty() {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let served = 'find: loop {
            for (i, c) in waiting.iter_mut().enumerate() {
                c.stream
                    .set_read_timeout(Some(Duration::from_millis(10)))
                    .unwrap();
                if c.stream.peek(&mut [0u8; 1]).is_ok_and(|n| n > 0) {
                    break 'find i;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a slot is free but {} clients wait",
                waiting.len()
            );
        };
        let mut c = waiting.remove(served);
        c.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        assert_eq!(c.read_response().unwrap().status, 200);
        // Dropped here: its slot goes to the next.
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::shared();
    let mut c = server.client();
    let mut burst = Vec::new();
    let ids: Vec<String> = (1..=16).map(|i| citizen(i).id.to_string()).collect();
    for id in &ids {
        burst.extend(Client::format(
            "GET",
            &format!("/v1/citizens/{id}?fields=id"),
            Some(key::READER),
            None,
        ));
    }
    c.send_raw(&burst);
    for id in &ids {
        let r = c.read_response().unwrap();
        assert_eq!(r.json()["id"], id.as_str());
    }
}

#[test]
fn no_input_gives_a_5xx_or_kills_the_server() {
    let server = TestServer::shared();
    let paths = [
        "/v1/citizens/%00",
        "/v1/citizens/0790890123456789",
        "/v1/citizens/-1",
        "/v1/citizens/%%%",
        "/v1/citizens/079089012345?fields=",
        "/v1/citizens/079089012345?fields=%",
        "/v1/citizens/079089012345?fields=,,,",
        "/v1/legacy-ids/%FF",
        "/v1/legacy-ids/1234567890",
        "/metrics?x=%",
        "/v1/snapshot/",
    ];
    let bodies = [
        "",
        "{",
        "[]",
        "null",
        "{\"ids\":null}",
        "{\"ids\":[1,2]}",
        "{\"ids\":[\"\\ud800\"]}",
        "{\"requests\":[null]}",
        "{\"requests\":[{}]}",
        "{\"requests\":[[]]}",
        "{\"id\":{}}",
        "{\"modality\":\"face\",\"template_hash\":\"\u{0}\"}",
        "\u{feff}{}",
        "{\"ids\":[\"079089012345\"]}",
        "{\"id\":\"079089012345\",\"full_name\":\"\\u0000\\u001f\u{10FFFF}\"}",
    ];
    let mut c = server.client();
    let mut n = 0;
    for path in paths {
        for k in [Some(key::ALL), Some(key::BASIC), Some("nope"), None] {
            let r = c.get(path, k);
            assert!(r.status < 500, "GET {path}: {} {}", r.status, r.text());
            n += 1;
        }
    }
    for route in [
        "/v1/citizens:batchGet",
        "/v1/citizens:verify",
        "/v1/citizens:batchVerify",
        "/v1/biometrics:identify",
    ] {
        for body in bodies {
            let r = c.post(route, Some(key::ALL), body);
            assert!(
                r.status < 500,
                "POST {route} {body:?}: {} {}",
                r.status,
                r.text()
            );
            n += 1;
        }
    }
    // Not HTTP at all, a header flood, a bad header: the connection is
    // refused or closed, the server lives on.
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"G\0T / HTTP/1.1\r\n\r\n",
    ] {
        let mut g = server.client();
        g.send_raw(garbage);
        if let Some(r) = g.read_response() {
            assert!(r.status < 500, "{}", r.status);
        }
    }
    let mut flood = server.client();
    let mut req = b"GET /healthz HTTP/1.1\r\n".to_vec();
    for i in 0..200 {
        req.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    flood.send_raw(&req);
    if let Some(r) = flood.read_response() {
        assert!(r.status < 500, "{}", r.status);
    }
    assert_eq!(server.client().get("/healthz", None).status, 200);
    assert!(n > 100);
}
