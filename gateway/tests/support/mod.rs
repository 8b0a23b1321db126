//! Helpers shared by the gateway's integration tests.
#![allow(dead_code)]

pub mod etcd_server;
