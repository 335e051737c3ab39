//! Criterion benchmarks of the engine's hot paths on a synthetic snapshot
//! (built once into the system temp directory).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dancu_benches::*;
use dancu_engine::{fold, names_match, Memory, Snapshot};

/// 200 k citizens under `cargo bench`; 5 k when the benches run once as
/// tests (`cargo test --benches`, as CI does), where only correctness counts.
/// Verified, as the server serves it (reads of a verified text heap skip
/// UTF-8 validation).
fn snapshot() -> Snapshot {
    let snap = open_or_build();
    snap.verify_checksums()
        .expect("the bench snapshot verifies");
    snap
}

fn open_or_build() -> Snapshot {
    let n: u64 = if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        5_000
    };
    let path = std::env::temp_dir().join(format!("dancu-criterion-{n}.snap"));
    // A cache left by an older build (another format version) is rebuilt.
    if let Ok(snap) = Snapshot::open_file(&path, Memory::Map) {
        return snap;
    }
    dancu_data::build_synthetic(&path, n, 7, false).expect("build the bench snapshot");
    Snapshot::open_file(&path, Memory::Map).expect("open the bench snapshot")
}

fn lookups(c: &mut Criterion) {
    let snap = snapshot();
    let ids = sample_ids(&snap, 100_000, 1);
    assert!(ids.len() > 2000, "the bench snapshot has records");
    let mut group = c.benchmark_group("lookup");
    let mut i = 0;
    group.throughput(Throughput::Elements(1));
    group.bench_function("single_get", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            snap.get(ids[i]).map(|v| v.date_of_birth().day())
        })
    });
    group.throughput(Throughput::Elements(1000));
    let mut out = Vec::with_capacity(1000);
    let mut start = 0;
    group.bench_function("get_many_1000", |b| {
        b.iter(|| {
            start = (start + 1000) % (ids.len() - 1000);
            snap.get_many(&ids[start..start + 1000], &mut out);
            out.len()
        })
    });
    group.finish();

    let claims = sample_claims(&snap, 10_000, 2);
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    let mut k = 0;
    group.bench_function("name_dob_sex", |b| {
        b.iter(|| {
            k = (k + 1) % claims.len();
            snap.verify_claims(&claims[k]).map(|v| v.matched())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("json");
    let view = snap.get(ids[0]).expect("sampled IDs exist");
    // One buffer, reused as a server reuses its response buffers: a fresh
    // buffer per iteration would measure first writes to cold memory.
    let mut out = Vec::with_capacity(2048);
    group.bench_function("write_citizen_all_fields", |b| {
        b.iter(|| {
            out.clear();
            dancu_engine::write_citizen_json(&view, dancu_engine::FieldSet::ALL, &mut out);
            out.len()
        })
    });
    // The engine's half of a whole-record batchGet: look up 1000 IDs, then
    // write each record, prefetching the strings of the record 4 ahead (as
    // the server does).
    group.throughput(Throughput::Elements(1000));
    let mut views = Vec::with_capacity(1000);
    let mut batch_out = Vec::with_capacity(1 << 21);
    let mut start = 0;
    group.bench_function("batch_1000_all_fields", |b| {
        b.iter(|| {
            start = (start + 1000) % (ids.len() - 1000);
            let all = dancu_engine::FieldSet::ALL;
            write_batch_json(
                &snap,
                &ids[start..start + 1000],
                all,
                4,
                &mut views,
                &mut batch_out,
            )
        })
    });
    group.finish();
}

fn folding(c: &mut Criterion) {
    let mut group = c.benchmark_group("fold");
    let mut out = String::new();
    group.bench_function("fold_into_vietnamese", |b| {
        b.iter(|| dancu_engine::fold_into("Nguyễn Thị Ánh Tuyết", &mut out))
    });
    group.bench_function("names_match_ascii", |b| {
        b.iter(|| names_match("NGUYEN VAN AN", "nguyen van an"))
    });
    group.bench_function("names_match_mixed", |b| {
        b.iter(|| names_match("NGUYEN THI ANH TUYET", "Nguyễn Thị Ánh Tuyết"))
    });
    group.bench_function("fold_alloc", |b| b.iter(|| fold("Đặng Đình Đức")));
    group.finish();
}

criterion_group!(benches, lookups, folding);
criterion_main!(benches);
