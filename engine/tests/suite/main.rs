//! The engine's integration tests: one binary, one module per concern.

mod common;
mod corruption;
mod lookups;
mod robustness;
