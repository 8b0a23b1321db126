//! The loopback end-to-end tests in one binary (one link, shared helpers in
//! `thin_e2e`): the gateway, office PCs and home PCs on 127.0.0.1, in-process
//! through the library entry points or as the real binaries. Run with
//! `cargo test --workspace --test loopback` (the name `e2e` is the builder's
//! packaging tests, which take much longer).

mod admin;
mod bare_records;
mod bounds;
mod cli;
mod cluster;
mod desktop;
mod devices;
mod e2e_attacks;
mod gateway_files;
mod operations;
mod otp;
mod otp_abuse;
mod policy;
mod proxy_e2e;
mod registration;
mod relay;
mod scale;
mod service;
mod wake;
