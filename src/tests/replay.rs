//! Replays recorded gateway payloads (`tests/fixtures/evolution/*.json`,
//! `tests/fixtures/meta/*.json`) against the running server over HTTP, and checks what a
//! correct app does with each: the answers' counters, the stored rows, the conversation
//! page, and whether an AI turn was scheduled.
//!
//! Each fixture is `{about, source, payloads: [webhook bodies…], expect: {…}}`. The bodies
//! are built from the gateways' own sources (Evolution's webhook controller and Baileys
//! service, WAProto field names) and a client library's recorded Cloud API fixtures — never
//! from our parser. `expect` keys (all optional):
//! `statuses` (HTTP status per payload, default 200), `responses` (counters each answer
//! must contain), `messages`, `conversations`, `contacts`, `ai_turns`, `unread` (counts),
//! `rows` (per external id: `kind`, `author`, `deleted`, `edited`, `body`, `original`,
//! `quoted`), `visible` / `hidden` (text of the conversation page).

use std::path::Path;

use serde_json::Value;

use crate::tests::wa::{self, Gw};

fn fixtures(dir: &str) -> Vec<(String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, v)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no fixtures in {}", root.display());
    out
}

/// Meta fixtures come from another app's number: address them to the test channel's.
fn to_our_number(mut body: Value) -> Value {
    for entry in body["entry"].as_array_mut().into_iter().flatten() {
        for change in entry["changes"].as_array_mut().into_iter().flatten() {
            if let Some(m) = change["value"].get_mut("metadata") {
                m["phone_number_id"] = Value::from(wa::META_PHONE_ID);
            }
        }
    }
    body
}

/// kind, author, deleted, edited, has body, has original, quoted id.
type StoredRow = (String, String, bool, bool, bool, bool, Option<String>);

async fn count(gw: &Gw, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(gw.channel_id)
        .fetch_one(&gw.w.t.owner)
        .await
        .unwrap()
}

