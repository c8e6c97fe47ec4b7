//! The inbox: conversation list (filters, search by name or phone via the blind index,
//! keyset pagination) and the conversation page (thread, reply, assignment, labels,
//! status, contact profile and notes).

use crate::messaging::Messaging;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRef;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::conversation::Ownership;
use crate::domain::message::{Author, MediaState};
use crate::domain::review::Policy;
use crate::domain::review::{self as review_rules, DraftState};
use crate::wiring::App;
use crate::{
    crypto::Aad,
    db::{
        self,
        conversations::{self, ListFilter},
        messages,
    },
    domain::phone::Phone,
    error::{AppError, AppResult},
    http::{
        extract::{PageCtx, RequireRole, Reviewer, TenantCtx, Viewer},
        fragment,
        middleware::redirect_with_flash,
        routes::{auth::form_error, portal::Shell},
    },
    live,
    messaging::{
        send::{self, QueueError, Writer},
        view::{self, Clock, ContactView, InboxRow, ThreadMessage},
    },
    privacy::{Privacy, retention},
    review::presence,
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/conversations", get(list))
        .route("/t/{slug}/conversations/views", post(save_view))
        .route(
            "/t/{slug}/conversations/views/{id}/delete",
            post(delete_view),
        )
        .route("/t/{slug}/conversations/{id}", get(show))
        .route("/t/{slug}/conversations/{id}/reply", post(reply))
        .route("/t/{slug}/conversations/{id}/status", post(set_status))
        .route("/t/{slug}/conversations/{id}/assign", post(assign))
        .route("/t/{slug}/conversations/{id}/labels", post(labels))
        .route("/t/{slug}/conversations/{id}/notes", post(notes))
        .route("/t/{slug}/messages/{id}/retry", post(retry))
        .route("/t/{slug}/messages/{id}/media", get(media))
        .route("/t/{slug}/conversations/{id}/policy", post(set_policy))
        .route("/t/{slug}/conversations/{id}/template", post(send_template))
        .route(
            "/t/{slug}/conversations/{id}/media-handled",
            post(media_handled),
        )
}

pub(crate) const PAGE_SIZE: i64 = 50;

/// The tenant's clock, from the time zone the tenant extractor loaded with the page frame.
async fn tenant_clock(state: &AppState, t: &TenantCtx) -> AppResult<Clock> {
    if let Some(tz) = &t.chrome.time_zone {
        return Ok(Clock::new(tz, state.now()));
    }
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let s = db::tenants::settings(&mut tx).await?;
    tx.commit().await?;
    Ok(Clock::new(&s.time_zone, state.now()))
}

#[derive(Template, WebTemplate)]
#[template(path = "inbox/list.html")]
pub(crate) struct ListPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) rows: Vec<InboxRow>,
    pub(crate) q: String,
    pub(crate) filters: Filters,
    /// The built-in views, as (view, name for ids and labels, link) in display order.
    pub(crate) views: Vec<(&'static str, &'static str, String)>,
    /// The member's own saved views.
    pub(crate) saved: Vec<conversations::SavedView>,
    pub(crate) next: Option<String>,
}

/// The conversation list alone (`?fragment=inbox`), for live updates.
#[derive(Template)]
#[template(path = "inbox/list_fragment.html")]
pub(crate) struct ListFragment {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) rows: Vec<InboxRow>,
    pub(crate) filters: Filters,
}

#[derive(Deserialize, Default)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    unread: Option<String>,
    #[serde(default)]
    mine: Option<String>,
    /// A built-in view: mine, unassigned, escalated, urgent, waiting, closing.
    #[serde(default)]
    view: String,
    /// For `view=waiting`: unanswered for more than this many minutes.
    #[serde(default)]
    wait: Option<String>,
    /// Cursor "<unix nanos>_<uuid>".
    #[serde(default)]
    before: Option<String>,
    /// `inbox`: the list alone, for live updates ([`fragment`]).
    #[serde(default)]
    fragment: Option<String>,
}

/// The inbox's built-in views ("" is everything).
pub(crate) const VIEWS: [&str; 7] = [
    "",
    "mine",
    "unassigned",
    "escalated",
    "urgent",
    "waiting",
    "closing",
];

/// Minutes `view=waiting` uses when none are given.
const DEFAULT_WAIT: u32 = 60;

/// WhatsApp's 24-hour window "closing": less than this much of it left.
const CLOSING_SOON: time::Duration = time::Duration::hours(4);

/// The inbox's filters, parsed and normalised: the only source of the query strings the
/// page links to and that saved views store (never the search text: it may be a name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Filters {
    pub(crate) status: &'static str,
    pub(crate) unread: bool,
    pub(crate) mine: bool,
    pub(crate) view: &'static str,
    pub(crate) wait: u32,
}

impl Filters {
    fn parse(q: &ListQuery) -> Filters {
        let view = VIEWS
            .iter()
            .copied()
            .find(|v| *v == q.view.as_str())
            .unwrap_or("");
        Filters {
            status: match q.status.as_str() {
                "open" => "open",
                "resolved" => "resolved",
                _ => "",
            },
            unread: q.unread.is_some(),
            mine: q.mine.is_some(),
            view,
            wait: q
                .wait
                .as_deref()
                .and_then(|w| w.trim().parse().ok())
                .filter(|w| (5..=10_080).contains(w))
                .unwrap_or(DEFAULT_WAIT),
        }
    }

