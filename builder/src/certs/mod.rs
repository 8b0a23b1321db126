//! Certificates: [`check`] validates a brand's CA, gateway certificate and key;
//! [`issue`] makes new ones.

pub mod check;
pub mod issue;
