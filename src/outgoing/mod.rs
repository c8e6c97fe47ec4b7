//! Outgoing webhooks (issue 21): a tenant subscribes HTTPS endpoints to events, and each
//! event is POSTed to them as JSON signed per the Standard Webhooks specification.
//!
//! - **Emitting** happens where the thing happens, inside its transaction:
//!   `db::outgoing::emit` writes one `webhook_deliveries` row per subscribed endpoint plus a
//!   `webhook_deliver` job, in one statement (one index probe when the tenant has none).
//!   The callers: `messaging::ingest::apply` (`message.received`), `messaging::send::run`
//!   (`message.sent` / `message.failed`), `review::draft` (`draft.created`),
//!   `review::decide::approve` (`draft.approved`), the inbox's assign route
//!   (`conversation.assigned`), `privacy::open_request` / `keyword_request` (`dsr.created`)
//!   and `mail::alerts` (`dsr.due`, once per request).
//! - **Payloads** carry ids and minimal data (`type`, `timestamp`, `data` with the tenant
//!   slug, conversation, message, status). Message text is added at delivery time, opened
//!   from the sealed message, only for endpoints whose tenant opted in; each such delivery
//!   records the endpoint as a recipient of the contact's data (`data_recipients`, kind
//!   `webhook`), so the processing record and erasure requests name it.
//! - **Delivery** (`messaging::webhook_delivery::run`): the SSRF guard (`mcp::guard`) vets the URL again and pins
//!   the addresses; POST with a 10 s cap; 2xx is done; anything else retries on
//!   [`RETRY_SCHEDULE`] (about a day). A delivery that used up the schedule disables
//!   its endpoint (`disabled_reason = 'failing'`), which the portal shows as an alert.

//!
//! This module holds the pure parts (signing, the schedule, the body, event parsing) and
//! depends on nothing of the application's; the I/O lives in `messaging::webhook_delivery`
//! and `db::outgoing`, so the module graph gains no cycle.

pub(crate) mod signing;

use serde_json::{Value, json};
use time::{Duration, OffsetDateTime, format_description::well_known::Rfc3339};
use url::Url;

use crate::domain::events;

/// When to try again after the n-th failed attempt (the Standard Webhooks recommendation:
/// immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h). After the eighth failure,
/// about 28 hours after the event, the delivery fails and its endpoint is disabled.
pub(crate) const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::seconds(5),
    Duration::minutes(5),
    Duration::minutes(30),
    Duration::hours(2),
    Duration::hours(5),
    Duration::hours(10),
    Duration::hours(10),
];

/// When to retry after a failed attempt, given how many attempts were made before it;
/// `None` once the schedule is used up.
pub(crate) fn retry_at(previous_attempts: i32, now: OffsetDateTime) -> Option<OffsetDateTime> {
    usize::try_from(previous_attempts)
        .ok()
        .and_then(|n| RETRY_SCHEDULE.get(n))
        .map(|wait| now + *wait)
}

/// The body as sent (and signed): `{"type", "timestamp", "data"}`.
pub(crate) fn body(event_type: &str, occurred_at: OffsetDateTime, data: &Value) -> Vec<u8> {
    let body = json!({
        "type": event_type,
        "timestamp": occurred_at.format(&Rfc3339).unwrap_or_default(),
        "data": data,
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The events picked on the form: known names only, each once, in the portal's order.
pub(crate) fn parse_events(picked: &[String]) -> Result<Vec<String>, &'static str> {
    if let Some(bad) = picked.iter().find(|e| !events::is_event(e)) {
        tracing::warn!(event = %bad.chars().take(60).collect::<String>(), "unknown webhook event refused");
        return Err("webhooks.events.invalid");
    }
    let out: Vec<String> = events::ALL
        .iter()
        .filter(|e| picked.iter().any(|p| p == *e))
        .map(|e| (*e).to_owned())
        .collect();
    if out.is_empty() {
        return Err("webhooks.events.none");
    }
    Ok(out)
}

/// Scheme, host and path of an endpoint URL: a query string may carry a token.
pub(crate) fn display_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => String::new(),
    }
}

/// The name an endpoint goes by as a recipient of personal data: its host.
pub(crate) fn recipient_name(raw: &str) -> String {
    Url::parse(raw)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "webhook".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_runs_for_about_a_day_then_stops() {
        let t0 = time::macros::datetime!(2026-03-16 09:00 UTC);
        assert_eq!(retry_at(0, t0), Some(t0 + Duration::seconds(5)));
        assert_eq!(retry_at(6, t0), Some(t0 + Duration::hours(10)));
        assert_eq!(retry_at(7, t0), None);
        let total: Duration = RETRY_SCHEDULE.iter().copied().sum();
        assert!(total > Duration::hours(24) && total < Duration::hours(30));
    }

    #[test]
    fn events_are_known_names_in_the_portals_order() {
        let picked = vec!["dsr.due".to_owned(), "message.received".to_owned()];
        assert_eq!(
            parse_events(&picked).unwrap(),
            ["message.received", "dsr.due"]
        );
        assert_eq!(parse_events(&[]), Err("webhooks.events.none"));
        assert_eq!(
            parse_events(&["message.deleted".to_owned()]),
            Err("webhooks.events.invalid")
        );
    }

    #[test]
    fn urls_shown_and_named_without_their_query() {
        assert_eq!(
            display_url("https://hooks.example.com/in?token=secret"),
            "https://hooks.example.com/in"
        );
        assert_eq!(
            recipient_name("https://hooks.example.com/in?token=x"),
            "hooks.example.com"
        );
    }
}