    /// The canonical query string (without search or cursor), "" for no filter.
    pub(crate) fn query(&self) -> String {
        let mut parts = Vec::new();
        if !self.view.is_empty() {
            parts.push(format!("view={}", self.view));
        }
        if self.view == "waiting" {
            parts.push(format!("wait={}", self.wait));
        }
        if !self.status.is_empty() {
            parts.push(format!("status={}", self.status));
        }
        if self.unread {
            parts.push("unread=1".to_owned());
        }
        if self.mine {
            parts.push("mine=1".to_owned());
        }
        parts.join("&")
    }

    /// The same filters showing another built-in view.
    fn with_view(&self, view: &'static str) -> Filters {
        Filters {
            view,
            ..self.clone()
        }
    }

    fn list_filter(&self, me: Uuid, now: OffsetDateTime) -> ListFilter {
        // Views about work still to do look at open conversations only.
        let open_only = matches!(self.view, "waiting" | "closing" | "escalated" | "urgent");
        ListFilter {
            status: match (self.status, open_only) {
                ("", true) => Some("open".to_owned()),
                ("", false) => None,
                (s, _) => Some(s.to_owned()),
            },
            unread_only: self.unread,
            assigned_to: (self.mine || self.view == "mine").then_some(me),
            unassigned: self.view == "unassigned",
            escalated: self.view == "escalated",
            urgent: self.view == "urgent",
            waiting_before: (self.view == "waiting")
                .then(|| now - time::Duration::minutes(i64::from(self.wait))),
            window_between: (self.view == "closing").then(|| {
                (
                    now - review_rules::SERVICE_WINDOW,
                    now - review_rules::SERVICE_WINDOW + CLOSING_SOON,
                )
            }),
            ..ListFilter::default()
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct SaveViewForm {
    #[serde(default)]
    name: String,
    /// The inbox's query string when "save" was pressed; only its filters are kept.
    #[serde(default)]
    query: String,
}

/// Saves the inbox's current filters under a name, for this member only.
async fn save_view(
    State(state): State<AppState>,
    t: RequireRole<Viewer>,
    Form(f): Form<SaveViewForm>,
) -> AppResult<Response> {
    let back = format!("/t/{}/conversations", t.tenant.slug);
    let name = f.name.trim();
    let uri: axum::http::Uri = format!("/?{}", f.query.trim_start_matches('?'))
        .parse()
        .map_err(|_| AppError::BadRequest("error.bad_request"))?;
    let Query(parsed) = Query::<ListQuery>::try_from_uri(&uri)
        .map_err(|_| AppError::BadRequest("error.bad_request"))?;
    let query = Filters::parse(&parsed).query();
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        tracing::warn!(tenant = %t.id(), "saved view refused: bad name");
        return Ok(redirect_with_flash(
            &format!("{back}?{query}"),
            false,
            "inbox.view.invalid",
        ));
    }
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let saved = conversations::save_view(&mut tx, t.me.user.id, name, &query, state.now()).await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("{back}?{query}"),
        saved,
        if saved {
            "inbox.view.saved"
        } else {
            "inbox.view.too_many"
        },
    ))
}

async fn delete_view(
    State(state): State<AppState>,
    t: RequireRole<Viewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let gone = conversations::delete_view(&mut tx, t.me.user.id, id).await?;
    tx.commit().await?;
    if !gone {
        return Err(AppError::NotFound);
    }
    Ok(redirect_with_flash(
        &format!("/t/{}/conversations", t.tenant.slug),
        true,
        "inbox.view.deleted",
    ))
}

fn parse_cursor(c: &str) -> Option<(OffsetDateTime, Uuid)> {
    let (t, id) = c.split_once('_')?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(t.parse().ok()?).ok()?;
    Some((t, Uuid::parse_str(id).ok()?))
}

async fn list(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Viewer>,
    Query(q): Query<ListQuery>,
) -> AppResult<Response> {
    let messaging = Messaging::from_ref(&state);
    let fragment = fragment::regions(q.fragment.as_deref(), &["inbox"])?;
    let tenant = t.id();
    let clock = tenant_clock(&state, &t).await?;
    let filters = Filters::parse(&q);
    let search = q.q.trim();
    let (name_tokens, phone_index) = if search.is_empty() {
        (None, None)
    } else if let Ok(p) = Phone::try_from(search) {
        (
            None,
            Some(state.keys.blind_phone(tenant, p.as_str()).await?),
        )
    } else {
        let tokens = state.keys.blind_words(tenant, search).await?;
        (Some(tokens), None)
    };
    let filter = ListFilter {
        name_tokens,
        phone_index,
        before: q.before.as_deref().and_then(parse_cursor),
        limit: PAGE_SIZE,
        ..filters.list_filter(t.me.user.id, state.now())
    };
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let rows = conversations::list(&mut tx, &filter).await?;
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.id).collect();
    let urgent = crate::db::ai::urgent_conversations(&mut tx, &ids).await?;
    // The member's saved views are outside the list.
    let saved = match fragment {
        None => conversations::saved_views(&mut tx, t.me.user.id).await?,
        Some(_) => Vec::new(),
    };
    tx.commit().await?;
    let next = (rows.len() as i64 == PAGE_SIZE)
        .then(|| {
            rows.last()
                .map(|r| format!("{}_{}", r.last_message_at.unix_timestamp_nanos(), r.id))
        })
        .flatten();
    let mut views_rows = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut v = view::inbox_row(&messaging, tenant, &clock, r).await;
        v.urgent = urgent.contains(&r.id);
        views_rows.push(v);
    }
    let shell = Shell::from_ctx(&t, "conversations");
    if fragment.is_some() {
        return fragment::render(&ListFragment {
            ctx,
            shell,
            rows: views_rows,
            filters,
        });
    }
    let views = VIEWS
        .iter()
        .map(|v| {
            let name = if v.is_empty() { "all" } else { v };
            (*v, name, format!("?{}", filters.with_view(v).query()))
        })
        .collect();
    Ok(ListPage {
        ctx,
        shell,
        rows: views_rows,
        q: q.q,
        filters,
        views,
        saved,
        next,
    }
    .into_response())
}

