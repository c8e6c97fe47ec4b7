//! Pure types and rules: no I/O.

pub(crate) mod account;
pub(crate) mod conversation;
pub(crate) mod events;
pub(crate) mod knowledge;
pub(crate) mod knowledge_import;
pub(crate) mod labels;
pub(crate) mod mcp;
pub(crate) mod message;
pub(crate) mod phone;
pub(crate) mod plans;
pub(crate) mod policy;
pub(crate) mod privacy;
pub(crate) mod retention;
pub(crate) mod review;
