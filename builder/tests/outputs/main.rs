//! End to end, the outputs: fresh brands made with `builder new` and built with `builder
//! build` once ([`built`]), then their Linux bundles ([`linux`]) and their
//! Windows installers and apps, also under Wine ([`windows`]). One test binary,
//! so the one real build is shared by every test.

#[path = "../common/mod.rs"]
mod common;

mod built;
mod linux;
mod windows;
