//! `builder`: one brand manifest in, branded Windows installers and a matching
//! Linux gateway bundle out.
//!
//! * [`manifest`]: `brand.toml`, raw and resolved;
//! * [`check`]: every problem of a brand at once; [`brand_choice`]: which brand without `--brand`;
//! * [`certs`]: certificate checks and issuance;
//! * [`new_brand`], [`ca`], [`import`], [`ci`]: the `new`, `ca`, `import` and `ci` commands;
//! * prerequisites: [`doctor`];
//! * [`build`]: compile, package, sign, checksum.
#![forbid(unsafe_code)]

pub mod artwork;
pub mod brand_choice;
pub mod build;
pub mod ca;
pub mod certs;
pub mod check;
pub mod ci;
pub mod doctor;
pub mod error;
pub mod fsutil;
pub mod import;
pub mod manifest;
pub mod new_brand;
pub mod paths;
pub mod render;
pub mod strtables;

pub use error::{Error, Problem, Problems, Result};
