//! The review queue: pending drafts oldest first, each beside its conversation, to approve
//! (optionally edited), reject with a reason, or take over; escalations to take or dismiss.

use crate::messaging::Messaging;
use axum::extract::FromRef;
use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::domain::message::MessageStatus;
use crate::domain::review::{self as review_rules, DraftState};
use crate::wiring::App;
use crate::{
    db::{self, ai as db_ai, messages},
    error::{AppError, AppResult},
    http::{
        extract::{PageCtx, RequireRole, Reviewer, TenantCtx},
        fragment,
        middleware::redirect_with_flash,
        routes::portal::Shell,
    },
    messaging::view::{self, Clock, ThreadMessage},
    review::Review,
    review::{
        decide::{self, DecideError},
        presence,
    },
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/review", get(queue))
        .route("/t/{slug}/drafts/{id}/approve", post(approve))
        .route("/t/{slug}/drafts/{id}/reject", post(reject))
        .route("/t/{slug}/drafts/{id}/undo", post(undo))
        .route("/t/{slug}/drafts/{id}/dismiss", post(dismiss))
        .route("/t/{slug}/drafts/{id}/regenerate", post(regenerate))
        .route("/t/{slug}/conversations/{id}/presence", post(presence))
        .route("/t/{slug}/conversations/{id}/take-over", post(take_over))
        .route("/t/{slug}/tool-calls/{id}/approve", post(approve_call))
        .route("/t/{slug}/tool-calls/{id}/reject", post(reject_call))
}

pub(crate) struct DraftCard {
    pub(crate) id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) escalated: bool,
    /// An emergency: shown first and marked.
    pub(crate) urgent: bool,
    pub(crate) reason: String,
    /// The customer edited or deleted a message after the draft was written.
    pub(crate) source_changed: Option<String>,
    pub(crate) contact: String,
    pub(crate) text: String,
    pub(crate) context: Vec<ThreadMessage>,
    pub(crate) age_minutes: i64,
    pub(crate) created: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    /// The knowledge entries the draft drew on: (id, title).
    pub(crate) knowledge: Vec<(Uuid, String)>,
    pub(crate) tokens: String,
    pub(crate) latency_ms: i32,
    /// Minutes left in WhatsApp's 24-hour window (Meta channels), if it applies.
    pub(crate) window_minutes: Option<i64>,
    /// What the AI looked up (read calls) or prepared (write calls) for this draft.
    pub(crate) calls: Vec<decide::CallView>,
    /// Other members on this conversation now; `editor` is the one editing this draft.
    pub(crate) others: Vec<presence::Here>,
    pub(crate) editor: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "review/queue.html")]
pub(crate) struct QueuePage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) cards: Vec<DraftCard>,
    /// Write calls (book, update, cancel) waiting for approval, from any draft.
    pub(crate) pending_calls: Vec<decide::CallView>,
    /// A just-approved draft whose reply still waits out the undo window.
    pub(crate) undo: Option<UndoOffer>,
    /// The filter shown (`show`: "" | drafts | escalations; `who`: "" | mine | unassigned).
    pub(crate) show: String,
    pub(crate) who: String,
    /// The channel filter ("" for all) and the tenant's channels to choose from: (id, name).
    pub(crate) channel: String,
    pub(crate) channels: Vec<(Uuid, String)>,
    /// "Waiting longer than" in minutes ("" for any age), and the choices.
    pub(crate) age: String,
    pub(crate) ages: [u32; 4],
    /// "51–100 of 240": the part of the waiting drafts shown (empty when none wait).
    pub(crate) range: String,
    /// Query strings of the previous and next pages, when there are any.
    pub(crate) prev_page: Option<String>,
    pub(crate) next_page: Option<String>,
}

/// The review list alone (`?fragment=review`), for live updates.
#[derive(Template)]
#[template(path = "review/fragment.html")]
pub(crate) struct QueueFragment {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) cards: Vec<DraftCard>,
    pub(crate) pending_calls: Vec<decide::CallView>,
}

pub(crate) struct UndoOffer {
    pub(crate) draft_id: Uuid,
    pub(crate) contact: String,
    /// Seconds left before the send job runs.
    pub(crate) seconds: i64,
}

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    undo: Option<Uuid>,
    #[serde(default)]
    show: String,
    #[serde(default)]
    who: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    age: String,
    #[serde(default)]
    page: u32,
    /// `review`: the list alone, for live updates ([`fragment`]).
    fragment: Option<String>,
}

/// The queue's "waiting longer than" choices, in minutes.
const AGES: [u32; 4] = [15, 60, 240, 1440];

const QUEUE_LIMIT: i64 = 50;
const CONTEXT_MESSAGES: i64 = 6;

