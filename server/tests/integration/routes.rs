//! Every route of DESIGN.md's table, answering correctly.

use crate::support::*;

#[test]
fn get_citizen_returns_the_whole_record_for_citizen_read() {
    let server = TestServer::shared();
    let mut c = server.client();
    let r = c.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::READER));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["id"], EXAMPLE_ID);
    assert_eq!(j["full_name"], "Nguyễn Văn An");
    assert_eq!(j["date_of_birth"], "1989-03-14");
    assert_eq!(j["legacy_id"], EXAMPLE_LEGACY);
    assert_eq!(j["biometrics"], serde_json::json!(["face"]));
    assert!(
        j["temporary_residence"].is_null(),
        "unknown fields are null, not absent"
    );
    assert_eq!(j.as_object().unwrap().len(), 22);
    // keep-alive: a second request on the same connection
    let r = c.get(
        &format!("/v1/citizens/{}", citizen(7).id),
        Some(key::READER),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["full_name"], citizen(7).full_name);
}

#[test]
fn fields_parameter_asks_for_less() {
    let server = TestServer::shared();
    let mut c = server.client();
    let r = c.get(
        &format!("/v1/citizens/{EXAMPLE_ID}?fields=id,full_name"),
        Some(key::READER),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        serde_json::json!({"id": EXAMPLE_ID, "full_name": "Nguyễn Văn An"})
    );
    let r = c.get(
        &format!("/v1/citizens/{EXAMPLE_ID}?fields=sex%2Chometown"),
        Some(key::READER),
    );
    assert_eq!(r.json().as_object().unwrap().len(), 2);
    let r = c.get(
        &format!("/v1/citizens/{EXAMPLE_ID}?fields=id,shoe_size"),
        Some(key::READER),
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_fields"));
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("shoe_size"));
}

#[test]
fn basic_scope_projection_hides_fields() {
    let server = TestServer::shared();
    let mut c = server.client();
    let r = c.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::BASIC));
    assert_eq!(r.status, 200);
    let j = r.json();
    let mut keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["date_of_birth", "full_name", "id", "nationality", "sex"]
    );
    // Asking for a hidden field is refused, not silently dropped.
    let r = c.get(
        &format!("/v1/citizens/{EXAMPLE_ID}?fields=id,permanent_residence"),
        Some(key::BASIC),
    );
    assert_eq!((r.status, r.error_code().as_str()), (403, "forbidden"));
    let r = c.get(
        &format!("/v1/citizens/{EXAMPLE_ID}?fields=full_name"),
        Some(key::BASIC),
    );
    assert_eq!(r.json(), serde_json::json!({"full_name": "Nguyễn Văn An"}));
    // Batch: same projection.
    let r = c.post(
        "/v1/citizens:batchGet",
        Some(key::BASIC),
        &format!(r#"{{"ids":["{EXAMPLE_ID}"]}}"#),
    );
    assert_eq!(
        r.json()["results"][0]["citizen"].as_object().unwrap().len(),
        5
    );
    // Legacy lookups need citizen:read.
    let r = c.get(
        &format!("/v1/legacy-ids/{EXAMPLE_LEGACY}"),
        Some(key::BASIC),
    );
    assert_eq!(r.status, 403);
}