pub(crate) struct MemberOption {
    pub(crate) id: Uuid,
    pub(crate) name: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "inbox/conversation.html")]
pub(crate) struct ConversationPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) id: Uuid,
    pub(crate) contact: ContactView,
    pub(crate) messages: Vec<ThreadMessage>,
    pub(crate) status: String,
    pub(crate) ownership: String,
    pub(crate) labels: String,
    pub(crate) assigned_to: Option<Uuid>,
    pub(crate) members: Vec<MemberOption>,
    pub(crate) channel_kind: String,
    pub(crate) channel_name: String,
    pub(crate) window_open: bool,
    pub(crate) window_closes: Option<String>,
    pub(crate) is_group: bool,
    /// The group's subject, when the gateway told us.
    pub(crate) group_name: Option<String>,
    pub(crate) error: Option<&'static str>,
    pub(crate) draft: String,
    pub(crate) older: Option<String>,
    /// Why a person must look at this conversation (an escalation), if so.
    pub(crate) attention: Option<String>,
    /// The conversation's own review policy (None: the tenant's).
    pub(crate) policy_override: Option<String>,
    /// A draft awaiting review for this conversation.
    pub(crate) pending_draft: bool,
    pub(crate) canned: Vec<db::canned::Canned>,
    /// Approved templates to offer when the 24-hour window is closed (Meta channels).
    pub(crate) templates: Vec<db::templates::Template>,
    /// The AI's draft waiting for review, offered in the reply box.
    pub(crate) reply_draft: Option<ReplyDraft>,
    /// Other members on this conversation now (presence), editing or reading.
    pub(crate) others: Vec<presence::Here>,
    /// A just-approved draft whose reply still waits out the undo window.
    pub(crate) undo: Option<crate::http::routes::review::UndoOffer>,
    /// Seconds between this page's presence heartbeats.
    pub(crate) heartbeat: u32,
    /// The conversation list beside the thread (wide screens): the view the reviewer came
    /// from, newest first, and that view's query string (kept in the pane's links).
    pub(crate) pane: Vec<InboxRow>,
    pub(crate) pane_query: String,
}

/// The pending draft as the reply box shows it.
pub(crate) struct ReplyDraft {
    pub(crate) id: Uuid,
    pub(crate) text: String,
    pub(crate) provider: String,
    pub(crate) model: String,
    /// Why the reviewer must look closely (e.g. `partly_answered`), if anything.
    pub(crate) note: String,
    /// Knowledge entries it drew on: (id, title).
    pub(crate) knowledge: Vec<(Uuid, String)>,
    /// Someone else is editing it right now.
    pub(crate) editor: Option<String>,
}

impl ConversationPage {
    /// A URL under this conversation.
    pub(crate) fn url(&self, rest: &str) -> String {
        format!("/t/{}/conversations/{}{}", self.shell.slug, self.id, rest)
    }

    pub(crate) fn contact_url(&self, rest: &str) -> String {
        format!(
            "/t/{}/contacts/{}{}",
            self.shell.slug, self.contact.id, rest
        )
    }

    pub(crate) fn is_assigned(&self, user: &Uuid) -> bool {
        self.assigned_to.as_ref() == Some(user)
    }
}

const THREAD_PAGE: i64 = 100;

