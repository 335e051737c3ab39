//! The binary: graceful shutdown on SIGTERM with a request in flight, reload
//! on SIGHUP, audit flushed, exit 0.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) with the PID of a child this test spawned and still owns.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, sig) };
    assert_eq!(rc, 0);
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "did not exit in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_finishes_in_flight_requests_flushes_the_audit_log_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("register.snap");
    build(&snap, 1, 500);
    let keys = write_keys(dir.path());
    let audit = dir.path().join("bin.audit");
    let mut child = Proc(
        Command::new(env!("CARGO_BIN_EXE_dancu-server"))
            .arg("--snapshot")
            .arg(&snap)
            .arg("--keys")
            .arg(&keys)
            .arg("--audit")
            .arg(&audit)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--runtime",
                "multi:1",
                "--shutdown-timeout",
                "10",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = listening_addr(&first);
    let deadline = Instant::now() + Duration::from_secs(20);
    while once(addr, "GET", "/readyz", None, None).status != 200 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = Client::connect(addr);
    for _ in 0..5 {
        assert_eq!(
            c.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::READER))
                .status,
            200
        );
    }
    // SIGHUP: a newer snapshot is swapped in, and keys.toml is read again
    // (the `reader` key is revoked, also on this open connection).
    build(&dir.path().join("next.snap"), 2, 600);
    rewrite_keys_without(dir.path(), &["reader"]);
    signal(&child.0, libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.get("/readyz", None).json()["generation"] != 2 {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = c.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::READER));
    assert_eq!(r.status, 401, "a revoked key still works: {}", r.text());
    // A request in flight: head and half a body sent.
    let body = format!(r#"{{"id":"{EXAMPLE_ID}","full_name":"NGUYEN VAN AN"}}"#);
    let mut inflight = Client::connect(addr);
    let mut req = Client::format(
        "POST",
        "/v1/citizens:verify",
        Some(key::VERIFIER),
        Some(body.as_bytes()),
    );
    let rest = req.split_off(req.len() - 10);
    inflight.send_raw(&req);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child.0, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    // No longer accepting (bounded wait: the signal is handled asynchronously).
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    inflight.send_raw(&rest);
    let r = inflight
        .read_response()
        .expect("the in-flight request is answered");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["match"], true);
    let status = wait_exit(&mut child.0, Duration::from_secs(15));
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&audit).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(
        lines[5].contains(r#""operation":"verify""#) && lines[5].contains(r#""outcome":"match""#)
    );
}

#[test]
fn sigint_on_an_idle_server_exits_0_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("register.snap");
    build(&snap, 1, 100);
    let (mut child, banner) = start_binary(&snap, &["--data-dir".as_ref(), dir.path().as_os_str()]);
    assert!(banner.contains("dancu-demo-key"), "{banner}");
    assert!(banner.contains("sample IDs: "), "{banner}");
    // An idle keep-alive connection does not hold shutdown up.
    let addr = listening_addr(&banner);
    let _idle = Client::connect(addr);
    signal(&child.0, libc::SIGINT);
    let started = Instant::now();
    assert_eq!(
        wait_exit(&mut child.0, Duration::from_secs(10)).code(),
        Some(0)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Demo mode audits to <data-dir>/demo.audit.
    assert!(dir.path().join("demo.audit").exists());
    // Demo mode refuses a non-loopback address.
    let out = Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .arg("--snapshot")
        .arg(&snap)
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}
