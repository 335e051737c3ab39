//! Follower mode over HTTP: a follower replays its primary's feed, serves
//! the changes, refuses writes naming the primary, catches up after a
//! restart, compacts into the primary's bytes, and says so when the
//! primary trimmed what it needs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dancu_server::follower::FollowConfig;
use dancu_server::{Config, Server};

use crate::register::{newborn, write};
use crate::support::*;

pub(crate) fn follow(primary: &TestServer) -> FollowConfig {
    FollowConfig::new(format!("http://{}", primary.addr), key::FEED.into())
}

/// A server in `dir` over its own copy of `base`, with a change log;
/// a follower if `follow` is given.
pub(crate) fn start_in(dir: &Path, base: &Path, follow: Option<FollowConfig>) -> TestServer {
    std::fs::create_dir_all(dir).unwrap();
    let snapshot = dir.join("base.snap");
    if !snapshot.exists() {
        std::fs::copy(base, &snapshot).unwrap();
    }
    let changes = dir.join("changes");
    TestServer::start(&snapshot, |c| {
        c.changes = Some(changes);
        c.follow = follow;
    })
}

/// Waits (at most 20 s) until `id` reads 200 on `server`.
pub(crate) fn wait_readable(server: &TestServer, id: &str) {
    let mut c = server.client();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c
        .get(&format!("/v1/citizens/{id}"), Some(key::READER))
        .status
        != 200
    {
        assert!(Instant::now() < deadline, "{id} never reached the follower");
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn register_some(primary: &TestServer, n: usize, tag: &str) -> Vec<String> {
    let mut c = primary.client();
    (0..n)
        .map(|i| {
            let r = write(
                &mut c,
                "POST",
                "/v1/citizens",
                &newborn(&format!("Bé {tag} {i}")),
                None,
            );
            assert_eq!(r.status, 201, "{}", r.text());
            r.json()["id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn generation_file(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("register-{generation:06}.snap"))
}

#[test]
fn a_follower_replays_refuses_writes_catches_up_and_compacts_alike() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("gen1.snap");
    build(&base, 1, 300);
    let (p_dir, f_dir) = (dir.path().join("primary"), dir.path().join("follower"));
    let primary = start_in(&p_dir, &base, None);
    let mut follower = start_in(&f_dir, &base, Some(follow(&primary)));

    let ids = register_some(&primary, 5, "a");
    for id in &ids {
        wait_readable(&follower, id);
    }
    let mut c = follower.client();
    let r = write(&mut c, "POST", "/v1/citizens", &newborn("Bé x"), None);
    assert_eq!((r.status, r.error_code().as_str()), (421, "not_primary"));
    assert!(r.text().contains(&primary.addr.to_string()), "{}", r.text());
    let ready = c.get("/readyz", None);
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["role"], "follower");
    let metrics = c.get("/metrics", None).text();
    assert!(metrics.contains("dancu_follower_lag_seconds"), "{metrics}");
    drop(c);

    // Down while the primary takes more; back, it continues from its log.
    follower.stop();
    drop(follower);
    let more = register_some(&primary, 3, "b");
    let follower = start_in(&f_dir, &base, Some(follow(&primary)));
    for id in &more {
        wait_readable(&follower, id);
    }
    let feed = follower
        .client()
        .get("/v1/changes?after=0", Some(key::FEED));
    assert_eq!(feed.text().lines().count(), 8);

    // Each compacts on its own; at the same fold, the same bytes.
    for server in [&primary, &follower] {
        let r = server
            .client()
            .post("/v1/admin/compact", Some(key::ADMIN), "");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["folded_sequence"], 8);
    }
    let on_primary = std::fs::read(generation_file(&p_dir, 2)).unwrap();
    let on_follower = std::fs::read(generation_file(&f_dir, 2)).unwrap();
    assert!(on_primary == on_follower, "generation 2 differs");

    // A new follower from generation 1 cannot replay the trimmed changes.
    let late_dir = dir.path().join("late");
    std::fs::create_dir_all(&late_dir).unwrap();
    std::fs::copy(&base, late_dir.join("base.snap")).unwrap();
    let mut config = Config::new(late_dir.join("base.snap"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.changes = Some(late_dir.join("changes"));
    config.follow = Some(follow(&primary));
    let late = Server::start(config).unwrap();
    let mut c = Client::connect(late.local_addr());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = c.get("/readyz", None);
        if r.status == 503 && r.json()["behind_compaction"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "{}", r.text());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Reseeded with the primary's generation 2 and an empty log, it serves.
    drop(c);
    late.shutdown();
    late.wait().unwrap();
    std::fs::copy(generation_file(&p_dir, 2), generation_file(&late_dir, 2)).unwrap();
    std::fs::remove_dir_all(late_dir.join("changes")).unwrap();
    let late = start_in(&late_dir, &base, Some(follow(&primary)));
    let last = register_some(&primary, 1, "c");
    wait_readable(&late, &last[0]);
    wait_readable(&late, &ids[0]);
}