async fn load_conversation(
    state: &AppState,
    ctx: PageCtx,
    t: &TenantCtx,
    id: Uuid,
    before: Option<(OffsetDateTime, Uuid)>,
    undo: Option<Uuid>,
    pane_filters: &Filters,
) -> AppResult<ConversationPage> {
    let messaging = Messaging::from_ref(state);
    let tenant = t.id();
    let clock = tenant_clock(state, t).await?;
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    // The first page of the thread marks the conversation read in the opening read.
    let (conv, contact, channel) = db::conversation_page::open(&mut tx, id, before.is_none())
        .await?
        .ok_or(AppError::NotFound)?;
    let mut rows = messages::thread(&mut tx, id, before, THREAD_PAGE).await?;
    let db::conversation_page::ReplyBox {
        latest_draft,
        members,
        canned,
        templates,
    } = db::conversation_page::reply_box(&mut tx, id, conv.channel_id).await?;
    let edited = edited_of(&mut tx, &rows).await?;
    // A reviewer opening the conversation is "here" (others see it), and takes it when
    // nobody has it (assign on open).
    let me = t.me.user.id;
    let reviewing = t.can(crate::domain::account::Role::Reviewer) && before.is_none();
    let mut assigned_to = conv.assigned_to;
    let mut arrived = false;
    let others: Vec<presence::Here> = if reviewing {
        if assigned_to.is_none()
            && presence::assign_on_open(&mut tx, tenant, &t.actor(), id, state.now()).await?
        {
            assigned_to = Some(me);
        }
        let (came, others) = presence::on_page_with_others(&mut tx, me, id, state.now()).await?;
        arrived = came;
        others
    } else {
        presence::others_on(&mut tx, &[id], me, state.now())
            .await?
            .into_iter()
            .map(|(_, h)| h)
            .collect()
    };
    let knowledge = draft_knowledge(&mut tx, latest_draft.as_ref()).await?;
    let pane_rows = conversations::list(
        &mut tx,
        &ListFilter {
            limit: PANE_SIZE,
            ..pane_filters.list_filter(me, state.now())
        },
    )
    .await?;
    let undo = match undo {
        Some(d) if reviewing => {
            crate::http::routes::review::undo_offer(state, &mut tx, tenant, d, state.now()).await?
        }
        _ => None,
    };
    tx.commit().await?;
    // The view is audited after the page's transaction, in a short one of its own shared
    // with the tenant's other views arriving meanwhile (`db::audit::Batched`): the tenant's
    // audit-chain lock is held for one batch's BEGIN, last entry, insert and commit, and the
    // page's transaction (which holds the conversation row it marked read, a row ingest also
    // writes) never waits in line for it. The page is shown only once its entry committed;
    // should the entry fail, the request fails and nothing is shown unaudited.
    state
        .audit_batched
        .record(
            &state.db,
            tenant,
            &t.actor(),
            "conversation.viewed",
            &id.to_string(),
            json!({}),
            state.now(),
        )
        .await?;
    if arrived {
        presence::arrived(&state.live, tenant, id).await;
    }
    if assigned_to != conv.assigned_to {
        state.live.publish(tenant, &live::Event::Inbox).await;
    }
    let reply_draft = reply_draft(state, tenant, latest_draft, &knowledge, &others).await;
    let older = (rows.len() as i64 == THREAD_PAGE)
        .then(|| {
            rows.last()
                .map(|m| format!("{}_{}", m.sent_at.unix_timestamp_nanos(), m.id))
        })
        .flatten();
    let mut pane = Vec::with_capacity(pane_rows.len());
    for r in &pane_rows {
        pane.push(view::inbox_row(&messaging, tenant, &clock, r).await);
    }
    rows.reverse();
    let thread = thread_view(state, tenant, &clock, &rows, &members, &edited).await;
    let channel_kind = channel.as_ref().map(|c| c.kind.clone()).unwrap_or_default();
    let now = state.now();
    let mut shell = Shell::from_ctx(t, "conversations");
    // The badge was counted before this page marked the conversation read.
    if before.is_none() && conv.status == "open" {
        shell.unread = (shell.unread - i64::from(conv.unread_count)).max(0);
    }
    Ok(ConversationPage {
        ctx,
        shell,
        id,
        contact: view::contact(&messaging, tenant, &contact).await,
        messages: thread,
        status: conv.status,
        ownership: conv.ownership,
        labels: conv.labels.join(", "),
        assigned_to,
        members: members
            .into_iter()
            .map(|m| MemberOption {
                id: m.user_id,
                name: m.name,
            })
            .collect(),
        window_open: review_rules::window_open(&channel_kind, conv.last_inbound_at, now),
        window_closes: conv
            .last_inbound_at
            .map(|t| clock.full(t + review_rules::SERVICE_WINDOW)),
        channel_name: channel.map(|c| c.name).unwrap_or_default(),
        channel_kind,
        is_group: conv.is_group,
        group_name: if conv.is_group {
            crate::messaging::groups::subject(
                &messaging,
                tenant,
                id,
                conv.group_name_sealed.as_deref(),
            )
            .await
        } else {
            None
        },
        error: None,
        draft: String::new(),
        older,
        attention: conv.attention.clone(),
        policy_override: conv.policy_override,
        pending_draft: reply_draft.is_some(),
        canned,
        templates,
        reply_draft,
        others,
        undo,
        heartbeat: presence::HEARTBEAT_SECONDS,
        pane,
        pane_query: pane_filters.query(),
    })
}

/// Which of the AI's messages in `rows` a reviewer edited before approving.
async fn edited_of(
    tx: &mut sqlx::PgConnection,
    rows: &[messages::Message],
) -> AppResult<Vec<(Uuid, bool)>> {
    let ai_ids: Vec<Uuid> = rows
        .iter()
        .filter(|m| m.written_by() == Some(Author::Ai) && m.author_user_id.is_some())
        .map(|m| m.id)
        .collect();
    // Most pages show no reviewed AI message: no need to ask which drafts were edited.
    if ai_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(db::ai::edited_by_message(tx, &ai_ids).await?)
}