#[test]
fn batch_get_answers_in_order_with_a_status_each() {
    let server = TestServer::shared();
    let mut c = server.client();
    let known: Vec<String> = (1..=50).map(|i| citizen(i).id.to_string()).collect();
    let mut ids = known.clone();
    ids.insert(10, UNKNOWN_ID.into());
    ids.insert(20, "12345".into());
    ids.insert(30, "07908901234x".into());
    let body = serde_json::json!({ "ids": ids }).to_string();
    let r = c.post("/v1/citizens:batchGet", Some(key::READER), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), ids.len());
    for (sent, result) in ids.iter().zip(&results) {
        assert_eq!(result["id"], sent.as_str());
        match sent.as_str() {
            UNKNOWN_ID => {
                assert_eq!(result["status"], 404);
                assert_eq!(result["error"]["code"], "not_found");
            }
            "12345" => {
                assert_eq!(result["status"], 400);
                assert_eq!(result["error"]["reason"], "invalid_length");
            }
            "07908901234x" => assert_eq!(result["error"]["reason"], "non_digit"),
            _ => {
                assert_eq!(result["status"], 200);
                assert_eq!(result["citizen"]["id"], sent.as_str());
            }
        }
    }
    let r = c.post("/v1/citizens:batchGet", Some(key::READER), r#"{"ids":[]}"#);
    assert_eq!(r.json(), serde_json::json!({"results": []}));
    let r = c.post(
        "/v1/citizens:batchGet",
        Some(key::READER),
        &format!(r#"{{"ids":["{EXAMPLE_ID}"],"fields":"id,sex"}}"#),
    );
    assert_eq!(
        r.json()["results"][0]["citizen"],
        serde_json::json!({"id": EXAMPLE_ID, "sex": "male"})
    );
}

#[test]
fn verify_answers_per_field_and_discloses_nothing_else() {
    let server = TestServer::shared();
    let mut c = server.client();
    let body = format!(
        r#"{{"id":"{EXAMPLE_ID}","full_name":"NGUYEN  VAN AN","date_of_birth":"1989-03-14","sex":"female"}}"#
    );
    let r = c.post("/v1/citizens:verify", Some(key::VERIFIER), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"match": false, "fields": {"full_name": true, "date_of_birth": true, "sex": false}})
    );
    // `alive` is not on the card: it needs citizen:verify:extended.
    let r = c.post(
        "/v1/citizens:verify",
        Some(key::VERIFIER_EXTENDED),
        &format!(r#"{{"id":"{EXAMPLE_ID}","full_name":"Nguyễn Văn An","alive":true}}"#),
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"match": true, "fields": {"full_name": true, "alive": true}, "alive": true})
    );
    let r = c.post(
        "/v1/citizens:verify",
        Some(key::VERIFIER),
        &format!(r#"{{"id":"{UNKNOWN_ID}","sex":"male"}}"#),
    );
    assert_eq!((r.status, r.error_code().as_str()), (404, "not_found"));
    let r = c.post(
        "/v1/citizens:verify",
        Some(key::VERIFIER),
        &format!(r#"{{"id":"{EXAMPLE_ID}"}}"#),
    );
    assert_eq!((r.status, r.error_code().as_str()), (400, "empty_claims"));
}

#[test]
fn batch_verify_answers_in_order() {
    let server = TestServer::shared();
    let mut c = server.client();
    // A batch names each subject once (`citizen(1)` is female).
    let (female, other) = (citizen(1).id, citizen(2).id);
    let body = format!(
        r#"{{"requests":[
            {{"id":"{EXAMPLE_ID}","full_name":"nguyen van an"}},
            {{"id":"{UNKNOWN_ID}","sex":"male"}},
            {{"id":"{female}","sex":"male"}},
            {{"id":"0790","sex":"male"}},
            {{"id":"{EXAMPLE_ID}","colour":"blue"}},
            {{"id":"{other}"}}
        ]}}"#
    );
    let r = c.post("/v1/citizens:batchVerify", Some(key::VERIFIER), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 6);
    assert_eq!(
        results[0],
        serde_json::json!({"id": EXAMPLE_ID, "status": 200, "match": true, "fields": {"full_name": true}, "alive": true})
    );
    assert_eq!(results[1]["status"], 404);
    assert_eq!(results[2]["match"], false);
    assert_eq!(
        (
            results[3]["status"].as_u64(),
            results[3]["error"]["reason"].as_str()
        ),
        (Some(400), Some("invalid_length"))
    );
    assert_eq!(results[4]["error"]["code"], "invalid_request");
    assert!(results[4]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
    assert_eq!(results[5]["error"]["code"], "empty_claims");
    // The all-valid fast path gives the same shapes.
    let many: Vec<String> = (1..=200)
        .map(|i| {
            let c = citizen(i);
            format!(
                r#"{{"id":"{}","full_name":"{}","date_of_birth":"{}"}}"#,
                c.id, c.full_name, c.date_of_birth
            )
        })
        .collect();
    let r = c.post(
        "/v1/citizens:batchVerify",
        Some(key::VERIFIER),
        &format!(r#"{{"requests":[{}]}}"#, many.join(",")),
    );
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 200);
    assert!(results.iter().all(|r| r["match"] == true), "{results:?}");
}

