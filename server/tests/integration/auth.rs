//! Keys, scopes and rate limits.

use crate::support::*;

#[test]
fn missing_or_wrong_keys_are_401() {
    let server = TestServer::shared();
    let mut c = server.client();
    let path = format!("/v1/citizens/{EXAMPLE_ID}");
    for key in [None, Some("wrong-key"), Some(""), Some("reader-key ")] {
        let r = c.get(&path, key);
        if key == Some("reader-key ") {
            // Surrounding whitespace is not part of the key.
            assert_eq!(r.status, 200);
            continue;
        }
        assert_eq!(r.status, 401, "{key:?}");
        assert_eq!(r.error_code(), "unauthenticated");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    c.send_raw(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Basic cmVhZGVyLWtleQ==\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(c.read_response().unwrap().status, 401);
    // Public routes need no key.
    for p in ["/healthz", "/readyz", "/metrics", "/v1/openapi.yaml"] {
        assert_eq!(c.get(p, None).status, 200, "{p}");
    }
    assert_eq!(c.get("/v1/snapshot", None).status, 401);
}

#[test]
fn missing_scopes_are_403() {
    let server = TestServer::shared();
    let mut c = server.client();
    let verify = format!(r#"{{"id":"{EXAMPLE_ID}","sex":"male"}}"#);
    let identify = format!(r#"{{"modality":"face","template_hash":"{EXAMPLE_FACE}"}}"#);
    let cases: [(&str, &str, Option<&str>, &str); 8] = [
        ("GET", "/v1/citizens/079089012345", None, key::VERIFIER),
        (
            "POST",
            "/v1/citizens:batchGet",
            Some(r#"{"ids":[]}"#),
            key::BIOMETRIC,
        ),
        ("POST", "/v1/citizens:verify", Some(&verify), key::READER),
        (
            "POST",
            "/v1/citizens:batchVerify",
            Some(r#"{"requests":[]}"#),
            key::BASIC,
        ),
        ("GET", "/v1/legacy-ids/123456789", None, key::BASIC),
        (
            "POST",
            "/v1/biometrics:identify",
            Some(&identify),
            key::READER,
        ),
        ("POST", "/v1/admin/reload", Some(""), key::READER),
        ("POST", "/v1/admin/reload", Some(""), key::VERIFIER),
    ];
    for (method, path, body, key) in cases {
        let r = c.request(method, path, Some(key), body.map(str::as_bytes));
        assert_eq!(r.status, 403, "{method} {path} with {key}: {}", r.text());
        assert_eq!(r.error_code(), "forbidden");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("scope"));
    }
    // Any valid key may read the snapshot info.
    assert_eq!(c.get("/v1/snapshot", Some(key::BIOMETRIC)).status, 200);
}

#[test]
fn over_the_rate_is_429_with_retry_after() {
    let server = TestServer::shared();
    let mut c = server.client();
    // burst = 3, rate 0.2/s: the first three pass, then 429 (for 5 s).
    let path = format!("/v1/citizens/{EXAMPLE_ID}?fields=id");
    let statuses: Vec<u16> = (0..6)
        .map(|_| c.get(&path, Some(key::LIMITED)).status)
        .collect();
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|&s| s == 429), "{statuses:?}");
    let r = c.get(&path, Some(key::LIMITED));
    assert_eq!(r.error_code(), "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    // Other clients are not affected.
    assert_eq!(c.get(&path, Some(key::READER)).status, 200);
    let metrics = c.get("/metrics", None).text();
    assert!(
        metrics.contains(
            r#"dancu_http_requests_total{route="get_citizen",client="limited",code="429"}"#
        ),
        "{metrics}"
    );
}

#[test]
fn a_connection_that_changes_keys_is_authenticated_again() {
    // Guards the per-connection key cache: only an identical header reuses it.
    let server = TestServer::shared();
    let mut c = server.client();
    let path = format!("/v1/citizens/{EXAMPLE_ID}");
    assert_eq!(
        c.get(&path, Some(key::READER))
            .json()
            .as_object()
            .unwrap()
            .len(),
        22
    );
    assert_eq!(c.get(&path, Some("reader-kez")).status, 401);
    assert_eq!(
        c.get(&path, Some(key::BASIC))
            .json()
            .as_object()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(c.get(&path, Some(key::VERIFIER)).status, 403);
    assert_eq!(c.get(&path, None).status, 401);
    assert_eq!(c.get(&path, Some(key::READER)).status, 200);
}

#[test]
fn the_example_keys_file_parses() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/keys.example.toml")).unwrap();
    let keys = dancu_server::KeyStore::parse(&text).unwrap();
    assert_eq!(
        keys.client_names(),
        ["anonymous", "social-insurance", "hospital-gateway", "ops"]
    );
}
