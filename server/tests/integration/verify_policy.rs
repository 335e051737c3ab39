//! Verification discloses only what the caller already holds (DESIGN.md):
//! the claim policy, one subject per batch, items counted by rate limits,
//! and mismatch throttling. Each test reads a record out on a server
//! without the guard.

use crate::support::*;

fn verify(c: &mut Client, key: &str, claims: &str) -> Response {
    c.post("/v1/citizens:verify", Some(key), claims)
}

#[test]
fn citizen_verify_may_claim_only_the_cards_fields() {
    let server = TestServer::shared();
    let mut c = server.client();
    let card = format!(
        r#"{{"id":"{EXAMPLE_ID}","full_name":"Nguyễn Văn An","date_of_birth":"1989-03-14","sex":"male","legacy_id":"{EXAMPLE_LEGACY}","permanent_residence":"12 Lê Lợi, Phường Bến Thành, Quận 1, Hồ Chí Minh"}}"#
    );
    let r = verify(&mut c, key::VERIFIER, &card);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["match"], true);
    for (field, value) in [
        ("religion", "\"no_religion\""),
        ("ethnicity", "\"Kinh\""),
        ("blood_type", "\"O+\""),
        ("marital_status", "\"single\""),
        ("nationality", "\"VN\""),
        ("alive", "true"),
        ("hometown", "\"Long An\""),
    ] {
        let claims = format!(r#"{{"id":"{EXAMPLE_ID}","{field}":{value}}}"#);
        let r = verify(&mut c, key::VERIFIER, &claims);
        assert_eq!(r.status, 403, "{field}: {}", r.text());
        assert_eq!(r.error_code(), "forbidden");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(field), "{message}");
        assert!(message.contains("citizen:verify:extended"), "{message}");
        // The same claim in a batch: the whole batch is refused.
        let batch = format!(r#"{{"requests":[{claims}]}}"#);
        let r = c.post("/v1/citizens:batchVerify", Some(key::VERIFIER), &batch);
        assert_eq!(r.status, 403, "{field}: {}", r.text());
        // The extended scope may claim it.
        let r = verify(&mut c, key::VERIFIER_EXTENDED, &claims);
        assert_eq!(r.status, 200, "{field}: {}", r.text());
    }
}

#[test]
fn a_batch_names_each_subject_once() {
    let server = TestServer::shared();
    let mut c = server.client();
    let other = citizen(7).id.to_string();
    let body = format!(
        r#"{{"requests":[{{"id":"{EXAMPLE_ID}","sex":"male"}},{{"id":"{other}","sex":"male"}},{{"id":"{EXAMPLE_ID}","sex":"female"}}]}}"#
    );
    // Only the first question about a subject is answered; a later one is
    // that item's 400.
    let r = c.post("/v1/citizens:batchVerify", Some(key::VERIFIER), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let results = r.json()["results"].as_array().unwrap().clone();
    assert_eq!(results[0]["match"], true);
    assert_eq!(results[1]["status"], 200);
    assert_eq!(
        (results[2]["id"].as_str(), results[2]["status"].as_u64()),
        (Some(EXAMPLE_ID), Some(400))
    );
    assert_eq!(results[2]["error"]["code"], "duplicate_subject");
    assert!(results[2].get("match").is_none());
    // Distinct subjects are fine.
    let body = format!(
        r#"{{"requests":[{{"id":"{EXAMPLE_ID}","sex":"male"}},{{"id":"{other}","sex":"male"}}]}}"#
    );
    let r = c.post("/v1/citizens:batchVerify", Some(key::VERIFIER), &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn rate_limits_count_batch_items() {
    let server = TestServer::shared();
    let mut c = server.client();
    // `limited` has a burst of 3 at 0.2/s: four IDs in one request are four
    // (refused, though the request itself took one)...
    let ids: Vec<String> = (1..=4).map(|i| citizen(i).id.to_string()).collect();
    let body = serde_json::json!({ "ids": ids }).to_string();
    let r = c.post("/v1/citizens:batchGet", Some(key::LIMITED), &body);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "rate_limited");
    // ...and two IDs are two.
    let body = serde_json::json!({ "ids": &ids[..2] }).to_string();
    let r = c.post("/v1/citizens:batchGet", Some(key::LIMITED), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    // The burst is used up.
    let r = c.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::LIMITED));
    assert_eq!(r.status, 429);
    assert!(r.header("retry-after").is_some());
}

#[test]
fn repeated_mismatches_on_one_subject_are_throttled() {
    let server = TestServer::shared();
    let mut c = server.client();
    let wrong = format!(r#"{{"id":"{EXAMPLE_ID}","date_of_birth":"1990-01-01"}}"#);
    for _ in 0..5 {
        let r = verify(&mut c, key::VERIFIER, &wrong);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["match"], false);
    }
    // Now even the right answer is refused for this client and subject...
    let right = format!(r#"{{"id":"{EXAMPLE_ID}","date_of_birth":"1989-03-14"}}"#);
    let r = verify(&mut c, key::VERIFIER, &right);
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "too_many_mismatches");
    assert!(r.header("retry-after").is_some());
    let batch = format!(r#"{{"requests":[{right}]}}"#);
    let r = c.post("/v1/citizens:batchVerify", Some(key::VERIFIER), &batch);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["results"][0]["status"], 429);
    // ...but not for other subjects, nor for other clients.
    let other = citizen(3);
    let r = verify(
        &mut c,
        key::VERIFIER,
        &format!(r#"{{"id":"{}","sex":"female"}}"#, other.id),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = verify(&mut c, key::VERIFIER_EXTENDED, &right);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["match"], true);
    let metrics = c.get("/metrics", None).text();
    assert!(
        metrics.contains("dancu_verify_mismatch_throttled_total 2"),
        "{metrics}"
    );
}
