//! The binary: arguments, exit codes, and the last line of stdout.

use std::process::Command;

use crate::common::TestServer;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dancu-loadgen"))
}

#[test]
fn json_summary_is_the_last_line_of_stdout() {
    let server = TestServer::start(None);
    let out = loadgen()
        .args([
            "--target",
            &server.url,
            "--synthetic-keys",
            "100",
            "--op",
            "verify",
        ])
        .args(["--max", "--connections", "4", "--duration", "1s", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("closed model"), "{stdout}");
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["mode"], "closed");
    assert!(v["requests"].as_u64().unwrap() > 0);
    assert_eq!(v["errors"], 0);
}

#[test]
fn a_profile_run_and_a_merge() {
    let server = TestServer::start(None);
    let dir = tempfile::tempdir().unwrap();
    let profile = concat!(env!("CARGO_MANIFEST_DIR"), "/profiles/steady.toml");
    for name in ["a", "b"] {
        let out = loadgen()
            .args([
                "--target",
                &server.url,
                "--synthetic-keys",
                "1000",
                "--profile",
                profile,
            ])
            .args(["--scale", "0.1", "--duration", "1s", "-q", "--report"])
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = loadgen()
        .arg("merge")
        .arg(dir.path().join("a/report.json"))
        .arg(dir.path().join("b/report.json"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // Two processes at 230/s for one second each.
    let requests = v["requests"].as_u64().unwrap();
    assert!((400..=520).contains(&requests), "{requests}");
    assert!(v["operations"].as_object().unwrap().len() >= 5, "{stdout}");
}

#[test]
fn mistakes_are_reported_with_exit_code_2() {
    let out = loadgen()
        .args(["--target", "http://127.0.0.1:9", "--synthetic-keys", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--rate"),
        "says what is missing"
    );

    let out = loadgen()
        .args([
            "--target",
            "http://127.0.0.1:9",
            "--op",
            "legacy",
            "--rate",
            "10",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("legacy keys"));

    let out = loadgen()
        .args([
            "--target",
            "ftp://x",
            "--synthetic-keys",
            "10",
            "--rate",
            "10",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
