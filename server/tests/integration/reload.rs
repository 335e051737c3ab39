//! Hot swap: reload under load with zero failed requests; a bad snapshot
//! never replaces a good one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;

#[test]
fn reload_under_load_fails_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("register.snap");
    build(&first, 1, 1000);
    let server = TestServer::start(&first, |c| {
        c.layout = dancu_server::Layout::PerCore { threads: 2 }
    });
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..4)
        .map(|t| {
            let (stop, ok, failures) = (Arc::clone(&stop), Arc::clone(&ok), Arc::clone(&failures));
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                let started = Instant::now();
                let mut n = 0u64;
                // Bounded: stops when told, or after 60 s / 200 k requests.
                while !stop.load(Ordering::Relaxed)
                    && n < 200_000
                    && started.elapsed() < Duration::from_secs(60)
                {
                    let r = if n % 3 == 0 {
                        c.post(
                            "/v1/citizens:batchGet",
                            Some(key::READER),
                            &format!(
                                r#"{{"ids":["{EXAMPLE_ID}","{}"],"fields":"id"}}"#,
                                citizen(n % 900 + 1).id
                            ),
                        )
                    } else {
                        c.get(
                            &format!("/v1/citizens/{}?fields=id", citizen((n + t) % 900 + 1).id),
                            Some(key::READER),
                        )
                    };
                    if r.status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.lock().push(format!("{} {}", r.status, r.text()));
                    }
                    n += 1;
                }
            })
        })
        .collect();
    let mut admin = server.client();
    let newcomer = citizen(1500).id.to_string();
    assert_eq!(
        admin
            .get(&format!("/v1/citizens/{newcomer}"), Some(key::READER))
            .status,
        404
    );
    for generation in 2..=4u64 {
        std::thread::sleep(Duration::from_millis(150));
        // Alternate: a new file beside the old one, then a rebuild renamed over the configured path.
        let path = if generation % 2 == 0 {
            dir.path().join(format!("gen{generation}.snap"))
        } else {
            first.clone()
        };
        build(&path, generation, 1000 + 500 * generation);
        let r = admin.post("/v1/admin/reload", Some(key::ADMIN), "");
        assert_eq!(r.status, 200, "{}", r.text());
        let j = r.json();
        assert_eq!(
            (j["reloaded"].as_bool(), j["generation"].as_u64()),
            (Some(true), Some(generation)),
            "{j}"
        );
        assert_eq!(j["previous_generation"], generation - 1);
        assert_eq!(admin.get("/readyz", None).json()["generation"], generation);
    }
    assert_eq!(
        admin
            .get(&format!("/v1/citizens/{newcomer}"), Some(key::READER))
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock();
    assert!(
        failures.is_empty(),
        "{} failed requests, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load: {}",
        ok.load(Ordering::Relaxed)
    );
    let metrics = admin.get("/metrics", None).text();
    assert!(
        metrics.contains("dancu_snapshot_reloads_total 3"),
        "{metrics}"
    );
    assert!(metrics.contains("dancu_snapshot_generation 4"));
}

#[test]
fn a_corrupt_newer_snapshot_is_refused_and_the_old_one_stays() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("register.snap");
    build(&first, 1, 500);
    let server = TestServer::start(&first, |_| {});
    let mut c = server.client();
    // Newer, but one byte flipped in its data: opens, fails verification.
    let newer = dir.path().join("newer.snap");
    build(&newer, 9, 500);
    let mut bytes = std::fs::read(&newer).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&newer, bytes).unwrap();
    // Not a snapshot at all: skipped when looking for the newest.
    std::fs::write(dir.path().join("junk.snap"), b"hello").unwrap();
    let r = c.post("/v1/admin/reload", Some(key::ADMIN), "");
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (500, "reload_failed"),
        "{}",
        r.text()
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("corrupt"),
        "{}",
        r.text()
    );
    assert_eq!(c.get("/readyz", None).json()["generation"], 1);
    assert_eq!(
        c.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::READER))
            .status,
        200
    );
    // Without the corrupt file, an older generation is not "newer".
    std::fs::remove_file(&newer).unwrap();
    build(&dir.path().join("older.snap"), 0, 10);
    let r = c.post("/v1/admin/reload", Some(key::ADMIN), "");
    assert_eq!(r.json()["reloaded"], false);
    let metrics = c.get("/metrics", None).text();
    assert!(
        metrics.contains("dancu_snapshot_reload_failures_total 1"),
        "{metrics}"
    );
}

#[test]
fn not_ready_until_verified() {
    // A corrupt snapshot at start: the server listens, but never turns ready,
    // and `wait` reports the verification error.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.snap");
    build(&path, 1, 200);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 50;
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let mut config = dancu_server::Config::new(&path);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let server = dancu_server::Server::start(config).unwrap();
    let err = server.wait().unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
    // With --no-verify the same file is served.
    let server = TestServer::start(&path, |c| c.verify = false);
    let r = once(server.addr, "GET", "/v1/snapshot", Some(key::READER), None);
    assert_eq!(r.json()["verified"], false);
}

#[test]
fn a_reload_during_startup_verification_is_not_rolled_back() {
    // A large generation-1 file takes a while to verify; a small
    // generation-2 file in the same directory is reloaded meanwhile. When
    // the start-up verification ends, generation 2 must still be served.
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("register.snap");
    build(&first, 1, 60_000);
    let keys = write_keys(dir.path());
    let mut config = dancu_server::Config::new(&first);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.keys = Some(keys);
    config.audit = Some(dir.path().join("test.audit"));
    config.layout = dancu_server::Layout::MultiThread { threads: 2 };
    build(&dir.path().join("next.snap"), 2, 10);
    let server = dancu_server::Server::start(config).unwrap();
    let addr = server.local_addr();
    let r = once(addr, "POST", "/v1/admin/reload", Some(key::ADMIN), Some(""));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 2);
    let started_ready = server.is_ready();
    assert!(server.wait_until_ready());
    let r = once(addr, "GET", "/readyz", None, None);
    assert_eq!(
        r.json()["generation"],
        2,
        "rolled back to the start-up snapshot (ready before the reload: {started_ready})"
    );
    let info = once(addr, "GET", "/v1/snapshot", Some(key::ADMIN), None);
    assert_eq!(info.json()["generation"], 2);
    server.shutdown();
    server.wait().unwrap();
}

#[test]
fn a_warm_server_serves_and_swaps_in_a_warmed_generation() {
    // `--memory warm`: every page read in at open and again for the newer
    // generation, before it is swapped in; answers as a mapped server's.
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("register.snap");
    build(&first, 1, 500);
    let server = TestServer::start(&first, |c| c.memory = dancu_engine::Memory::Warm);
    let mut c = server.client();
    let path = format!("/v1/citizens/{EXAMPLE_ID}");
    assert_eq!(c.get(&path, Some(key::READER)).status, 200);
    build(&dir.path().join("newer.snap"), 2, 500);
    let r = c.post("/v1/admin/reload", Some(key::ADMIN), "");
    assert_eq!(r.json()["reloaded"], true, "{}", r.text());
    assert_eq!(c.get("/readyz", None).json()["generation"], 2);
    assert_eq!(c.get(&path, Some(key::READER)).status, 200);
}
