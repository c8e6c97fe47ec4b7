//! WhatsApp traffic: durable ingestion of gateway events, media, and sending.

pub mod channel;
pub mod extra;
pub mod group_commit;
pub mod groups;
pub mod ingest;
pub mod media;
pub mod send;
pub mod view;
pub mod webhook_delivery;

/// Job kinds of this area.
pub const SEND_MESSAGE: &str = "send_message";
pub const FETCH_MEDIA: &str = "fetch_media";
pub const GROUP_SUBJECT: &str = "group_subject";
