//! What the user sees of the apps: the string tables and every text, the
//! command line in the user's language, the wording of every error, the
//! viewer launch and the windows (egui).
#![forbid(unsafe_code)]

pub mod cli;
pub mod cli_help;
pub mod gui;
pub mod strings;
pub mod viewer;
pub mod wording;