async fn queue(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Reviewer>,
    Query(q): Query<QueueQuery>,
) -> AppResult<Response> {
    let messaging = Messaging::from_ref(&state);
    let fragment = fragment::regions(q.fragment.as_deref(), &["review"])?;
    let tenant = t.id();
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    // The list alone skips what only the rest of the page shows (the undo offer). Both take
    // the time zone the tenant extractor loaded with the frame.
    let undo = match q.undo {
        Some(id) if fragment.is_none() => undo_offer(&state, &mut tx, tenant, id, now).await?,
        _ => None,
    };
    let clock = match &t.chrome.time_zone {
        Some(tz) => Clock::new(tz, now),
        None => Clock::new(&db::tenants::settings(&mut tx).await?.time_zone, now),
    };
    let show = match q.show.as_str() {
        s @ ("drafts" | "escalations") => s,
        _ => "",
    };
    let who = match q.who.as_str() {
        s @ ("mine" | "unassigned") => s,
        _ => "",
    };
    // The channel filter's choices: the list alone needs them only to check a channel
    // filter. (Each card's channel kind, for Meta's 24-hour window, comes with its row.)
    let all_channels = if fragment.is_none() || !q.channel.is_empty() {
        db::channels::list(&mut tx).await?
    } else {
        Vec::new()
    };
    let channels: Vec<(Uuid, String)> = all_channels
        .iter()
        .filter(|c| c.kind != "simulator")
        .map(|c| (c.id, c.name.clone()))
        .collect();
    let channel = Uuid::parse_str(&q.channel)
        .ok()
        .filter(|id| channels.iter().any(|(c, _)| c == id));
    let age = q.age.parse::<u32>().ok().filter(|a| AGES.contains(a));
    let page = i64::from(q.page.min(10_000));
    let filter = db_ai::QueueFilter {
        state: match show {
            "drafts" => Some("pending"),
            "escalations" => Some("escalated"),
            _ => None,
        },
        assigned_to: (who == "mine").then_some(t.me.user.id),
        unassigned: who == "unassigned",
        channel,
        created_before: age.map(|a| now - time::Duration::minutes(i64::from(a))),
        limit: QUEUE_LIMIT,
        offset: page * QUEUE_LIMIT,
    };
    // The cards' drafts with their conversations and contacts, in one statement.
    let drafts = db_ai::queue_cards(&mut tx, &filter).await?;
    // The whole queue's size is the waiting badge the page frame already read (a maintained
    // counter); only a filtered queue is counted here. Never fewer than the page shows.
    let total = if filter.is_whole_queue() {
        t.chrome.waiting.max(filter.offset + drafts.len() as i64)
    } else {
        db_ai::queue_total(&mut tx, &filter).await?
    };
    let shown = drafts.len() as i64;
    let channel_q = channel.map(|c| c.to_string()).unwrap_or_default();
    let age_q = age.map(|a| a.to_string()).unwrap_or_default();
    let page_query =
        |p: i64| format!("?show={show}&who={who}&channel={channel_q}&age={age_q}&page={p}");
    let knowledge = db_ai::knowledge(&mut tx).await?;
    // The rest of the cards' rows in a constant number of round trips, whatever the page
    // holds: each conversation's last messages (one LATERAL query) and the drafts' tool
    // calls. The channels came with the filter above.
    let conv_ids: Vec<Uuid> = drafts.iter().map(|d| d.draft.conversation_id).collect();
    let mut threads: HashMap<Uuid, Vec<messages::Message>> = HashMap::new();
    for m in messages::latest_of_many(&mut tx, &conv_ids, CONTEXT_MESSAGES).await? {
        threads.entry(m.conversation_id).or_default().push(m);
    }
    let draft_ids: Vec<Uuid> = drafts.iter().map(|d| d.draft.id).collect();
    let mut calls_of: HashMap<Uuid, Vec<db::mcp::Call>> = HashMap::new();
    for c in db::mcp::calls_for_drafts(&mut tx, &draft_ids).await? {
        calls_of.entry(c.draft_id).or_default().push(c);
    }
    let mut cards = Vec::with_capacity(drafts.len());
    for db_ai::QueueCard {
        draft: d,
        urgent,
        conversation: conv,
        channel_kind,
        contact,
    } in drafts
    {
        let Some(contact) = contact.as_ref() else {
            continue;
        };
        let mut context = Vec::new();
        // Newest first from the query; the card reads oldest first.
        for m in threads.get(&conv.id).into_iter().flatten().rev() {
            context.push(view::thread_message(&messaging, tenant, &clock, m).await);
        }
        let text = crate::messaging::view::original_text(&messaging, tenant, &d)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        let is_meta = channel_kind.as_deref() == Some("meta");
        let mut calls = Vec::new();
        for c in calls_of.get(&d.id).into_iter().flatten() {
            calls.push(decide::call_view(&state.keys, tenant, c).await);
        }
        cards.push(DraftCard {
            id: d.id,
            conversation_id: conv.id,
            escalated: DraftState::parse(&d.state) == Some(DraftState::Escalated),
            urgent,
            reason: d.escalation_reason.clone().unwrap_or_default(),
            source_changed: d.source_changed.clone(),
            contact: view::contact(&messaging, tenant, contact).await.label(),
            text,
            context,
            age_minutes: (now - d.created_at).whole_minutes().max(0),
            created: clock.full(d.created_at),
            provider: d.provider.clone(),
            model: d.model.clone(),
            knowledge: d
                .knowledge_ids
                .iter()
                .filter_map(|id| knowledge.iter().find(|k| k.id == *id))
                .map(|k| (k.id, k.title.clone()))
                .collect(),
            tokens: format!("{} / {}", d.input_tokens, d.output_tokens),
            latency_ms: d.latency_ms,
            window_minutes: is_meta.then(|| {
                conv.last_inbound_at
                    .map(|t| {
                        (t + review_rules::SERVICE_WINDOW - now)
                            .whole_minutes()
                            .max(0)
                    })
                    .unwrap_or(0)
            }),
            calls,
            others: Vec::new(),
            editor: None,
        });
    }
    // Who else is on these conversations, and who is editing which draft.
    let conv_ids: Vec<Uuid> = cards.iter().map(|c| c.conversation_id).collect();
    for (conv, here) in presence::others_on(&mut tx, &conv_ids, t.me.user.id, state.now()).await? {
        for c in cards.iter_mut().filter(|c| c.conversation_id == conv) {
            if here.editing && here.draft_id == Some(c.id) {
                c.editor = Some(here.name.clone());
            }
            c.others.push(here.clone());
        }
    }
    let mut pending_calls = Vec::new();
    for c in db::mcp::pending_calls(&mut tx, QUEUE_LIMIT).await? {
        pending_calls.push(decide::call_view(&state.keys, tenant, &c).await);
    }
    tx.commit().await?;
    let shell = Shell::from_ctx(&t, "review");
    if fragment.is_some() {
        return fragment::render(&QueueFragment {
            ctx,
            shell,
            cards,
            pending_calls,
        });
    }
    let first = page * QUEUE_LIMIT + 1;
    let range = if shown == 0 {
        String::new()
    } else {
        ctx.f(
            "review.range",
            &[
                &ctx.num(&first),
                &ctx.num(&(first + shown - 1)),
                &ctx.num(&total),
            ],
        )
    };
    Ok(QueuePage {
        ctx,
        shell,
        cards,
        pending_calls,
        undo,
        show: show.to_owned(),
        who: who.to_owned(),
        channel: channel_q.clone(),
        channels,
        age: age_q.clone(),
        ages: AGES,
        range,
        prev_page: (page > 0).then(|| page_query(page - 1)),
        next_page: ((page + 1) * QUEUE_LIMIT < total).then(|| page_query(page + 1)),
    }
    .into_response())
}

