//! What a message carries beside its body, sealed as one JSON document
//! (`messages.extra_sealed`, AAD `messages/extra/<id>`): the id of a chosen button or list
//! row and a form's answers, an order's items, the ad that brought the customer, and what
//! came later — reactions and poll votes. Pure functions: sealing is the caller's.

use serde_json::{Map, Value, json};

use crate::gateway::{InboundMessage, MessageKind};

/// The extra a newly received message starts with, if any.
pub(crate) fn for_message(msg: &InboundMessage) -> Option<Value> {
    let mut out = Map::new();
    match &msg.kind {
        MessageKind::ButtonReply {
            id,
            description,
            payload,
            ..
        } => {
            out.insert(
                "reply".into(),
                json!({ "id": id, "description": description, "payload": payload }),
            );
        }
        MessageKind::Order {
            catalog_id, items, ..
        } => {
            let items: Vec<Value> = items
                .iter()
                .map(|i| {
                    json!({ "product": i.product_retailer_id, "quantity": i.quantity,
                            "price": i.item_price, "currency": i.currency })
                })
                .collect();
            out.insert(
                "order".into(),
                json!({ "catalog_id": catalog_id, "items": items }),
            );
        }
        MessageKind::System { event, .. } => {
            out.insert("system".into(), json!({ "event": event }));
        }
        _ => {}
    }
    if let Some(r) = &msg.referral {
        out.insert(
            "referral".into(),
            json!({ "headline": r.headline, "body": r.body, "source_type": r.source_type,
                    "source_url": r.source_url, "source_id": r.source_id }),
        );
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

fn list<'a>(extra: &'a mut Value, key: &str) -> Option<&'a mut Vec<Value>> {
    if !extra.is_object() {
        *extra = Value::Object(Map::new());
    }
    let obj = extra.as_object_mut()?;
    let entry = obj.entry(key).or_insert_with(|| Value::Array(Vec::new()));
    if !entry.is_array() {
        *entry = Value::Array(Vec::new());
    }
    entry.as_array_mut()
}

/// Sets (or with `None` removes) `by`'s reaction. Returns whether anything changed.
pub(crate) fn react(extra: &mut Value, by: &str, name: Option<&str>, emoji: Option<&str>) -> bool {
    let Some(reactions) = list(extra, "reactions") else {
        return false;
    };
    let before = reactions.clone();
    reactions.retain(|r| r.get("by").and_then(Value::as_str) != Some(by));
    if let Some(e) = emoji {
        reactions.push(json!({ "by": by, "name": name, "emoji": e }));
    }
    *reactions != before
}

/// Records that `by` voted in this poll (the vote itself is encrypted by WhatsApp).
pub(crate) fn vote(extra: &mut Value, by: &str, name: Option<&str>) -> bool {
    let Some(votes) = list(extra, "poll_votes") else {
        return false;
    };
    if votes
        .iter()
        .any(|v| v.get("by").and_then(Value::as_str) == Some(by))
    {
        return false;
    }
    votes.push(json!({ "by": by, "name": name }));
    true
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().filter(|s| !s.is_empty())
}

fn number(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_f64).map(|n| {
        if n.fract() == 0.0 {
            format!("{n:.0}")
        } else {
            format!("{n}")
        }
    })
}

/// The order's lines, as "3 × HAMBURGER (30 ILS)".
fn order_lines(extra: &Value) -> Vec<String> {
    extra
        .get("order")
        .and_then(|o| o.get("items"))
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    let qty = number(i, "quantity").unwrap_or_else(|| "1".into());
                    let product = s(i, &["product"]).unwrap_or("?");
                    match (number(i, "price"), s(i, &["currency"])) {
                        (Some(p), Some(c)) => format!("{qty} × {product} ({p} {c})"),
                        (Some(p), None) => format!("{qty} × {product} ({p})"),
                        _ => format!("{qty} × {product}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What staff see beside a message: (translation key under `extra.`, value) lines,
/// the reactions, and how many people voted (for a poll).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Shown {
    pub(crate) lines: Vec<(&'static str, String)>,
    pub(crate) reactions: Vec<String>,
    pub(crate) poll_votes: usize,
}

pub(crate) fn shown(extra: &Value) -> Shown {
    let mut lines = Vec::new();
    if let Some(id) = s(extra, &["reply", "id"]) {
        lines.push(("reply_id", id.to_owned()));
    }
    if let Some(d) = s(extra, &["reply", "description"]) {
        lines.push(("reply_description", d.to_owned()));
    }
    if let Some(p) = s(extra, &["reply", "payload"]) {
        lines.push(("form_answers", p.to_owned()));
    }
    for l in order_lines(extra) {
        lines.push(("order_item", l));
    }
    if let Some(h) = s(extra, &["referral", "headline"]) {
        lines.push(("ad_headline", h.to_owned()));
    }
    if let Some(b) = s(extra, &["referral", "body"]) {
        lines.push(("ad_body", b.to_owned()));
    }
    if let Some(u) = s(extra, &["referral", "source_url"]) {
        lines.push(("ad_source", u.to_owned()));
    }
    let reactions = extra
        .get("reactions")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|x| x.get("emoji").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let poll_votes = extra
        .get("poll_votes")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    Shown {
        lines,
        reactions,
        poll_votes,
    }
}

/// What the AI reads after the message's text: the chosen option's id (for tools), a
/// form's answers, an order's items and the ad the customer came from.
pub(crate) fn ai_note(extra: &Value) -> String {
    let mut out = Vec::new();
    if let Some(id) = s(extra, &["reply", "id"]) {
        out.push(format!("[chosen option id: {id}]"));
    }
    if let Some(p) = s(extra, &["reply", "payload"]) {
        out.push(format!("[form answers: {p}]"));
    }
    let items = order_lines(extra);
    if !items.is_empty() {
        out.push(format!("[order: {}]", items.join("; ")));
    }
    let ad: Vec<&str> = [
        s(extra, &["referral", "headline"]),
        s(extra, &["referral", "body"]),
        s(extra, &["referral", "source_url"]),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !ad.is_empty() {
        out.push(format!("[came from an ad: {}]", ad.join(" — ")));
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_replace_and_remove_per_person() {
        let mut e = Value::Null;
        assert!(react(&mut e, "a", Some("Ana"), Some("👍")));
        assert!(!react(&mut e, "a", Some("Ana"), Some("👍")), "same again");
        assert!(react(&mut e, "a", Some("Ana"), Some("❤️")));
        assert!(react(&mut e, "b", None, Some("😮")));
        assert_eq!(shown(&e).reactions, ["❤️", "😮"]);
        assert!(react(&mut e, "a", None, None));
        assert_eq!(shown(&e).reactions, ["😮"]);
    }

    #[test]
    fn votes_count_each_person_once() {
        let mut e = Value::Null;
        assert!(vote(&mut e, "a", None));
        assert!(!vote(&mut e, "a", None));
        assert!(vote(&mut e, "b", None));
        assert_eq!(shown(&e).poll_votes, 2);
    }

    #[test]
    fn order_lines_read_like_a_receipt() {
        let e = json!({ "order": { "items": [
            { "product": "HAMBURGER", "quantity": 3, "price": 30, "currency": "ILS" },
            { "product": "SODA", "quantity": 2.0, "price": 9.5, "currency": null } ] } });
        assert_eq!(
            order_lines(&e),
            ["3 × HAMBURGER (30 ILS)", "2 × SODA (9.5)"]
        );
        assert_eq!(
            ai_note(&e),
            "[order: 3 × HAMBURGER (30 ILS); 2 × SODA (9.5)]"
        );
    }
}