#[test]
fn legacy_and_identify_find_the_person() {
    let server = TestServer::shared();
    let mut c = server.client();
    let r = c.get(
        &format!("/v1/legacy-ids/{EXAMPLE_LEGACY}"),
        Some(key::READER),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["id"], EXAMPLE_ID);
    let r = c.get(
        &format!("/v1/legacy-ids/{EXAMPLE_LEGACY}?fields=id"),
        Some(key::READER),
    );
    assert_eq!(r.json(), serde_json::json!({"id": EXAMPLE_ID}));
    let r = c.get("/v1/legacy-ids/999999998", Some(key::READER));
    assert_eq!(r.status, 404);
    let r = c.get("/v1/legacy-ids/000000000", Some(key::READER));
    assert_eq!(
        (r.status, r.json()["error"]["reason"].as_str()),
        (400, Some("all_zeros"))
    );
    let body = format!(
        r#"{{"modality":"face","template_hash":"{}"}}"#,
        EXAMPLE_FACE.to_uppercase()
    );
    let r = c.post("/v1/biometrics:identify", Some(key::BIOMETRIC), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"id": EXAMPLE_ID}));
    let r = c.post(
        "/v1/biometrics:identify",
        Some(key::BIOMETRIC),
        &format!(r#"{{"modality":"fingerprint","template_hash":"{EXAMPLE_FACE}"}}"#),
    );
    assert_eq!(r.status, 404);
    let r = c.post(
        "/v1/biometrics:identify",
        Some(key::BIOMETRIC),
        r#"{"modality":"iris","template_hash":"00"}"#,
    );
    assert_eq!(r.status, 400);
    let r = c.post(
        "/v1/biometrics:identify",
        Some(key::BIOMETRIC),
        r#"{"modality":"face","template_hash":"zz"}"#,
    );
    assert_eq!(r.status, 400);
}

#[test]
fn operations_routes() {
    let server = TestServer::shared();
    let mut c = server.client();
    let r = c.get("/healthz", None);
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));
    let r = c.get("/readyz", None);
    assert_eq!((r.status, r.json()["generation"].as_u64()), (200, Some(1)));
    let r = c.get("/v1/snapshot", Some(key::BASIC));
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["generation"], 1);
    assert_eq!(j["record_count"], CITIZENS + 1);
    assert_eq!(j["verified"], true);
    assert_eq!(j["checksum"].as_str().unwrap().len(), 16);
    let r = c.get("/v1/openapi.yaml", None);
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("openapi: 3.1"));
    let r = c.get("/metrics", None);
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(
        text.contains(r#"dancu_http_requests_total{route="snapshot",client="basic",code="200"} 1"#),
        "{text}"
    );
    assert!(text.contains("dancu_http_request_duration_seconds_bucket{route=\"healthz\""));
    assert!(text.contains("dancu_snapshot_generation 1"));
    assert!(text.contains("dancu_audit_backlog "));
    assert!(text.contains("dancu_audit_enabled 1"));
    let r = c.post("/v1/admin/reload", Some(key::ADMIN), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["reloaded"], false, "nothing newer");
}

#[test]
fn demo_mode_key_works_and_is_loopback_only() {
    let server = TestServer::start(shared_snapshot(), |c| c.keys = None);
    let r = once(
        server.addr,
        "GET",
        &format!("/v1/citizens/{EXAMPLE_ID}"),
        Some(dancu_server::DEMO_KEY),
        None,
    );
    assert_eq!(r.status, 200);
    let mut config = dancu_server::Config::new(shared_snapshot());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = dancu_server::Server::start(config).unwrap_err();
    assert!(
        matches!(err, dancu_server::Error::DemoNotLoopback { .. }),
        "{err}"
    );
}

#[test]
fn per_core_layout_serves_too() {
    let server = TestServer::start(shared_snapshot(), |c| {
        c.layout = dancu_server::Layout::PerCore { threads: 2 }
    });
    for _ in 0..20 {
        let r = once(
            server.addr,
            "GET",
            &format!("/v1/citizens/{EXAMPLE_ID}"),
            Some(key::READER),
            None,
        );
        assert_eq!(r.status, 200);
    }
}
