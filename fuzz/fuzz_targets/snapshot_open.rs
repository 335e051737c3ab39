//! Any bytes given to `Snapshot::open` + `verify` + every lookup give an
//! error or an answer, never a crash. Each input is tried as it is and with
//! its header checksum rewritten, so mutations reach past the header. Run
//! from the repository root:
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run snapshot_open fuzz/seeds -- -max_total_time=600`
#![no_main]

#[path = "../../engine/tests/suite/exercise.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    exercise::exercise(data);
    let mut resealed = data.to_vec();
    exercise::reseal(&mut resealed);
    exercise::exercise(&resealed);
});
