//! The engine's integration tests: one binary, one module per concern.

mod common;
mod corruption;
mod exercise;
mod lookups;
mod matching;
mod next_generation;
mod owned;
mod robustness;
