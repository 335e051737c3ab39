//! Integration tests of dancu-server over real HTTP on loopback.

mod audit;
mod audit_durable;
mod auth;
mod banner;
mod errors;
mod openapi;
mod reload;
mod routes;
mod shutdown;
mod support;
mod verify_policy;
