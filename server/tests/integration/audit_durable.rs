//! The audit log's promises over real HTTP: durable before answered (and
//! after a `kill -9`), tamper-evident, fail-closed on a full disk, and
//! entries that say who asked, from where, and what.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn audit_lines(path: &Path) -> Vec<serde_json::Value> {
    // A running (or killed) server's live file ends in preallocated zeros.
    std::fs::read_to_string(path)
        .unwrap()
        .trim_end_matches('\0')
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn run_verify(files: &[&Path]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .arg("audit-verify")
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn a_durable_access_is_on_disk_before_it_is_answered() {
    // Durable is the default.
    let server = TestServer::shared();
    let mut c = server.client();
    let path = server.audit_path();
    let r = c.get(
        &format!("/v1/citizens/{EXAMPLE_ID}?fields=full_name"),
        Some(key::READER),
    );
    assert_eq!(r.status, 200);
    let request_id = r.header("x-request-id").unwrap().to_string();
    assert_eq!(request_id.len(), 16);
    // No waiting: the line is in the file when the answer arrives.
    let lines = audit_lines(&path);
    let line = lines.last().unwrap();
    assert_eq!(line["request"], request_id.as_str());
    assert_eq!(line["source"], "127.0.0.1");
    assert_eq!(line["fields"], serde_json::json!(["full_name"]));
    assert_eq!(line["seq"], 1);
    // A miss is answered after its entry too.
    let r = c.get(&format!("/v1/citizens/{UNKNOWN_ID}"), Some(key::READER));
    assert_eq!(r.status, 404);
    let last = audit_lines(&path).pop().unwrap();
    assert_eq!(last["request"], r.header("x-request-id").unwrap());
    // Identify records a hash prefix of the digest, never the digest.
    let body = format!(r#"{{"modality":"face","template_hash":"{EXAMPLE_FACE}"}}"#);
    let r = c.post("/v1/biometrics:identify", Some(key::BIOMETRIC), &body);
    assert_eq!(r.status, 200);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(EXAMPLE_FACE), "the digest is in the log");
    let last = audit_lines(&path).pop().unwrap();
    assert_eq!(last["digest_sha256_prefix"].as_str().unwrap().len(), 16);
    // Verification records the claimed fields.
    let body = format!(r#"{{"id":"{EXAMPLE_ID}","sex":"female"}}"#);
    assert_eq!(
        c.post("/v1/citizens:verify", Some(key::VERIFIER), &body)
            .status,
        200
    );
    let last = audit_lines(&path).pop().unwrap();
    assert_eq!(last["fields"], serde_json::json!(["id", "sex"]));
    let metrics = c.get("/metrics", None).text();
    assert!(metrics.contains("dancu_audit_failing 0"), "{metrics}");
    let out = run_verify(&[&path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn pipelined_accesses_are_each_on_disk_before_their_answer() {
    // The socket holds hyper's buffered answers until the fsync that covers
    // them (`audit::gate`): whichever answer arrives, its line is on disk.
    let server = TestServer::shared();
    let mut c = server.client();
    let path = server.audit_path();
    let mut burst = Vec::new();
    for i in 0..16 {
        let id = if i % 5 == 4 { UNKNOWN_ID } else { EXAMPLE_ID };
        burst.extend(Client::format(
            "GET",
            &format!("/v1/citizens/{id}"),
            Some(key::READER),
            None,
        ));
    }
    burst.extend(Client::format(
        "POST",
        "/v1/citizens:batchGet",
        Some(key::READER),
        Some(format!(r#"{{"ids":["{EXAMPLE_ID}","{UNKNOWN_ID}"]}}"#).as_bytes()),
    ));
    c.send_raw(&burst);
    for i in 0..17 {
        let r = c.read_response().expect("an answer");
        assert!(matches!(r.status, 200 | 404), "answer {i}: {}", r.text());
        let request_id = r.header("x-request-id").unwrap().to_string();
        let on_disk = audit_lines(&path)
            .iter()
            .any(|l| l["request"] == request_id.as_str());
        assert!(
            on_disk,
            "answer {i} ({request_id}) arrived before its entry"
        );
    }
}

#[test]
fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let send = |server: &TestServer| {
        let mut c = server.client();
        let mut req = Client::format(
            "GET",
            &format!("/v1/citizens/{EXAMPLE_ID}"),
            Some(key::READER),
            None,
        );
        let head_end = req.len() - 2;
        req.splice(
            head_end..head_end,
            b"X-Forwarded-For: 198.51.100.1, 203.0.113.9\r\n"
                .iter()
                .copied(),
        );
        c.send_raw(&req);
        assert_eq!(c.read_response().unwrap().status, 200);
        audit_lines(&server.audit_path()).pop().unwrap()["source"].clone()
    };
    let untrusted = TestServer::shared();
    assert_eq!(send(&untrusted), "127.0.0.1");
    let trusted = TestServer::start(shared_snapshot(), |c| {
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    });
    // The address the proxy appended, not what the client claimed.
    assert_eq!(send(&trusted), "203.0.113.9");
}

/// A `dancu-server` child process on a free port.
struct Child9 {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
}

impl Child9 {
    fn start(dir: &Path, audit: &Path, extra: &[&str], before_exec: Option<fn()>) -> Child9 {
        let stderr = dir.join(format!("stderr-{}", std::process::id()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dancu-server"));
        cmd.arg("--snapshot")
            .arg(shared_snapshot())
            .arg("--keys")
            .arg(write_keys(dir))
            .arg("--audit")
            .arg(audit)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--runtime",
                "multi:2",
                "--no-verify",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if let Some(f) = before_exec {
            // SAFETY: `f` only calls async-signal-safe libc functions
            // (setrlimit, signal) between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    f();
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut addr = None;
        let mut line = String::new();
        while addr.is_none() && out.read_line(&mut line).unwrap() > 0 {
            if let Some(rest) = line
                .trim()
                .strip_prefix("dancu-server listening on http://")
            {
                addr = Some(rest.parse().unwrap());
            }
            line.clear();
        }
        // Keep draining stdout so the child never blocks on it.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = addr.expect("the server printed its address");
        let deadline = Instant::now() + Duration::from_secs(20);
        while once(addr, "GET", "/readyz", None, None).status != 200 {
            assert!(Instant::now() < deadline, "not ready in time");
            std::thread::sleep(Duration::from_millis(10));
        }
        Child9 {
            child,
            addr,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Child9 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Limits the child's file size to 64 KiB and turns SIGXFSZ into EFBIG.
fn small_disk() {
    // SAFETY: plain libc calls with valid arguments.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: 64 << 10,
            rlim_max: libc::RLIM_INFINITY,
        };
        libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
    }
}

#[test]
fn a_full_disk_stops_data_access_loudly_until_reload() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("full.audit");
    let server = Child9::start(dir.path(), &audit, &[], Some(small_disk));
    let mut c = Client::connect(server.addr);
    let path = format!("/v1/citizens/{EXAMPLE_ID}");
    let mut answered = 0;
    let failed = loop {
        let r = c.get(&path, Some(key::READER));
        match r.status {
            200 => answered += 1,
            503 => break r,
            s => panic!("unexpected {s}: {}", r.text()),
        }
        assert!(answered < 10_000, "the file limit never hit");
    };
    assert_eq!(failed.error_code(), "audit_failing");
    assert!(
        failed.text().contains("audit log is failing"),
        "{}",
        failed.text()
    );
    // The withheld answer's connection closes after its 503 (hyper had the
    // answer buffered already: see `audit::gate`); every later access, on
    // any connection, is refused at once, and the cause is everywhere.
    let mut c = Client::connect(server.addr);
    assert_eq!(c.get(&path, Some(key::READER)).status, 503);
    let ready = c.get("/readyz", None);
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["status"], "audit_failing");
    let metrics = c.get("/metrics", None).text();
    assert!(
        metrics.contains("dancu_audit_failing{cause=\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("dancu_audit_failures_total 1"),
        "{metrics}"
    );
    assert!(
        server.stderr().contains("AUDIT LOG FAILING"),
        "{}",
        server.stderr()
    );
    // Every answered access is in the file.
    let lines = std::fs::read_to_string(&audit).unwrap();
    let complete = lines
        .lines()
        .filter(|l| l.contains("\"operation\":\"get\""))
        .count();
    assert!(
        complete >= answered,
        "{complete} lines for {answered} answers"
    );
    // The operator frees space (raises the limit) and reloads.
    let pid = server.child.id() as libc::pid_t;
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid pid and limit; the old limit is not asked for.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_FSIZE, &unlimited, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
    let r = c.post("/v1/admin/reload", Some(key::ADMIN), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.get(&path, Some(key::READER)).status, 200);
    assert_eq!(c.get("/readyz", None).status, 200);
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.contains("\"event\":\"recovered\""), "{text}");
    let out = run_verify(&[&audit]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rounds of: start a durable server, send sequential requests, `kill -9`
/// it at a random moment. Every answered request ID must be in the log, and
/// the chain must verify once a restart has cut the torn tail.
fn crash_rounds(rounds: u32, extra: &[&str]) {
    let (answered, lost) = crash_rounds_with(rounds, extra);
    assert!(
        lost.is_empty(),
        "{} of {answered} answered accesses not in the log: {lost:?}",
        lost.len()
    );
    eprintln!("{rounds} kill -9 rounds: {answered} answered accesses, all in the log");
}

/// [`crash_rounds`] with extra server flags; returns how many accesses were
/// answered and the request IDs of those missing from the log.
/// `AUDIT_CRASH_ROTATE_BYTES=N` rotates the log every N bytes, so that the
/// kills also land in rotations (`server/tests/audit-crash.sh` runs both).
fn crash_rounds_with(rounds: u32, extra: &[&str]) -> (usize, Vec<String>) {
    let rotate = std::env::var("AUDIT_CRASH_ROTATE_BYTES")
        .ok()
        .filter(|b| !b.is_empty());
    let mut extra = extra.to_vec();
    if let Some(bytes) = &rotate {
        extra.extend(["--audit-rotate-bytes", bytes.as_str()]);
    }
    let extra = extra.as_slice();
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("crash.audit");
    let mut answered: Vec<String> = Vec::new();
    let mut seed = audit_seed();
    for round in 0..rounds {
        let mut server = Child9::start(dir.path(), &audit, extra, None);
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let kill_after = Duration::from_millis(20 + (seed >> 33) % 300);
        let addr = server.addr;
        let client = std::thread::spawn(move || {
            let mut ids = Vec::new();
            let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
                return ids;
            };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            for i in 0u64.. {
                let id = citizen(1 + i % 50).id.to_string();
                let req = Client::format(
                    "GET",
                    &format!("/v1/citizens/{id}"),
                    Some(key::READER),
                    None,
                );
                if stream.write_all(&req).is_err() {
                    return ids;
                }
                match read_request_id(&mut reader) {
                    Some(rid) => ids.push(rid),
                    None => return ids,
                }
            }
            ids
        });
        std::thread::sleep(kill_after);
        // SIGKILL: no flush, no shutdown.
        server.child.kill().unwrap();
        server.child.wait().unwrap();
        let ids = client.join().unwrap();
        assert!(!ids.is_empty() || round > 0 || kill_after < Duration::from_millis(30));
        answered.extend(ids);
    }
    // A restart cuts any torn tail (and records the cut) and completes an
    // interrupted rotation; then verify.
    drop(Child9::start(dir.path(), &audit, extra, None));
    let out = run_verify(&[&audit]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = dancu_server::audit::index::log_files(&audit).unwrap();
    if rotate.is_some() {
        eprintln!("{} files after the rounds", files.len());
    }
    let logged: std::collections::HashSet<String> = files
        .iter()
        .flat_map(|file| audit_lines(file))
        .filter_map(|l| l["request"].as_str().map(str::to_string))
        .collect();
    let lost: Vec<String> = answered
        .iter()
        .filter(|id| !logged.contains(*id))
        .cloned()
        .collect();
    (answered.len(), lost)
}

fn read_request_id(reader: &mut BufReader<std::net::TcpStream>) -> Option<String> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut request_id = None;
    let mut len = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (n, v) = h.split_once(':')?;
        if n.eq_ignore_ascii_case("x-request-id") {
            request_id = Some(v.trim().to_string());
        }
        if n.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    std::io::Read::read_exact(reader, &mut body).ok()?;
    // Only a complete response counts as received.
    request_id
}

fn audit_seed() -> u64 {
    std::env::var("AUDIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

#[test]
fn kill_dash_9_loses_no_answered_access_3_rounds() {
    crash_rounds(3, &[]);
}

/// The short version of the proof with a rotation every 4 KiB (about every
/// dozen lines), so that the kills also land between a rotation's switch to
/// the spare next file and the rotator's renames.
#[test]
fn kill_dash_9_amid_rotations_loses_no_answered_access_3_rounds() {
    crash_rounds(3, &["--audit-rotate-bytes", "4096"]);
}

/// The 20-round proof: `cargo test -p dancu-server --test integration --
/// --ignored kill_dash_9` (or `server/tests/audit-crash.sh`).
#[test]
#[ignore]
fn kill_dash_9_loses_no_answered_access_20_rounds() {
    crash_rounds(20, &[]);
}

/// Buffered mode's loss window, measured: the same rounds, counting the
/// answered accesses a `kill -9` lost (`--nocapture` prints the count).
#[test]
#[ignore]
fn buffered_loss_on_kill_dash_9_is_measured() {
    let (answered, lost) = crash_rounds_with(20, &["--audit-durability", "buffered"]);
    eprintln!(
        "buffered, 20 kill -9 rounds: {} of {answered} answered accesses lost",
        lost.len()
    );
}