/// The knowledge entries a pending draft drew on may be named: the tenant's entries then.
async fn draft_knowledge(
    tx: &mut sqlx::PgConnection,
    latest: Option<&db::ai::Draft>,
) -> AppResult<Vec<crate::domain::knowledge::KnowledgeEntry>> {
    Ok(match latest {
        Some(d) if d.state == DraftState::Pending.as_str() && !d.knowledge_ids.is_empty() => {
            db::ai::knowledge(tx).await?
        }
        _ => Vec::new(),
    })
}

/// The thread as shown, oldest first (`rows` in that order), with who approved the AI's
/// messages and whether they edited them.
async fn thread_view(
    state: &AppState,
    tenant: Uuid,
    clock: &Clock,
    rows: &[messages::Message],
    members: &[db::memberships::Member],
    edited: &[(Uuid, bool)],
) -> Vec<ThreadMessage> {
    let messaging = Messaging::from_ref(state);
    let mut thread = Vec::with_capacity(rows.len());
    for m in rows {
        let mut tm = view::thread_message(&messaging, tenant, clock, m).await;
        if let Some(user) = m
            .author_user_id
            .filter(|_| m.written_by() == Some(Author::Ai))
        {
            tm.review = Some(view::ReviewNote {
                by: members
                    .iter()
                    .find(|x| x.user_id == user)
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
                edited: edited.iter().any(|(id, e)| *id == m.id && *e),
            });
        }
        thread.push(tm);
    }
    thread
}

/// The latest draft as the reply box offers it, when it waits for review.
async fn reply_draft(
    state: &AppState,
    tenant: Uuid,
    latest: Option<db::ai::Draft>,
    knowledge: &[crate::domain::knowledge::KnowledgeEntry],
    others: &[presence::Here],
) -> Option<ReplyDraft> {
    let messaging = Messaging::from_ref(state);
    let d = latest.filter(|d| d.state == DraftState::Pending.as_str())?;
    Some(ReplyDraft {
        id: d.id,
        text: view::original_text(&messaging, tenant, &d)
            .await
            .ok()
            .flatten()
            .unwrap_or_default(),
        provider: d.provider.clone(),
        model: d.model.clone(),
        note: d.escalation_reason.clone().unwrap_or_default(),
        knowledge: d
            .knowledge_ids
            .iter()
            .filter_map(|k| knowledge.iter().find(|e| e.id == *k))
            .map(|e| (e.id, e.title.clone()))
            .collect(),
        editor: others
            .iter()
            .find(|h| h.editing && h.draft_id == Some(d.id))
            .map(|h| h.name.clone()),
    })
}

/// The conversation page's live regions.
const CONVERSATION_REGIONS: &[&str] = &["pane", "presence", "thread", "reply"];

/// Some of the conversation page's live regions alone (`?fragment=thread,reply,…`), for
/// live updates: the fields of the regions not asked for stay empty.
#[derive(Template)]
#[template(path = "inbox/conversation_fragment.html")]
pub(crate) struct ConversationFragment {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) id: Uuid,
    pub(crate) regions: Vec<&'static str>,
    pub(crate) pane: Vec<InboxRow>,
    pub(crate) pane_query: String,
    pub(crate) others: Vec<presence::Here>,
    pub(crate) messages: Vec<ThreadMessage>,
    pub(crate) error: Option<&'static str>,
    pub(crate) draft: String,
    pub(crate) reply_draft: Option<ReplyDraft>,
    pub(crate) window_open: bool,
    pub(crate) window_closes: Option<String>,
    pub(crate) channel_kind: String,
    pub(crate) canned: Vec<db::canned::Canned>,
    pub(crate) templates: Vec<db::templates::Template>,
}

impl ConversationFragment {
    pub(crate) fn wants(&self, region: &str) -> bool {
        self.regions.contains(&region)
    }

    /// A URL under this conversation (as [`ConversationPage::url`]).
    pub(crate) fn url(&self, rest: &str) -> String {
        format!("/t/{}/conversations/{}{}", self.shell.slug, self.id, rest)
    }
}