/// The page's text as a reader sees it (entities decoded, tags gone).
fn page_text(html: &str) -> String {
    scraper::Html::parse_document(html)
        .root_element()
        .text()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs one fixture in a fresh world; returns what went wrong.
async fn replay(gw: &Gw, meta: bool, fixture: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let expect = &fixture["expect"];
    let payloads = fixture["payloads"].as_array().expect("payloads");
    for (i, p) in payloads.iter().enumerate() {
        let (status, body) = if meta {
            gw.meta_post(&to_our_number(p.clone())).await
        } else {
            gw.evo(p).await
        };
        let want = expect["statuses"]
            .get(i)
            .and_then(Value::as_u64)
            .unwrap_or(200);
        if u64::from(status) != want {
            errors.push(format!("payload {i}: status {status}, want {want}: {body}"));
            continue;
        }
        if let Some(counters) = expect["responses"].get(i).and_then(Value::as_object) {
            let got: Value = serde_json::from_str(&body).unwrap_or_default();
            for (k, v) in counters {
                if got.get(k) != Some(v) {
                    errors.push(format!(
                        "payload {i}: {k} = {:?}, want {v} ({body})",
                        got.get(k)
                    ));
                }
            }
        }
    }
    let counts = [
        (
            "messages",
            "SELECT count(*) FROM messages WHERE channel_id = $1",
        ),
        (
            "conversations",
            "SELECT count(*) FROM conversations WHERE channel_id = $1",
        ),
        (
            "contacts",
            "SELECT count(*) FROM contacts WHERE $1::uuid IS NOT NULL",
        ),
        (
            "ai_turns",
            "SELECT count(*) FROM jobs WHERE kind = 'ai_reply' AND $1::uuid IS NOT NULL",
        ),
        (
            "unread",
            "SELECT COALESCE(sum(unread_count), 0)::bigint FROM conversations WHERE channel_id = $1",
        ),
    ];
    for (key, sql) in counts {
        if let Some(want) = expect[key].as_i64() {
            let got = count(gw, sql).await;
            if got != want {
                errors.push(format!("{key}: {got}, want {want}"));
            }
        }
    }
    for row in expect["rows"].as_array().into_iter().flatten() {
        let ext = row["external_id"].as_str().unwrap();
        let got: Option<StoredRow> = sqlx::query_as(
            "SELECT kind, author, deleted_at IS NOT NULL, edited_at IS NOT NULL, body_sealed IS NOT NULL,
                    original_sealed IS NOT NULL, quoted_external_id
             FROM messages WHERE channel_id = $1 AND external_id = $2",
        )
        .bind(gw.channel_id)
        .bind(ext)
        .fetch_optional(&gw.w.t.owner)
        .await
        .unwrap();
        let Some((kind, author, deleted, edited, body, original, quoted)) = got else {
            errors.push(format!("row {ext}: not stored"));
            continue;
        };
        let checks: [(&str, Value); 7] = [
            ("kind", kind.into()),
            ("author", author.into()),
            ("deleted", deleted.into()),
            ("edited", edited.into()),
            ("body", body.into()),
            ("original", original.into()),
            ("quoted", quoted.map_or(Value::Null, Value::from)),
        ];
        for (k, v) in checks {
            if let Some(want) = row.get(k)
                && *want != v
            {
                errors.push(format!("row {ext}: {k} = {v}, want {want}"));
            }
        }
    }
    let visible = expect["visible"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let hidden = expect["hidden"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !visible.is_empty() || !hidden.is_empty() {
        let conv: Option<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM conversations WHERE channel_id = $1 LIMIT 1")
                .bind(gw.channel_id)
                .fetch_optional(&gw.w.t.owner)
                .await
                .unwrap();
        match conv {
            None => errors.push("no conversation to look at".into()),
            Some(conv) => {
                let page =
                    gw.w.owner
                        .get(&format!("/t/clinic-a/conversations/{conv}"))
                        .await;
                let text = page_text(&page.body);
                for v in visible.iter().filter_map(Value::as_str) {
                    if !text.contains(v) {
                        errors.push(format!("page lacks {v:?}"));
                    }
                }
                for h in hidden.iter().filter_map(Value::as_str) {
                    if text.contains(h) {
                        errors.push(format!("page shows {h:?}"));
                    }
                }
            }
        }
    }
    errors
}

async fn replay_all(dir: &str) {
    let meta = dir == "meta";
    let mut failures = Vec::new();
    let all = fixtures(dir);
    for (name, fixture) in &all {
        let gw = if meta {
            Gw::meta().await
        } else {
            Gw::evolution().await
        };
        for e in replay(&gw, meta, fixture).await {
            failures.push(format!("{dir}/{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems across {} fixtures:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn evolution_fixtures_replay() {
    replay_all("evolution").await;
}

#[tokio::test]
async fn meta_fixtures_replay() {
    replay_all("meta").await;
}

/// A media download the gateway refuses for good (4xx other than 408/429) is not retried:
/// one call, and staff are told the media is gone.
#[tokio::test]
async fn media_refused_for_good_is_gone_after_one_try() {
    use wiremock::{
        Mock, ResponseTemplate,
        matchers::{method, path},
    };
    let gw = Gw::evolution().await;
    let ts = crate::clock::Clock::now(&gw.w.t.clock).unix_timestamp();
    let image = wa::evo_upsert(
        "3EB0IMG0001",
        "5511988887777",
        "Ana Souza",
        ts,
        serde_json::json!({ "imageMessage": { "mimetype": "image/jpeg", "caption": "exame",
            "url": "https://mmg.whatsapp.net/o1/v/t62.7118-24/f1/m232/abc.enc", "directPath": "/o1/v/abc.enc" } }),
        "imageMessage",
    );
    assert_eq!(gw.evo(&image).await.0, 200);
    // Evolution's answer when it can no longer decrypt or find the message (§1.9).
    Mock::given(method("POST"))
        .and(path("/chat/getBase64FromMediaMessage/clinic"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!(
            { "status": 400, "error": "Bad Request", "response": { "message": ["Message not found"] } }
        )))
        .expect(1)
        .mount(&gw.gateway)
        .await;
    let start = crate::clock::Clock::now(&gw.w.t.clock);
    for _ in 0..5 {
        gw.run_jobs().await;
        gw.w.t.clock.advance(time::Duration::minutes(30));
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'fetch_media' AND state = 'pending'",
    )
    .fetch_one(&gw.w.t.owner)
    .await
    .unwrap();
    assert_eq!(pending, 0, "no retry is left waiting");
    // Back to when the staff session is fresh, to look at the page.
    gw.w.t.clock.set(start);
    let state: String =
        sqlx::query_scalar("SELECT media_state FROM messages WHERE external_id = '3EB0IMG0001'")
            .fetch_one(&gw.w.t.owner)
            .await
            .unwrap();
    assert_eq!(state, "gone");
    let conv = gw.only_conversation().await;
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(
        page_text(&page.body).contains("is no longer available from WhatsApp"),
        "{}",
        page.body
    );
}

/// A group conversation is labelled with the group's subject (asked of Evolution's
/// `findGroupInfos` once), not with the first member who wrote.
#[tokio::test]
async fn group_is_labelled_with_its_subject() {
    use wiremock::{
        Mock, ResponseTemplate,
        matchers::{method, path, query_param},
    };
    let gw = Gw::evolution().await;
    let ts = crate::clock::Clock::now(&gw.w.t.clock).unix_timestamp();
    Mock::given(method("GET"))
        .and(path("/group/findGroupInfos/clinic"))
        .and(query_param("groupJid", "120363025555555555@g.us"))
        // WhatsAppBaileysService.findGroup's answer.
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "id": "120363025555555555@g.us", "subject": "Pais da turma \u{202E}B", "subjectOwner": "5521966665555@s.whatsapp.net",
            "subjectTime": 1759000000, "pictureUrl": null, "size": 2, "creation": 1759000000,
            "owner": "5521966665555@s.whatsapp.net", "desc": "", "restrict": false, "announce": false,
            "participants": [{ "id": "5521966665555@s.whatsapp.net", "admin": "superadmin" }]
        })))
        .expect(1)
        .mount(&gw.gateway)
        .await;
    for (id, who, name) in [
        ("G1", "5521966665555", "Bruno"),
        ("G2", "5521955554444", "Carla"),
    ] {
        let group = serde_json::json!({
            "event": "messages.upsert", "instance": "clinic",
            "data": { "key": { "remoteJid": "120363025555555555@g.us", "fromMe": false, "id": id,
                               "participant": format!("{who}@s.whatsapp.net") },
                      "pushName": name, "message": { "conversation": "Oi grupo" },
                      "messageType": "conversation", "messageTimestamp": ts }
        });
        assert_eq!(gw.evo(&group).await.0, 200);
    }
    gw.run_jobs().await;
    gw.run_jobs().await;
    let inbox = gw.w.owner.get("/t/clinic-a/conversations").await;
    let text = page_text(&inbox.body);
    assert!(text.contains("Pais da turma B"), "{text}");
    assert!(
        !text.contains("Bruno"),
        "the group is not labelled as its first member"
    );
    let conv = gw.only_conversation().await;
    let page =
        gw.w.owner
            .get(&format!("/t/clinic-a/conversations/{conv}"))
            .await;
    assert!(page_text(&page.body).contains("Pais da turma B"));
}
