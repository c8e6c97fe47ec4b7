//! The demo tenant `scripts/run` starts with, so the product can be tried at once.
//! Development only: it has a published password.

use crate::messaging::Messaging;
use crate::{
    accounts::{self, FormError, Signup},
    db,
    state::AppState,
};
use axum::extract::FromRef;

pub(crate) const DEMO_EMAIL: &str = "demo@sigmaai.local";
pub(crate) const DEMO_PASSWORD: &str = "sigmaai-demo-2026";
pub(crate) const DEMO_SLUG: &str = "demo-clinic";

/// The demo clinic's knowledge (what the offline answerer answers from).
const KNOWLEDGE: &[(&str, &str, &str)] = &[
    (
        "hours",
        "Horário de funcionamento",
        "Atendemos de segunda a sexta das 8h às 18h e aos sábados das 8h às 12h. Não abrimos aos domingos e feriados.",
    ),
    (
        "price",
        "Preço da limpeza dental",
        "A limpeza dental (profilaxia) custa R$ 180 e inclui a avaliação com o dentista.",
    ),
    (
        "service",
        "Clareamento dental",
        "Fazemos clareamento a laser em consultório (R$ 900) e caseiro com moldeira (R$ 650). Marque uma avaliação antes.",
    ),
    (
        "faq",
        "Convênios aceitos",
        "Aceitamos Amil Dental, Bradesco Dental e OdontoPrev. Traga a carteirinha e um documento com foto.",
    ),
    (
        "faq",
        "Como remarcar uma consulta",
        "Para remarcar, diga o novo dia e horário que prefere; confirmamos pela agenda. Pedimos 24 horas de antecedência.",
    ),
];

/// Sample patients writing in (through the real ingestion path, via the simulator channel).
const CONVERSATIONS: &[(&str, &str, &str, &str)] = &[
    (
        "demo-1",
        "5511900000101",
        "Mariana Souza",
        "Olá! Vocês abrem no sábado? Qual o horário?",
    ),
    (
        "demo-2",
        "5511900000102",
        "Carlos Lima",
        "Quanto custa uma limpeza?",
    ),
    (
        "demo-3",
        "5511900000103",
        "Fernanda Alves",
        "Preciso remarcar minha consulta de quinta, pode ser na sexta à tarde?",
    ),
    (
        "demo-4",
        "5511900000104",
        "João Pedro",
        "Vocês aceitam Bradesco Dental?",
    ),
];

/// Knowledge and sample conversations for the demo tenant; idempotent (fixed message ids).
async fn seed_content(state: &AppState, tenant_id: uuid::Uuid) -> anyhow::Result<()> {
    use crate::{
        db::{self, audit::Actor},
        domain::{
            knowledge::{KnowledgeEntry, KnowledgeKind},
            phone::Phone,
        },
        gateway::{InboundEvent, InboundMessage, MessageKind},
    };
    let now = state.now();
    let mut tx = db::begin_tenant(&state.db, tenant_id).await?;
    if db::ai::knowledge(&mut tx).await?.is_empty() {
        for (kind, title, body) in KNOWLEDGE {
            let e = KnowledgeEntry {
                id: uuid::Uuid::now_v7(),
                kind: KnowledgeKind::parse(kind).unwrap_or(KnowledgeKind::Other),
                title: (*title).to_owned(),
                body: (*body).to_owned(),
            };
            db::ai::insert_knowledge(&mut tx, tenant_id, &e, now).await?;
        }
    }
    tx.commit().await?;
    let messaging = Messaging::from_ref(state);
    let sim = crate::messaging::channel::simulator(&messaging, tenant_id, &Actor::system()).await?;
    // The demo's messages arrive through the real ingest path, on a queue of its own.
    let ingest = crate::wiring::App::new(state.clone()).ingest;
    for (i, (id, phone, name, text)) in CONVERSATIONS.iter().enumerate() {
        let msg = InboundMessage {
            account: "simulator".into(),
            external_id: (*id).to_owned(),
            chat_id: (*phone).to_owned(),
            is_group: false,
            sender_phone: Phone::try_from(*phone).ok(),
            sender_lid: None,
            sender_user_id: None,
            sender_name: Some((*name).to_owned()),
            from_me: false,
            echo: false,
            timestamp: now - time::Duration::minutes(40 - 10 * i as i64),
            kind: MessageKind::Text {
                body: (*text).to_owned(),
            },
            quoted_external_id: None,
            referral: None,
        };
        // A second `demo` skips them: the per-channel message id is already stored.
        crate::messaging::ingest::ingest(
            &messaging,
            &ingest,
            &sim,
            vec![InboundEvent::Message(msg)],
        )
        .await?;
    }
    Ok(())
}

/// Creates the demo tenant and owner unless they exist, and its sample content. Returns
/// whether it created the tenant.
pub(crate) async fn seed(state: &AppState) -> anyhow::Result<bool> {
    anyhow::ensure!(
        !state.config.is_production(),
        "refusing to create a demo tenant with a published password in production"
    );
    if db::users::user_by_email(&state.db, DEMO_EMAIL)
        .await?
        .is_some()
    {
        if let Some(t) = db::tenants::tenant_by_slug(&state.db, DEMO_SLUG).await? {
            seed_content(state, t.id).await?;
        }
        return Ok(false);
    }
    let created = accounts::sign_up(
        &crate::accounts::Accounts::from_ref(state),
        Signup {
            name: "Demo Owner",
            email: DEMO_EMAIL,
            password: DEMO_PASSWORD,
            business: "Clínica Demo",
            slug: DEMO_SLUG,
            plan: "clinic",
            accept_policy: true,
            language: "pt-BR",
        },
    )
    .await
    .map_err(|e| match e {
        FormError::Field(key) => anyhow::anyhow!("demo sign-up refused: {key}"),
        FormError::Internal(e) => e,
    })?;
    seed_content(state, created.tenant_id).await?;
    tracing::info!(tenant = %created.slug, "demo tenant created");
    Ok(true)
}