/// Loads only what the asked-for regions show: no contact, audit entry, presence
/// arrival or assignment (the page did those when it was opened). The thread still marks
/// the conversation read, as the page does: the member is looking at the new messages.
async fn conversation_fragment(
    state: &AppState,
    ctx: PageCtx,
    t: &TenantCtx,
    id: Uuid,
    before: Option<(OffsetDateTime, Uuid)>,
    pane_filters: &Filters,
    regions: Vec<&'static str>,
) -> AppResult<Response> {
    let messaging = Messaging::from_ref(state);
    let tenant = t.id();
    let me = t.me.user.id;
    let wants = |r: &str| regions.contains(&r);
    let clock = tenant_clock(state, t).await?;
    let mut f = ConversationFragment {
        ctx,
        shell: Shell::from_ctx(t, "conversations"),
        id,
        regions: regions.clone(),
        pane: Vec::new(),
        pane_query: pane_filters.query(),
        others: Vec::new(),
        messages: Vec::new(),
        error: None,
        draft: String::new(),
        reply_draft: None,
        window_open: false,
        window_closes: None,
        channel_kind: String::new(),
        canned: Vec::new(),
        templates: Vec::new(),
    };
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    // Another tenant's conversation (or none) is a 404, as the page is. The thread's first
    // page marks it read in the same statement, as the page does.
    let mark_read = wants("thread") && before.is_none();
    let (conv, _, channel) = db::conversation_page::open(&mut tx, id, mark_read)
        .await?
        .ok_or(AppError::NotFound)?;
    let reply = wants("reply") && t.can(crate::domain::account::Role::Reviewer);
    // The thread's members and the reply box's lists in one read, when either is drawn.
    let lists = if wants("thread") || reply {
        Some(db::conversation_page::reply_box(&mut tx, id, conv.channel_id).await?)
    } else {
        None
    };
    if let (true, Some(lists)) = (wants("thread"), &lists) {
        let mut rows = messages::thread(&mut tx, id, before, THREAD_PAGE).await?;
        let edited = edited_of(&mut tx, &rows).await?;
        // The badge was counted before the conversation was marked read.
        if mark_read && conv.status == "open" {
            f.shell.unread = (f.shell.unread - i64::from(conv.unread_count)).max(0);
        }
        rows.reverse();
        f.messages = thread_view(state, tenant, &clock, &rows, &lists.members, &edited).await;
    }
    if wants("presence") || reply {
        f.others = presence::others_on(&mut tx, &[id], me, state.now())
            .await?
            .into_iter()
            .map(|(_, h)| h)
            .collect();
    }
    if let (true, Some(lists)) = (reply, lists) {
        let latest_draft = lists.latest_draft;
        let knowledge = draft_knowledge(&mut tx, latest_draft.as_ref()).await?;
        f.canned = lists.canned;
        f.templates = lists.templates;
        f.channel_kind = channel.map(|c| c.kind).unwrap_or_default();
        f.window_open =
            review_rules::window_open(&f.channel_kind, conv.last_inbound_at, state.now());
        f.window_closes = conv
            .last_inbound_at
            .map(|t| clock.full(t + review_rules::SERVICE_WINDOW));
        f.reply_draft = reply_draft(state, tenant, latest_draft, &knowledge, &f.others).await;
    }
    if wants("pane") {
        let rows = conversations::list(
            &mut tx,
            &ListFilter {
                limit: PANE_SIZE,
                ..pane_filters.list_filter(me, state.now())
            },
        )
        .await?;
        for r in &rows {
            f.pane
                .push(view::inbox_row(&messaging, tenant, &clock, r).await);
        }
    }
    tx.commit().await?;
    fragment::render(&f)
}

#[derive(Deserialize, Default)]
pub(crate) struct ThreadQuery {
    before: Option<String>,
    /// A draft just approved from the reply box: offer to undo it.
    undo: Option<Uuid>,
    /// The inbox view the reviewer came from (the list pane shows it).
    #[serde(default)]
    view: String,
    #[serde(default)]
    wait: Option<String>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    unread: Option<String>,
    #[serde(default)]
    mine: Option<String>,
    /// Some of `pane`, `presence`, `thread`, `reply`: those regions alone ([`fragment`]).
    #[serde(default)]
    fragment: Option<String>,
}

/// How many conversations the list pane beside a thread shows.
const PANE_SIZE: i64 = 30;

async fn show(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Viewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Query(q): Query<ThreadQuery>,
) -> AppResult<Response> {
    let regions = fragment::regions(q.fragment.as_deref(), CONVERSATION_REGIONS)?;
    let before = q.before.as_deref().and_then(parse_cursor);
    let pane = Filters::parse(&ListQuery {
        view: q.view,
        wait: q.wait,
        status: q.status,
        unread: q.unread,
        mine: q.mine,
        ..ListQuery::default()
    });
    match regions {
        Some(regions) => conversation_fragment(&state, ctx, &t, id, before, &pane, regions).await,
        None => Ok(
            load_conversation(&state, ctx, &t, id, before, q.undo, &pane)
                .await?
                .into_response(),
        ),
    }
}

#[derive(Deserialize)]
pub(crate) struct ReplyForm {
    #[serde(default)]
    text: String,
    /// A canned reply to send when no text was typed (works without JavaScript).
    #[serde(default)]
    canned: String,
}