/// The undo offer for a draft this tenant approved, while its reply is still queued and
/// its send job has not come due.
pub(crate) async fn undo_offer(
    state: &AppState,
    tx: &mut sqlx::PgConnection,
    tenant: Uuid,
    draft_id: Uuid,
    now: time::OffsetDateTime,
) -> AppResult<Option<UndoOffer>> {
    let Some(d) = db_ai::get_draft(tx, draft_id).await? else {
        return Ok(None);
    };
    let (Some(message_id), Some(decided_at)) = (d.sent_message_id, d.decided_at) else {
        return Ok(None);
    };
    if d.state != "approved" {
        return Ok(None);
    }
    let Some(m) = messages::get(tx, message_id).await? else {
        return Ok(None);
    };
    let window = i64::from(db_ai::settings(tx).await?.undo_seconds);
    let seconds = window - (now - decided_at).whole_seconds();
    if MessageStatus::parse(&m.status) != Some(MessageStatus::Queued) || seconds <= 0 {
        return Ok(None);
    }
    let contact = match db::contacts::get(tx, d.contact_id).await? {
        Some(c) => view::contact(&Messaging::from_ref(state), tenant, &c)
            .await
            .label(),
        None => String::new(),
    };
    Ok(Some(UndoOffer {
        draft_id,
        contact,
        seconds,
    }))
}

fn back(t: &TenantCtx) -> String {
    format!("/t/{}/review", t.tenant.slug)
}

fn outcome(t: &TenantCtx, r: Result<(), DecideError>, ok_key: &'static str) -> AppResult<Response> {
    outcome_at(None, t, r, ok_key)
}

