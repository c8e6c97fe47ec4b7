//! The contact directory: everyone who wrote in, searchable by name or number (through the
//! blind index), with their conversations, privacy state and open requests, and the way to
//! their conversation and privacy actions.

use crate::messaging::Messaging;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRef;
use axum::{
    Router,
    extract::{Query, State},
    routing::get,
};
use serde::Deserialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::wiring::App;
use crate::{
    db::{
        self,
        contacts::{self, DirectoryFilter},
    },
    domain::phone::Phone,
    error::AppResult,
    http::{
        extract::{PageCtx, RequireRole, Viewer},
        routes::portal::Shell,
    },
    messaging::view::{self, Clock},
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new().route("/t/{slug}/contacts", get(directory))
}

pub(crate) const PAGE_SIZE: i64 = 50;

pub(crate) struct ContactRow {
    pub(crate) label: String,
    pub(crate) phone: String,
    pub(crate) tags: Vec<String>,
    pub(crate) erased: bool,
    pub(crate) restricted: bool,
    pub(crate) open_requests: i64,
    pub(crate) conversations: i64,
    pub(crate) latest_conversation: Option<Uuid>,
    pub(crate) last_message: String,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) since: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "contacts/index.html")]
pub(crate) struct DirectoryPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) rows: Vec<ContactRow>,
    pub(crate) q: String,
    pub(crate) next: Option<String>,
}

#[derive(Deserialize, Default)]
pub(crate) struct DirectoryQuery {
    #[serde(default)]
    q: String,
    before: Option<String>,
}

fn parse_cursor(c: &str) -> Option<(OffsetDateTime, Uuid)> {
    let (t, id) = c.split_once('_')?;
    let t = OffsetDateTime::from_unix_timestamp_nanos(t.parse().ok()?).ok()?;
    Some((t, Uuid::parse_str(id).ok()?))
}

async fn directory(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Viewer>,
    Query(q): Query<DirectoryQuery>,
) -> AppResult<DirectoryPage> {
    let messaging = Messaging::from_ref(&state);
    let tenant = t.id();
    let search = q.q.trim();
    let (name_tokens, phone_index) = if search.is_empty() {
        (None, None)
    } else if let Ok(p) = Phone::try_from(search) {
        (
            None,
            Some(state.keys.blind_phone(tenant, p.as_str()).await?),
        )
    } else {
        (Some(state.keys.blind_words(tenant, search).await?), None)
    };
    let filter = DirectoryFilter {
        name_tokens,
        phone_index,
        before: q.before.as_deref().and_then(parse_cursor),
        limit: PAGE_SIZE,
    };
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let time_zone = db::tenants::settings(&mut tx).await?.time_zone;
    let found = contacts::directory(&mut tx, &filter).await?;
    tx.commit().await?;
    let clock = Clock::new(&time_zone, state.now());
    let next = (found.len() as i64 == PAGE_SIZE)
        .then(|| {
            found.last().map(|r| {
                format!(
                    "{}_{}",
                    r.contact.created_at.unix_timestamp_nanos(),
                    r.contact.id
                )
            })
        })
        .flatten();
    let mut rows = Vec::with_capacity(found.len());
    for r in &found {
        let c = view::contact(&messaging, tenant, &r.contact).await;
        rows.push(ContactRow {
            label: c.label(),
            phone: if c.erased {
                String::new()
            } else {
                c.phone
                    .as_deref()
                    .map(|p| format!("+{p}"))
                    .unwrap_or_default()
            },
            tags: c.tags,
            erased: c.erased,
            restricted: c.restricted,
            open_requests: r.open_requests,
            conversations: r.conversations,
            latest_conversation: r.latest_conversation,
            last_message: r
                .last_message_at
                .map(|t| clock.short(t))
                .unwrap_or_default(),
            since: clock.full(r.contact.created_at),
        });
    }
    Ok(DirectoryPage {
        ctx,
        shell: Shell::load(&state, &t, "contacts").await?,
        rows,
        q: q.q,
        next,
    })
}