async fn reply(
    State(state): State<AppState>,
    State(privacy): State<Privacy>,
    ctx: PageCtx,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<ReplyForm>,
) -> AppResult<Response> {
    let tenant = t.id();
    let mut tx = t.begin(&state).await?;
    let mut text = f.text.clone();
    if text.trim().is_empty()
        && let Ok(canned_id) = Uuid::parse_str(f.canned.trim())
        && let Some(c) = db::canned::get(&mut tx, canned_id).await?
    {
        text = c.body;
    }
    match send::queue_text(
        &Messaging::from_ref(&state),
        &mut tx,
        tenant,
        id,
        &text,
        Writer::Member(t.me.user.id),
    )
    .await
    {
        Ok(message_id) => {
            // A person answered: the AI stops drafting here until handed back.
            conversations::set_ownership(&mut tx, id, Ownership::AFTER_STAFF_WROTE).await?;
            tx.audit(
                "message.sent",
                &id.to_string(),
                send::audit_detail(message_id),
            )
            .await?;
            tx.commit().await?;
            state
                .live
                .publish(tenant, &live::Event::Conversation { id })
                .await;
            retention::media_after_triage(&privacy, tenant, id).await?;
            Ok(redirect_with_flash(
                &format!("/t/{}/conversations/{id}#reply", t.tenant.slug),
                true,
                "reply.queued",
            ))
        }
        Err(QueueError::Refused(r)) => {
            drop(tx);
            let mut page =
                load_conversation(&state, ctx, &t, id, None, None, &Filters::default()).await?;
            page.error = Some(r.message_key());
            page.draft = f.text;
            Ok(form_error(page))
        }
        Err(QueueError::Internal(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct StatusForm {
    status: Option<String>,
    ownership: Option<String>,
}

async fn set_status(
    State(state): State<AppState>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<StatusForm>,
) -> AppResult<Response> {
    let tenant = t.id();
    let mut tx = t.begin(&state).await?;
    conversations::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    if let Some(s) = f.status.as_deref() {
        if !matches!(s, "open" | "resolved") {
            return Err(AppError::BadRequest("error.bad_request"));
        }
        conversations::set_status(&mut tx, id, s).await?;
        tx.audit(
            "conversation.status",
            &id.to_string(),
            json!({ "status": s }),
        )
        .await?;
    }
    if let Some(o) = f.ownership.as_deref() {
        let o = Ownership::parse(o).ok_or(AppError::BadRequest("error.bad_request"))?;
        conversations::set_ownership(&mut tx, id, o).await?;
        tx.audit(
            "conversation.ownership",
            &id.to_string(),
            json!({ "ownership": o.as_str() }),
        )
        .await?;
    }
    tx.commit().await?;
    state.live.publish(tenant, &live::Event::Inbox).await;
    Ok(conversation_updated(&t.tenant.slug, id))
}

#[derive(Deserialize)]
pub(crate) struct AssignForm {
    #[serde(default)]
    user: String,
}

async fn assign(
    State(state): State<AppState>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<AssignForm>,
) -> AppResult<Response> {
    let tenant = t.id();
    let mut tx = t.begin(&state).await?;
    let user = if f.user.is_empty() {
        None
    } else {
        let u = Uuid::parse_str(&f.user).map_err(|_| AppError::BadRequest("error.bad_request"))?;
        // Only members of this tenant can be assigned.
        db::memberships::role_in_tenant(&mut tx, u)
            .await?
            .ok_or(AppError::BadRequest("error.bad_request"))?;
        Some(u)
    };
    if !conversations::assign(&mut tx, id, user).await? {
        return Err(AppError::NotFound);
    }
    tx.audit(
        "conversation.assigned",
        &id.to_string(),
        json!({ "user": user }),
    )
    .await?;
    let assigned = json!({ "conversation_id": id, "assigned_to": user });
    let queued = db::outgoing::emit(
        &mut tx,
        tenant,
        crate::domain::events::CONVERSATION_ASSIGNED,
        &[(assigned, None)],
        state.now(),
    )
    .await?;
    if queued > 0 {
        db::jobs::notify_workers(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(conversation_updated(&t.tenant.slug, id))
}

#[derive(Deserialize)]
pub(crate) struct LabelsForm {
    #[serde(default)]
    labels: String,
}

pub(crate) use crate::domain::labels::parse_labels;

async fn labels(
    State(state): State<AppState>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<LabelsForm>,
) -> AppResult<Response> {
    let labels = parse_labels(&f.labels).map_err(AppError::BadRequest)?;
    let tenant = t.id();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    if !conversations::set_labels(&mut tx, id, &labels).await? {
        return Err(AppError::NotFound);
    }
    tx.commit().await?;
    Ok(conversation_updated(&t.tenant.slug, id))
}

#[derive(Deserialize)]
pub(crate) struct NotesForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    tags: String,
}

/// The customer profile staff keep: name, notes (sealed) and tags.
async fn notes(
    State(state): State<AppState>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<NotesForm>,
) -> AppResult<Response> {
    if f.notes.chars().count() > 4000 || f.name.chars().count() > 120 {
        return Err(AppError::BadRequest("error.too_large"));
    }
    let tags = parse_labels(&f.tags).map_err(AppError::BadRequest)?;
    let tenant = t.id();
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    let conv = conversations::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let cid = conv.contact_id;
    let profile = json!({ "notes": f.notes.trim() }).to_string();
    let sealed = state
        .keys
        .seal_str(tenant, cid, Aad::new("contacts", "profile", cid), &profile)
        .await?;
    db::contacts::set_profile(&mut tx, cid, &sealed, &tags, now).await?;
    let name = f.name.trim();
    if !name.is_empty() {
        let sealed = state
            .keys
            .seal_str(tenant, cid, Aad::new("contacts", "name", cid), name)
            .await?;
        let tokens = state.keys.blind_words(tenant, name).await?;
        db::contacts::set_name(&mut tx, cid, &sealed, &tokens, true, now).await?;
    }
    tx.audit("contact.profile_edited", &cid.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/conversations/{id}", t.tenant.slug),
        true,
        "contact.saved",
    ))
}

async fn retry(
    State(state): State<AppState>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let tenant = t.id();
    let mut tx = t.begin(&state).await?;
    let m = messages::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    match send::retry(&Messaging::from_ref(&state), &mut tx, tenant, id).await {
        Ok(true) => {
            tx.audit(
                "message.retried",
                &m.conversation_id.to_string(),
                send::audit_detail(id),
            )
            .await?;
            tx.commit().await?;
            Ok(redirect_with_flash(
                &format!("/t/{}/conversations/{}", t.tenant.slug, m.conversation_id),
                true,
                "reply.requeued",
            ))
        }
        Ok(false) => Ok(redirect_with_flash(
            &format!("/t/{}/conversations/{}", t.tenant.slug, m.conversation_id),
            false,
            "reply.not_retryable",
        )),
        Err(QueueError::Refused(r)) => Ok(redirect_with_flash(
            &format!("/t/{}/conversations/{}", t.tenant.slug, m.conversation_id),
            false,
            r.message_key(),
        )),
        Err(QueueError::Internal(e)) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(crate) struct PolicyForm {
    #[serde(default)]
    policy: String,
}

/// Overrides the tenant's review policy for one conversation (empty: back to the tenant's).
async fn set_policy(
    State(state): State<AppState>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<PolicyForm>,
) -> AppResult<Response> {
    let policy = match f.policy.as_str() {
        "" => None,
        p => Some(
            Policy::parse(p)
                .ok_or(AppError::BadRequest("ai.policy.invalid"))?
                .as_str(),
        ),
    };
    let mut tx = t.begin(&state).await?;
    if !conversations::set_policy(&mut tx, id, policy).await? {
        return Err(AppError::NotFound);
    }
    tx.audit(
        "conversation.policy",
        &id.to_string(),
        json!({ "policy": policy }),
    )
    .await?;
    tx.commit().await?;
    Ok(conversation_updated(&t.tenant.slug, id))
}

/// A message's media, opened for a member: images inline, anything else as a download,
/// never sniffed or run (nosniff, a sandboxing CSP).
async fn media(
    State(state): State<AppState>,
    t: RequireRole<Viewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    use axum::http::{HeaderValue, header};
    let tenant = t.id();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let m = messages::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let key = m
        .media_key
        .as_deref()
        .filter(|_| MediaState::of(m.media_state.as_deref()) == Some(MediaState::Stored))
        .ok_or(AppError::NotFound)?;
    let sealed = state.media.get(key).await?.ok_or(AppError::NotFound)?;
    let bytes = state
        .keys
        .open(
            tenant,
            m.contact_id,
            crate::crypto::Aad::new("media", "bytes", m.id),
            &sealed,
        )
        .await
        .map_err(|_| AppError::NotFound)?;
    let mime = m
        .media_mime
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let inline = matches!(
        mime.as_str(),
        "image/jpeg" | "image/png" | "image/webp" | "image/gif"
    );
    let mut resp = axum::response::IntoResponse::into_response(bytes);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(if inline {
            &mime
        } else {
            "application/octet-stream"
        })
        .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(if inline {
            "inline"
        } else {
            "attachment; filename=\"media\""
        }),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    let mut tx = t.begin(&state).await?;
    tx.audit(
        "media.viewed",
        &m.conversation_id.to_string(),
        json!({ "message": m.id }),
    )
    .await?;
    tx.commit().await?;
    Ok(resp)
}

#[derive(Deserialize)]
pub(crate) struct TemplateForm {
    template: Uuid,
    #[serde(default)]
    params: String,
}

/// Sends an approved template (outside the 24-hour window), one parameter per line.
async fn send_template(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<TemplateForm>,
) -> AppResult<Response> {
    let messaging = Messaging::from_ref(&state);
    let tenant = t.id();
    let params: Vec<String> = f
        .params
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let mut tx = t.begin(&state).await?;
    match send::queue_template(
        &messaging,
        &mut tx,
        tenant,
        id,
        f.template,
        &params,
        t.me.user.id,
    )
    .await
    {
        Ok(message_id) => {
            tx.audit(
                "message.template_sent",
                &id.to_string(),
                send::audit_detail(message_id),
            )
            .await?;
            tx.commit().await?;
            state
                .live
                .publish(tenant, &live::Event::Conversation { id })
                .await;
            Ok(redirect_with_flash(
                &format!("/t/{}/conversations/{id}", t.tenant.slug),
                true,
                "reply.queued",
            ))
        }
        Err(QueueError::Refused(r)) => {
            drop(tx);
            let mut page =
                load_conversation(&state, ctx, &t, id, None, None, &Filters::default()).await?;
            page.error = Some(r.message_key());
            Ok(form_error(page))
        }
        Err(QueueError::Internal(e)) => Err(e.into()),
    }
}

/// Staff mark a conversation's media as handled: it is deleted (after-triage policy).
async fn media_handled(
    State(state): State<AppState>,
    State(privacy): State<Privacy>,
    t: RequireRole<Reviewer>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let tenant = t.id();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    conversations::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    tx.commit().await?;
    let n = retention::media_after_triage(&privacy, tenant, id).await?;
    let mut tx = t.begin(&state).await?;
    tx.audit("media.handled", &id.to_string(), json!({ "deleted": n }))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/conversations/{id}", t.tenant.slug),
        true,
        "media.handled",
    ))
}

/// Every change made from the conversation page lands back on it with the same notice.
fn conversation_updated(slug: &str, id: Uuid) -> Response {
    redirect_with_flash(
        &format!("/t/{slug}/conversations/{id}"),
        true,
        "conversation.updated",
    )
}