/// The answer to a decision: back to `to` (or the queue) with a message.
fn outcome_at(
    to: Option<String>,
    t: &TenantCtx,
    r: Result<(), DecideError>,
    ok_key: &'static str,
) -> AppResult<Response> {
    let to = to.unwrap_or_else(|| back(t));
    match r {
        Ok(()) => Ok(redirect_with_flash(&to, true, ok_key)),
        Err(DecideError::Internal(e)) => Err(AppError::Internal(e)),
        Err(DecideError::NotFound) => Err(AppError::NotFound),
        Err(e) => {
            if let DecideError::Locked(_) = e {
                tracing::warn!(tenant = %t.id(), "decision refused: another member is editing the draft");
            }
            Ok(redirect_with_flash(&to, false, e.message_key()))
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ApproveForm {
    text: Option<String>,
    /// Set when the decision came from the conversation's reply box: go back there.
    #[serde(default)]
    back: String,
}

/// Where a decision taken in a conversation's reply box returns: that conversation (only a
/// conversation path of this tenant, never another site).
fn back_to_conversation(t: &TenantCtx, back: &str) -> Option<String> {
    let rest = back.strip_prefix(&format!("/t/{}/conversations/", t.tenant.slug))?;
    Uuid::parse_str(rest).ok()?;
    Some(back.to_owned())
}

async fn approve(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<ApproveForm>,
) -> AppResult<Response> {
    let here = back_to_conversation(&t, &f.back);
    match decide::approve(&state, t.id(), &t.actor(), id, f.text.as_deref()).await {
        // Back with an undo offer for this draft while its reply waits.
        Ok(_) => Ok(redirect_with_flash(
            &format!("{}?undo={id}", here.unwrap_or_else(|| back(&t))),
            true,
            "review.approved",
        )),
        Err(e) => outcome_at(here, &t, Err(e), ""),
    }
}

async fn undo(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let r = decide::undo(&state, t.id(), &t.actor(), id).await;
    outcome(&t, r, "review.undone")
}

#[derive(Deserialize)]
pub(crate) struct RejectForm {
    #[serde(default)]
    reason: String,
    #[serde(default)]
    back: String,
}

async fn reject(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<RejectForm>,
) -> AppResult<Response> {
    let r = decide::reject(&state, t.id(), &t.actor(), id, &f.reason).await;
    outcome_at(back_to_conversation(&t, &f.back), &t, r, "review.rejected")
}

#[derive(Deserialize)]
pub(crate) struct BackForm {
    #[serde(default)]
    back: String,
}

/// "Regenerate": the AI writes this turn again; the page shows the new draft when it lands.
async fn regenerate(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<BackForm>,
) -> AppResult<Response> {
    let r = decide::regenerate(&state, t.id(), &t.actor(), id).await;
    outcome_at(
        back_to_conversation(&t, &f.back),
        &t,
        r,
        "review.regenerating",
    )
}

#[derive(Deserialize)]
pub(crate) struct PresenceForm {
    /// The draft the page offers for editing, if any.
    #[serde(default)]
    draft: String,
    /// "1" while the member is editing that draft.
    #[serde(default)]
    editing: String,
    /// "1" when the page is going away.
    #[serde(default)]
    leave: String,
}

/// A page's heartbeat: "I am on this conversation (and editing its draft)". Answers who else
/// is there and whether someone else holds the draft.
async fn presence(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<PresenceForm>,
) -> AppResult<Response> {
    use axum::response::IntoResponse;
    let draft = match f.draft.as_str() {
        "" => None,
        d => Some(Uuid::parse_str(d).map_err(|_| AppError::BadRequest("error.bad_request"))?),
    };
    if f.leave == "1" {
        presence::leave(&state, t.id(), t.me.user.id, id).await?;
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    }
    let beat = presence::touch(&state, t.id(), t.me.user.id, id, draft, f.editing == "1")
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(axum::Json(beat).into_response())
}

async fn dismiss(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let r = decide::dismiss(&state, t.id(), &t.actor(), id).await;
    outcome(&t, r, "review.dismissed")
}

async fn take_over(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    match decide::take_over(&state, t.id(), &t.actor(), id).await {
        Ok(()) => Ok(redirect_with_flash(
            &format!("/t/{}/conversations/{id}", t.tenant.slug),
            true,
            "review.taken_over",
        )),
        Err(DecideError::NotFound) => Err(AppError::NotFound),
        Err(e) => outcome(&t, Err(e), ""),
    }
}

async fn approve_call(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let r = decide::approve_call(&state, t.id(), &t.actor(), id).await;
    outcome(&t, r, "review.call_approved")
}

async fn reject_call(
    State(state): State<Review>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let r = decide::reject_call(&state, t.id(), &t.actor(), id).await;
    outcome(&t, r, "review.call_rejected")
}
