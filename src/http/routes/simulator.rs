//! The bot simulator: an admin chats as an end user through the real ingestion path (a
//! built-in channel), so the whole flow can be tried without a WhatsApp number.

use crate::messaging::Messaging;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRef;
use axum::{
    Form, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::wiring::App;
use crate::{
    db::{self, conversations, messages},
    domain::phone::Phone,
    error::{AppError, AppResult},
    gateway::{InboundEvent, InboundMessage, MessageKind},
    http::{
        extract::{Admin, PageCtx, RequireRole},
        fragment,
        middleware::redirect_with_flash,
        routes::portal::Shell,
    },
    messaging::{
        channel, ingest,
        view::{self, Clock, ThreadMessage},
    },
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new().route("/t/{slug}/simulator", get(page).post(send))
}

/// The simulated end user's number (a reserved-looking Brazilian test number).
pub(crate) const DEFAULT_PHONE: &str = "5511900000001";

#[derive(Template, WebTemplate)]
#[template(path = "inbox/simulator.html")]
pub(crate) struct SimulatorPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) phone: String,
    pub(crate) name: String,
    pub(crate) messages: Vec<ThreadMessage>,
    pub(crate) conversation: Option<Uuid>,
}

/// The thread alone (`?fragment=thread`), for live updates.
#[derive(Template)]
#[template(path = "inbox/simulator_fragment.html")]
pub(crate) struct SimulatorFragment {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) messages: Vec<ThreadMessage>,
}

#[derive(Deserialize, Default)]
pub(crate) struct SimQuery {
    phone: Option<String>,
    /// `thread`: the thread alone, for live updates ([`fragment`]).
    fragment: Option<String>,
}

async fn page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    axum::extract::Query(q): axum::extract::Query<SimQuery>,
) -> AppResult<Response> {
    let messaging = Messaging::from_ref(&state);
    let fragment = fragment::regions(q.fragment.as_deref(), &["thread"])?;
    let phone = q
        .phone
        .and_then(|p| Phone::try_from(p.as_str()).ok())
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| DEFAULT_PHONE.into());
    let tenant = t.id();
    let sim = channel::simulator(&messaging, tenant, &t.actor()).await?;
    let idx = state.keys.blind_phone(tenant, &phone).await?;
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let contact = db::contacts::find(&mut tx, Some(&idx), None)
        .await?
        .into_iter()
        .next();
    let settings = db::tenants::settings(&mut tx).await?;
    let mut thread = Vec::new();
    let mut conversation = None;
    if let Some(c) = contact {
        let rows = conversations::list(
            &mut tx,
            &conversations::ListFilter {
                phone_index: Some(idx.clone()),
                limit: 20,
                ..Default::default()
            },
        )
        .await?;
        if let Some(conv) = rows
            .into_iter()
            .find(|r| r.channel_id == sim.id && r.contact_id == c.id)
        {
            conversation = Some(conv.id);
            let mut msgs = messages::thread(&mut tx, conv.id, None, 100).await?;
            msgs.reverse();
            let clock = Clock::new(&settings.time_zone, state.now());
            for m in &msgs {
                thread.push(view::thread_message(&messaging, tenant, &clock, m).await);
            }
        }
    }
    tx.commit().await?;
    let shell = Shell::from_ctx(&t, "simulator");
    if fragment.is_some() {
        return fragment::render(&SimulatorFragment {
            ctx,
            shell,
            messages: thread,
        });
    }
    Ok(SimulatorPage {
        ctx,
        shell,
        phone,
        name: "Maria Teste".into(),
        messages: thread,
        conversation,
    }
    .into_response())
}

#[derive(Deserialize)]
pub(crate) struct SimForm {
    phone: String,
    #[serde(default)]
    name: String,
    text: String,
}

/// Delivers a message "from WhatsApp" through the same ingestion as a gateway webhook.
async fn send(
    State(state): State<Messaging>,
    State(ingest): State<std::sync::Arc<crate::messaging::group_commit::GroupCommit>>,
    t: RequireRole<Admin>,
    Form(f): Form<SimForm>,
) -> AppResult<Response> {
    let phone = Phone::try_from(f.phone.as_str())
        .map_err(|_| AppError::BadRequest("simulator.phone_invalid"))?;
    let text = f.text.trim();
    if text.is_empty() || text.chars().count() > 4096 {
        return Err(AppError::BadRequest("reply.empty"));
    }
    let sim = channel::simulator(&state, t.id(), &t.actor()).await?;
    let msg = InboundMessage {
        account: "simulator".into(),
        external_id: format!("sim-in-{}", Uuid::now_v7().simple()),
        chat_id: phone.as_str().to_owned(),
        is_group: false,
        sender_phone: Some(phone.clone()),
        sender_lid: None,
        sender_user_id: None,
        sender_name: Some(f.name.trim().to_owned()).filter(|n| !n.is_empty()),
        from_me: false,
        echo: false,
        timestamp: state.now(),
        kind: MessageKind::Text {
            body: text.to_owned(),
        },
        quoted_external_id: None,
        referral: None,
    };
    ingest::ingest(&state, &ingest, &sim, vec![InboundEvent::Message(msg)]).await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/simulator?phone={}", t.tenant.slug, phone.as_str()),
        true,
        "simulator.sent",
    ))
}
