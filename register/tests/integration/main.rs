//! The register's integration tests: one binary, one module per concern.

mod common;
mod log;
mod oracle;
mod replica;
mod writes;
