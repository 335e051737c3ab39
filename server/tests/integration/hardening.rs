//! Issue 11's smaller findings, each over real HTTP: `--no-audit` only on
//! loopback, `/v1/snapshot` without the server's directories,
//! `Cache-Control: no-store` on personal data, keys revoked without a
//! restart, and the per-address share of the connection cap.

use std::process::Command;
use std::time::Duration;

use crate::support::*;

#[test]
fn no_audit_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let keys = write_keys(dir.path());
    let mut config = dancu_server::Config::new(shared_snapshot());
    config.listen = "0.0.0.0:0".parse().unwrap();
    config.keys = Some(keys.clone());
    config.audit = None;
    let err = dancu_server::Server::start(config).unwrap_err();
    assert!(
        matches!(err, dancu_server::Error::NoAuditNotLoopback { .. }),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_dancu-server"))
        .arg("--snapshot")
        .arg(shared_snapshot())
        .arg("--keys")
        .arg(&keys)
        .args(["--no-audit", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--no-audit") && stderr.contains("loopback"),
        "{stderr}"
    );
    // On loopback (benchmarks) it still serves.
    let server = TestServer::start(shared_snapshot(), |c| c.audit = None);
    let r = server.client().get("/healthz", None);
    assert_eq!(r.status, 200);
}

#[test]
fn snapshot_info_names_the_file_not_its_directory() {
    let server = TestServer::shared();
    let r = once(server.addr, "GET", "/v1/snapshot", Some(key::READER), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["file"], "shared.snap");
    let dir = shared_snapshot()
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(!r.text().contains(&dir), "{}", r.text());
}

#[test]
fn personal_data_is_never_stored_by_caches() {
    let server = TestServer::shared();
    let mut c = server.client();
    let verify = format!(r#"{{"id":"{EXAMPLE_ID}","sex":"male"}}"#);
    let identify = format!(r#"{{"modality":"face","template_hash":"{EXAMPLE_FACE}"}}"#);
    let personal: [(&str, String, Option<String>); 8] = [
        ("GET", format!("/v1/citizens/{EXAMPLE_ID}"), None),
        ("GET", format!("/v1/citizens/{UNKNOWN_ID}"), None),
        ("GET", format!("/v1/legacy-ids/{EXAMPLE_LEGACY}"), None),
        (
            "POST",
            "/v1/citizens:batchGet".into(),
            Some(format!(r#"{{"ids":["{EXAMPLE_ID}"]}}"#)),
        ),
        ("POST", "/v1/citizens:verify".into(), Some(verify.clone())),
        (
            "POST",
            "/v1/citizens:batchVerify".into(),
            Some(format!(r#"{{"requests":[{verify}]}}"#)),
        ),
        ("POST", "/v1/biometrics:identify".into(), Some(identify)),
        ("POST", "/v1/citizens:verify".into(), Some("{".into())),
    ];
    for (method, path, body) in &personal {
        let r = c.request(
            method,
            path,
            Some(key::ALL),
            body.as_deref().map(str::as_bytes),
        );
        assert!(r.status < 500, "{method} {path}: {}", r.text());
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{method} {path}"
        );
    }
    assert_eq!(c.get("/healthz", None).header("cache-control"), None);
}

#[test]
fn admin_reload_rereads_keys_and_revokes_on_open_connections() {
    let server = TestServer::shared();
    let dir = server.dir.path();
    let mut reader = server.client();
    let mut admin = server.client();
    let path = format!("/v1/citizens/{EXAMPLE_ID}");
    assert_eq!(reader.get(&path, Some(key::READER)).status, 200);
    rewrite_keys_without(dir, &["reader"]);
    let r = admin.post("/v1/admin/reload", Some(key::ADMIN), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["keys_reloaded"], true);
    // The same keep-alive connection, which had authenticated with it.
    let r = reader.get(&path, Some(key::READER));
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        once(server.addr, "GET", &path, Some(key::READER), None).status,
        401
    );
    // Everyone else is unaffected.
    assert_eq!(reader.get(&path, Some(key::ALL)).status, 200);
    // A new client name needs a restart: the reload fails, the keys stay.
    let keys = dir.join("keys.toml");
    let text = std::fs::read_to_string(&keys).unwrap();
    std::fs::write(
        &keys,
        text.replace("name = \"basic\"", "name = \"newcomer\""),
    )
    .unwrap();
    let r = admin.post("/v1/admin/reload", Some(key::ADMIN), "");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(r.text().contains("newcomer"), "{}", r.text());
    assert_eq!(reader.get(&path, Some(key::BASIC)).status, 200);
    assert_eq!(reader.get(&path, Some(key::READER)).status, 401);
}

#[test]
fn one_address_gets_a_share_of_the_connection_cap_until_it_presents_a_key() {
    // A cap of 20: one address may hold 2 connections without a key.
    let server = TestServer::start(shared_snapshot(), |c| c.limits.max_connections = 20);
    let mut first = server.client();
    let mut second = server.client();
    let mut third = server.client();
    assert!(
        third.is_closed_within(Duration::from_secs(10)),
        "a third keyless connection from one address was kept"
    );
    assert_eq!(second.get("/healthz", None).status, 200);
    // A key takes a connection out of its address's share.
    let r = first.get(&format!("/v1/citizens/{EXAMPLE_ID}"), Some(key::READER));
    assert_eq!(r.status, 200);
    let mut fourth = server.client();
    assert_eq!(fourth.get("/healthz", None).status, 200);
    let metrics = fourth.get("/metrics", None).text();
    assert!(
        metrics.contains("dancu_connections_refused_per_address_total 1"),
        "{metrics}"
    );
}
