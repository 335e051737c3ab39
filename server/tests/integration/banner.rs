//! The start banner: sample IDs only in demo mode, and nothing personal
//! (no names, no dates of birth) even there.

use crate::support::*;

#[test]
fn with_keys_the_banner_names_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("register.snap");
    build(&snap, 1, 100);
    let keys = write_keys(dir.path());
    let audit = dir.path().join("bin.audit");
    let (_child, banner) = start_binary(
        &snap,
        &[
            "--keys".as_ref(),
            keys.as_os_str(),
            "--audit".as_ref(),
            audit.as_os_str(),
        ],
    );
    assert!(!banner.contains("sample"), "{banner}");
    let has_twelve_digits = banner
        .split(|c: char| !c.is_ascii_digit())
        .any(|run| run.len() == 12);
    assert!(!has_twelve_digits, "{banner}");
}

#[test]
fn the_demo_banner_shows_ids_but_no_names_or_dates_of_birth() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("register.snap");
    build(&snap, 1, 100);
    let (_child, banner) = start_binary(&snap, &["--data-dir".as_ref(), dir.path().as_os_str()]);
    let ids: Vec<&str> = banner
        .lines()
        .find_map(|l| l.strip_prefix("sample IDs: "))
        .unwrap_or_else(|| panic!("no sample IDs: {banner}"))
        .split(' ')
        .collect();
    assert_eq!(ids.len(), 3, "{banner}");
    let mut c = Client::connect(listening_addr(&banner));
    for id in ids {
        let r = c.get(&format!("/v1/citizens/{id}"), Some(dancu_server::DEMO_KEY));
        assert_eq!(r.status, 200, "{}", r.text());
        let record = r.json();
        let name = record["full_name"].as_str().unwrap();
        let folded = dancu_engine::fold(name).to_uppercase();
        let born = record["date_of_birth"].as_str().unwrap();
        for secret in [name, folded.as_str(), born] {
            assert!(!banner.contains(secret), "{secret:?} in {banner}");
        }
    }
}
