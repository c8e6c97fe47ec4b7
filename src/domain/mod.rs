//! Pure types and rules: no I/O.

pub mod account;
pub mod conversation;
pub mod events;
pub mod knowledge;
pub mod knowledge_import;
pub mod labels;
pub mod mcp;
pub mod message;
pub mod phone;
pub mod plans;
pub mod policy;
pub mod privacy;
pub mod retention;
pub mod review;
