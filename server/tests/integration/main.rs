//! Integration tests of dancu-server over real HTTP on loopback.

mod audit;
mod audit_durable;
mod auth;
mod banner;
mod crash;
mod errors;
mod follower;
mod follower_tls;
mod hardening;
mod matching;
mod openapi;
mod overload;
mod qr;
mod register;
mod reload;
mod routes;
mod shutdown;
mod statistics;
mod support;
mod verify_policy;
