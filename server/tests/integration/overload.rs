//! Admission control over HTTP (issue 18): shed answers, the batch pool
//! that keeps batches off the runtime threads, and what `/metrics` shows.
//! Everything is shown by order (a batch held on the pool while singles
//! are answered), never by time.

use std::time::Duration;

use dancu_server::hash_key;

use crate::support::{key, shared_snapshot, Client, TestServer, EXAMPLE_ID};

const BULK_KEY: &str = "bulk-key";

/// Adds a `bulk` client (verify and read) to the test keys.toml.
fn with_bulk_client(config: &mut dancu_server::Config) {
    let path = config.keys.clone().expect("test servers have keys.toml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "[[client]]\nname = \"bulk\"\nkey_sha256 = \"{}\"\nscopes = [\"citizen:read\", \"citizen:verify\"]\nclass = \"bulk\"\n",
        hash_key(BULK_KEY)
    ));
    std::fs::write(&path, text).unwrap();
}

fn batch_verify_body() -> String {
    format!(r#"{{"requests":[{{"id":"{EXAMPLE_ID}","full_name":"NGUYEN VAN AN"}}]}}"#)
}

/// A server with a bulk client and a one-thread batch pool on which
/// batches wait as long as a test needs (no budget shedding), held: no
/// batch starts until `hold_batches(false)`.
fn held_pool_server(client_batches: usize, batch_queue: usize) -> TestServer {
    let server = TestServer::start(shared_snapshot(), |c| {
        with_bulk_client(c);
        c.limits.admission.batch_threads = 1;
        c.limits.admission.client_batches = client_batches;
        c.limits.admission.batch_queue = batch_queue;
        c.limits.admission.queue_wait_budget = Duration::from_secs(3600);
        c.limits.admission.bulk_queue_wait_budget = Duration::from_secs(3600);
    });
    server.server.as_ref().unwrap().hold_batches(true);
    server
}

/// A connection that sent a batchVerify with `key` and has not read the
/// answer (its batch waits for the held pool).
fn send_batch(server: &TestServer, key: &str) -> Client {
    let mut conn = server.client();
    conn.send_raw(&Client::format(
        "POST",
        "/v1/citizens:batchVerify",
        Some(key),
        Some(batch_verify_body().as_bytes()),
    ));
    conn
}

fn metrics(server: &TestServer) -> String {
    server.client().get("/metrics", None).text()
}

/// The value of one metric line (exact labels), 0 when absent.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Polls `/metrics` until `series` reaches `at_least` (bounded: 2,000 tries).
fn wait_for_metric(server: &TestServer, series: &str, at_least: u64) {
    for _ in 0..2000 {
        if metric(&metrics(server), series) >= at_least {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("{series} never reached {at_least}:\n{}", metrics(server));
}

/// `dancu_shed_total` of one route, client and reason.
fn shed(text: &str, route: &str, client: &str, reason: &str) -> u64 {
    metric(
        text,
        &format!(r#"dancu_shed_total{{route="{route}",client="{client}",reason="{reason}"}}"#),
    )
}

fn assert_shed(resp: &crate::support::Response) {
    assert_eq!(resp.status, 503, "{}", resp.text());
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(resp.error_code(), "overloaded");
}

#[test]
fn a_bulk_request_past_its_queue_wait_budget_is_shed_with_retry_after() {
    // A zero budget: any wait at all is past it, so every bulk data read is
    // shed; interactive clients keep the default budget and are served.
    let server = TestServer::start(shared_snapshot(), |c| {
        with_bulk_client(c);
        c.limits.admission.bulk_queue_wait_budget = Duration::ZERO;
    });
    let mut bulk = server.client();
    let path = format!("/v1/citizens/{EXAMPLE_ID}");
    assert_shed(&bulk.get(&path, Some(BULK_KEY)));
    // A shed POST reads its body first: the connection stays usable.
    assert_shed(&bulk.post(
        "/v1/citizens:batchVerify",
        Some(BULK_KEY),
        &batch_verify_body(),
    ));
    assert_shed(&bulk.get(&path, Some(BULK_KEY)));
    assert_eq!(server.client().get(&path, Some(key::READER)).status, 200);
    // The write time is recorded once the answer is written, which may be
    // after the client has read it: wait for it rather than race it.
    for family in ["queue_wait", "service", "write"] {
        wait_for_metric(
            &server,
            &format!(r#"dancu_http_{family}_seconds_count{{route="get_citizen",client="reader"}}"#),
            1,
        );
    }
    let text = metrics(&server);
    assert_eq!(
        shed(&text, "get_citizen", "bulk", "queue_wait"),
        2,
        "{text}"
    );
    assert_eq!(shed(&text, "batch_verify", "bulk", "queue_wait"), 1);
    assert_eq!(
        metric(
            &text,
            r#"dancu_http_requests_total{route="get_citizen",client="bulk",code="503"}"#
        ),
        2
    );
    // Every authorized request has its wait, service and write time.
    for family in ["queue_wait", "service", "write"] {
        assert_eq!(
            metric(
                &text,
                &format!(
                    r#"dancu_http_{family}_seconds_count{{route="get_citizen",client="reader"}}"#
                )
            ),
            1,
            "{family}: {text}"
        );
    }
    assert_eq!(
        metric(
            &text,
            r#"dancu_http_receive_seconds_count{route="batch_verify",client="bulk"}"#
        ),
        1
    );
}

#[test]
fn singles_are_answered_while_a_batch_waits_for_the_pool_and_excess_batches_are_shed() {
    let mut server = held_pool_server(1, 2);
    // An interactive batch, sent and left waiting for the held pool.
    let mut batch = send_batch(&server, key::VERIFIER);
    wait_for_metric(&server, "dancu_batches_queued_interactive", 1);
    // Singles on other connections are answered while it waits.
    let mut single = server.client();
    for _ in 0..3 {
        let resp = single.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::READER));
        assert_eq!(resp.status, 200);
        let resp = single.post(
            "/v1/citizens:verify",
            Some(key::VERIFIER),
            &format!(r#"{{"id":"{EXAMPLE_ID}","full_name":"NGUYEN VAN AN"}}"#),
        );
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    // A bulk batch fills the queue (two places).
    let mut bulk = send_batch(&server, BULK_KEY);
    wait_for_metric(&server, "dancu_batches_queued_bulk", 1);
    // With another client's batch waiting, the first client's second batch
    // is over its share of the pool; anyone else's finds the queue full.
    let resp = server.client().post(
        "/v1/citizens:batchVerify",
        Some(key::VERIFIER),
        &batch_verify_body(),
    );
    assert_shed(&resp);
    let resp = server.client().post(
        "/v1/citizens:batchVerify",
        Some(key::VERIFIER_EXTENDED),
        &batch_verify_body(),
    );
    assert_shed(&resp);
    let text = metrics(&server);
    assert_eq!(
        shed(&text, "batch_verify", "verifier", "client_share"),
        1,
        "{text}"
    );
    assert_eq!(
        shed(
            &text,
            "batch_verify",
            "verifier-extended",
            "batch_queue_full"
        ),
        1
    );
    // Released, both held batches are answered in full.
    server.server.as_ref().unwrap().hold_batches(false);
    for conn in [&mut batch, &mut bulk] {
        let resp = conn.read_response().expect("the held batch's answer");
        assert_eq!(resp.status, 200, "{}", resp.text());
        assert_eq!(resp.json()["results"][0]["match"], true);
    }
    server.stop();
}

/// Regression: the per-client share shed a client's 17th concurrent batch
/// even on an idle box. It binds only while other clients' batches wait.
#[test]
fn a_client_alone_may_pass_its_batch_share_until_another_client_waits() {
    let mut server = held_pool_server(1, 8);
    let send = |key: &str| send_batch(&server, key);
    // Three batches of one client on a share of one: all queued, none shed.
    let mut held = vec![
        send(key::VERIFIER),
        send(key::VERIFIER),
        send(key::VERIFIER),
    ];
    wait_for_metric(&server, "dancu_batches_queued_interactive", 3);
    // Another client's batch waits too: now the first client is held to
    // its share.
    held.push(send(BULK_KEY));
    wait_for_metric(&server, "dancu_batches_queued_bulk", 1);
    assert_shed(&server.client().post(
        "/v1/citizens:batchVerify",
        Some(key::VERIFIER),
        &batch_verify_body(),
    ));
    let text = metrics(&server);
    assert_eq!(
        shed(&text, "batch_verify", "verifier", "client_share"),
        1,
        "{text}"
    );
    server.server.as_ref().unwrap().hold_batches(false);
    for conn in &mut held {
        let resp = conn.read_response().expect("the held batch's answer");
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    server.stop();
}
