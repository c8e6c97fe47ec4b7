//! Meta WhatsApp Cloud API: webhook parsing, signature and handshake checks, REST client.
//! Wire format: `shared/reference/whatsapp-gateways.md` §2.

/// Graph error code for a free-form send outside the 24-hour customer-service window.
pub const OUTSIDE_WINDOW_CODE: i64 = 131047;
