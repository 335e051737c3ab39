//! Integration tests of `dancu-data`, one test binary: the library's build,
//! import and export paths, and the command line as a user runs it.

mod cli;
mod common;
mod import;
mod matching;
mod roundtrip;
