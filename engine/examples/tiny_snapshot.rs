//! Builds a snapshot of three hand-written citizens and looks them up: the
//! engine API end to end in one page. Also writes the fuzzer's seed.
//!
//! `cargo run -p dancu-engine --example tiny_snapshot -- /tmp/tiny.snap`

use dancu_engine::*;

fn citizen(json: &str) -> Citizen {
    serde_json::from_str(json).expect("the examples are valid records")
}

fn main() -> Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tiny.snap".into());
    let people = [
        citizen(
            r#"{"id":"079089012345","legacy_id":"023456789","full_name":"Nguyễn Văn An",
            "date_of_birth":"1989-03-14","sex":"male","birth_registration_place":"Quận 1, Hồ Chí Minh",
            "hometown":"Xã Yên Phụ, Huyện Yên Phong, Bắc Ninh","ethnicity":"Kinh","religion":"no_religion",
            "nationality":"VN","marital_status":"married","permanent_residence":"12 Lê Lợi, Phường Bến Nghé, Quận 1, Hồ Chí Minh",
            "temporary_residence":null,"current_residence":"12 Lê Lợi, Phường Bến Nghé, Quận 1, Hồ Chí Minh",
            "blood_type":"O+","father":{"full_name":"Nguyễn Văn Bình","id":null,"nationality":"VN"},
            "mother":{"full_name":"Trần Thị Cúc","id":null,"nationality":"VN"},
            "spouse":{"full_name":"Lê Thị Dung","id":"079191000777","nationality":"VN"},
            "representative":null,
            "household":{"head_id":"079089012345","head_name":"Nguyễn Văn An","relationship":"head"},
            "date_of_death":null,
            "biometric_templates":{"face":"000102030405060708090a0b0c0d0e0f","fingerprint":"f0e0d0c0b0a090807060504030201000"}}"#,
        ),
        citizen(
            r#"{"id":"079191000777","legacy_id":null,"full_name":"Lê Thị Dung","date_of_birth":"1991-11-02",
            "sex":"female","birth_registration_place":null,"hometown":null,"ethnicity":"Kinh","religion":"catholic",
            "nationality":"VN","marital_status":"married","permanent_residence":"12 Lê Lợi, Phường Bến Nghé, Quận 1, Hồ Chí Minh",
            "temporary_residence":null,"current_residence":null,"blood_type":null,"father":null,"mother":null,
            "spouse":{"full_name":"Nguyễn Văn An","id":"079089012345","nationality":"VN"},"representative":null,
            "household":{"head_id":"079089012345","head_name":"Nguyễn Văn An","relationship":"spouse"},
            "date_of_death":null}"#,
        ),
        citizen(
            r#"{"id":"001315000001","legacy_id":null,"full_name":"Nguyễn Minh Châu","date_of_birth":"2015-06-01",
            "sex":"female","birth_registration_place":"Phường Hàng Bạc, Quận Hoàn Kiếm, Hà Nội","hometown":null,
            "ethnicity":"Kinh","religion":"no_religion","nationality":"VN","marital_status":"single",
            "permanent_residence":null,"temporary_residence":null,"current_residence":null,"blood_type":null,
            "father":null,"mother":null,"spouse":null,
            "representative":{"full_name":"Nguyễn Văn An","id":"079089012345","nationality":"VN"},
            "household":null,"date_of_death":null}"#,
        ),
    ];
    let summary = build_snapshot(
        &path,
        BuildOptions {
            generation: 1,
            ..Default::default()
        },
        &people,
    )?;
    println!(
        "wrote {} records, {} bytes to {}",
        summary.records, summary.file_bytes, path
    );

    let snap = Snapshot::open_file(&path, Memory::Map)?;
    snap.verify_checksums()?;
    let an = snap
        .get(PersonalId::parse("079089012345").expect("valid"))
        .expect("present");
    let mut json = Vec::new();
    write_citizen_json(&an, FieldSet::BASIC, &mut json);
    println!("basic view: {}", String::from_utf8_lossy(&json));
    let claims: Claims = serde_json::from_str(
        r#"{"id":"079089012345","full_name":"NGUYEN VAN AN","date_of_birth":"1989-03-14"}"#,
    )
    .expect("valid claims");
    let v = snap.verify_claims(&claims).expect("present");
    json.clear();
    write_verification_json(&v, &mut json);
    println!("verify: {}", String::from_utf8_lossy(&json));
    let by_legacy = snap
        .get_legacy(LegacyId::parse("023456789").expect("valid"))
        .map(|v| v.id());
    println!("legacy 023456789 -> {by_legacy:?}");
    Ok(())
}
