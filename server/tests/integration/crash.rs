//! Durability of the change log under SIGKILL: writers hammer a real
//! `dancu-server` process, it is killed at a random moment, restarted, and
//! every change a writer was told about must be there, no ID issued twice,
//! and the feed must replay without a gap.
//!
//! `cargo test` runs 3 rounds; `DANCU_CRASH_ROUNDS=30 cargo test --release
//! -p dancu-server --test integration crash` (or `server/tests/crash.sh`)
//! runs the long proof.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

const WRITERS: usize = 8;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn start(dir: &Path, snapshot: &Path, keys: &Path, addr: SocketAddr) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .arg("--snapshot")
        .arg(snapshot)
        .arg("--keys")
        .arg(keys)
        .arg("--audit")
        .arg(dir.join("crash.audit"))
        .arg("--changes")
        .arg(dir.join("changes"))
        .args(["--listen", &addr.to_string(), "--runtime", "multi:2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, _)) = request(addr, "GET", "/readyz", None, &[], "") {
            return proc;
        }
        assert!(Instant::now() < deadline, "the server did not get ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One request on a fresh connection; `None` on any I/O error.
fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    if let Some(key) = key {
        req.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(req.as_bytes()).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8(body).ok()?))
}

/// `GET /v1/citizens/{id}` as the reader: the status and the JSON body.
fn read_citizen(addr: SocketAddr, id: &str) -> (u16, serde_json::Value) {
    let path = format!("/v1/citizens/{id}");
    let (status, text) = request(addr, "GET", &path, Some(key::READER), &[], "").unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

/// What writers were told.
#[derive(Default)]
struct Acknowledged {
    /// Registrations: ID → full name.
    born: HashMap<String, String>,
    /// Moves: citizen → highest acknowledged counter.
    moved: HashMap<String, u64>,
}

fn residence(counter: u64) -> String {
    format!("Số {counter} Đường Thử, Hà Nội")
}

#[test]
fn sigkill_under_concurrent_writes_loses_nothing_acknowledged() {
    let rounds: usize = std::env::var("DANCU_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let snapshot = dir.path().join("base.snap");
    build(&snapshot, 1, 200);
    let keys = write_keys(dir.path());
    let base = dancu_engine::Snapshot::open_file(&snapshot, dancu_engine::Memory::Map).unwrap();
    // Each writer moves its own citizens, so the newest value is known.
    let citizens: Vec<String> = base.iter().map(|v| v.id().to_string()).collect();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut counter_base = 0u64;
    for round in 0..rounds {
        let addr = free_addr();
        let mut server = start(dir.path(), &snapshot, &keys, addr);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..WRITERS)
            .map(|t| {
                let (acked, stop, citizens) = (acked.clone(), stop.clone(), citizens.clone());
                std::thread::spawn(move || {
                    let mine: Vec<&String> = citizens.iter().skip(t).step_by(WRITERS).collect();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let counter = counter_base + i;
                        if i % 2 == 0 {
                            let name = format!("Bé Vòng {round} Luồng {t} Số {i}");
                            let body = serde_json::json!({
                                "full_name": name, "date_of_birth": "2026-11-01", "sex": "male",
                                "birth_registration_place": "Phường 1, Quận 3, TP. Hồ Chí Minh",
                            })
                            .to_string();
                            let key = format!("r{round}-t{t}-{i}");
                            let headers = [
                                ("X-Change-Reason", "crash test"),
                                ("Idempotency-Key", key.as_str()),
                            ];
                            match request(
                                addr,
                                "POST",
                                "/v1/citizens",
                                Some(key::REGISTRAR),
                                &headers,
                                &body,
                            ) {
                                Some((201, text)) => {
                                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                                    let id = v["id"].as_str().unwrap().to_string();
                                    let mut a = acked.lock().unwrap();
                                    assert!(
                                        a.born.insert(id, name).is_none(),
                                        "an ID issued twice"
                                    );
                                }
                                Some((status, text)) => {
                                    panic!("registration answered {status}: {text}")
                                }
                                None => return,
                            }
                        } else {
                            let who = mine[(i as usize / 2) % mine.len()];
                            let body = serde_json::json!({"current_residence": residence(counter)})
                                .to_string();
                            let headers = [("X-Change-Reason", "crash test")];
                            match request(
                                addr,
                                "PATCH",
                                &format!("/v1/citizens/{who}"),
                                Some(key::REGISTRAR),
                                &headers,
                                &body,
                            ) {
                                Some((200, _)) => {
                                    acked.lock().unwrap().moved.insert(who.clone(), counter);
                                }
                                Some((status, text)) => panic!("move answered {status}: {text}"),
                                None => return,
                            }
                        }
                    }
                })
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(150 + seed % 500));
        server.0.kill().unwrap(); // SIGKILL
        let _ = server.0.wait();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        counter_base += 1_000_000;
        drop(server);

        // Restart: everything acknowledged is there.
        let addr = free_addr();
        let _server = start(dir.path(), &snapshot, &keys, addr);
        let a = acked.lock().unwrap();
        for (id, name) in &a.born {
            let (status, v) = read_citizen(addr, id);
            assert_eq!(status, 200, "round {round}: acknowledged birth {id} lost");
            assert_eq!(v["full_name"], name.as_str());
        }
        for (id, counter) in &a.moved {
            let (_, v) = read_citizen(addr, id);
            let now = v["current_residence"].as_str().unwrap_or_default();
            let found: u64 = now
                .split(' ')
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            // A move in flight at the kill may be durable without an answer:
            // never older than the last acknowledged one.
            assert!(
                found >= *counter,
                "round {round}: {id} shows move {found}, {counter} was acknowledged"
            );
        }
        // The feed replays without a gap, and every birth is in it once.
        let mut births = HashSet::new();
        let mut last = 0u64;
        loop {
            let path = format!("/v1/changes?after={last}&limit=10000");
            let (status, page) = request(addr, "GET", &path, Some(key::FEED), &[], "").unwrap();
            assert_eq!(status, 200);
            if page.is_empty() {
                break;
            }
            for line in page.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                last += 1;
                assert_eq!(
                    v["sequence"].as_u64(),
                    Some(last),
                    "round {round}: gap in the log"
                );
                if v["kind"] == "register" {
                    let id = v["id"].as_str().unwrap().to_string();
                    assert!(births.insert(id), "ID twice in the log");
                }
            }
        }
        assert!(a.born.keys().all(|id| births.contains(id)));
        eprintln!(
            "crash round {round}: {} births and {} citizens moved acknowledged so far, {} changes in the log",
            a.born.len(),
            a.moved.len(),
            last
        );
    }
}
