//! Helpers for the windows' end-to-end tests: the Linux build's windows on a
//! private X server. The loopback tests (`thin-e2e`) do without the window
//! stack; these need it.
#![forbid(unsafe_code)]

pub mod xvfb;
