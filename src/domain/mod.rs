//! Pure types and rules: no I/O.

pub mod plans;
pub mod policy;
