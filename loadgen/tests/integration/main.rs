//! Integration tests of dancu-loadgen: one binary, one module per concern.

mod cli;
mod common;
mod coordinated_omission;
mod dancu;
mod event_loop;
mod floor;
mod histograms;
mod keep_alive;
mod pool;
mod profiles;
mod qr_match;
mod rate_curves;
mod reports;
mod targets;
mod writes;
mod zipf;
