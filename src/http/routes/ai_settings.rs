//! AI settings (provider, model, own key, fallback, instructions, tone, review policy) and
//! usage per day; and the knowledge the AI answers from.

use crate::messaging::Messaging;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::FromRef;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    response::Response,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::domain::review::Policy;
use crate::wiring::App;
use crate::{
    ai::ProviderKind,
    crypto::Aad,
    db::{self, ai as db_ai},
    domain::knowledge::{KnowledgeEntry, KnowledgeKind},
    error::{AppError, AppResult},
    http::{
        extract::{Admin, PageCtx, RequireRole, TenantCtx},
        form::FieldErrors,
        middleware::redirect_with_flash,
        routes::{auth::form_error, portal::Shell},
    },
    review::POLICIES,
    state::AppState,
};

pub(crate) fn router() -> Router<App> {
    Router::new()
        .route("/t/{slug}/ai", get(page).post(save))
        .route("/t/{slug}/knowledge", get(knowledge_page).post(add_entry))
        .route("/t/{slug}/knowledge/test", get(test_question))
        .route("/t/{slug}/knowledge/synonyms", post(save_synonyms))
        .route("/t/{slug}/knowledge/import", post(import_preview))
        .route("/t/{slug}/knowledge/import/save", post(import_save))
        .route("/t/{slug}/knowledge/{id}", post(edit_entry))
        .route("/t/{slug}/knowledge/{id}/delete", post(delete_entry))
        .route(
            "/t/{slug}/messages/{id}/to-knowledge",
            post(reply_to_knowledge),
        )
        .route("/t/{slug}/canned", get(canned_page).post(add_canned))
        .route("/t/{slug}/canned/{id}/delete", post(delete_canned))
}

pub(crate) const PROVIDERS: [&str; 6] = [
    "offline",
    "openai",
    "anthropic",
    "gemini",
    "groq",
    "openai_compatible",
];

pub(crate) struct UsageView {
    pub(crate) day: String,
    pub(crate) provider: String,
    pub(crate) calls: i32,
    pub(crate) failures: i32,
    pub(crate) drafts: i32,
    pub(crate) tokens: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "ai/settings.html")]
pub(crate) struct AiPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) base_url: String,
    pub(crate) has_key: bool,
    pub(crate) fallback_provider: String,
    pub(crate) fallback_model: String,
    pub(crate) instructions: String,
    pub(crate) tone: String,
    pub(crate) policy: String,
    pub(crate) daily_call_limit: String,
    pub(crate) undo_seconds: i32,
    pub(crate) providers: [&'static str; 6],
    pub(crate) policies: [&'static str; 3],
    pub(crate) usage: Vec<UsageView>,
    pub(crate) error: Option<&'static str>,
}

async fn load(state: &AppState, ctx: PageCtx, t: &TenantCtx) -> AppResult<AiPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let s = db_ai::settings(&mut tx).await?;
    let since = state.now().date() - time::Duration::days(30);
    let usage = db_ai::usage_since(&mut tx, since).await?;
    tx.commit().await?;
    Ok(AiPage {
        ctx,
        shell: Shell::load(state, t, "ai").await?,
        provider: s.provider,
        model: s.model,
        base_url: s.base_url.unwrap_or_default(),
        has_key: s.api_key_sealed.is_some(),
        fallback_provider: s.fallback_provider.unwrap_or_default(),
        fallback_model: s.fallback_model.unwrap_or_default(),
        instructions: s.instructions,
        tone: s.tone,
        policy: s.policy,
        daily_call_limit: s
            .daily_call_limit
            .map(|n| n.to_string())
            .unwrap_or_default(),
        undo_seconds: s.undo_seconds,
        providers: PROVIDERS,
        policies: POLICIES,
        usage: usage
            .into_iter()
            .map(|u| UsageView {
                day: u.day.to_string(),
                provider: u.provider,
                calls: u.calls,
                failures: u.failures,
                drafts: u.drafts,
                tokens: format!("{} / {}", u.input_tokens, u.output_tokens),
            })
            .collect(),
        error: None,
    })
}

async fn page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
) -> AppResult<AiPage> {
    load(&state, ctx, &t).await
}

#[derive(Deserialize)]
pub(crate) struct AiForm {
    provider: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    base_url: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    clear_key: Option<String>,
    #[serde(default)]
    fallback_provider: String,
    #[serde(default)]
    fallback_model: String,
    #[serde(default)]
    instructions: String,
    #[serde(default)]
    tone: String,
    policy: String,
    #[serde(default)]
    daily_call_limit: String,
    /// Empty (an older form): the default window.
    #[serde(default)]
    undo_seconds: String,
}

impl AiForm {
    fn undo_seconds(&self) -> Option<i32> {
        match self.undo_seconds.trim() {
            "" => Some(db_ai::DEFAULT_UNDO_SECONDS),
            s => s.parse().ok().filter(|n| (0..=60).contains(n)),
        }
    }
}

async fn validate(state: &AppState, f: &AiForm) -> Result<(), &'static str> {
    let kind: ProviderKind = f.provider.parse().map_err(|_| "ai.provider.invalid")?;
    if Policy::parse(&f.policy).is_none() {
        return Err("ai.policy.invalid");
    }
    if kind != ProviderKind::Offline && f.model.trim().is_empty() {
        return Err("ai.model.required");
    }
    if kind == ProviderKind::OpenAiCompatible && f.base_url.trim().is_empty() {
        return Err("ai.base_url.required");
    }
    if !f.base_url.trim().is_empty() {
        crate::messaging::channel::check_gateway_url(&Messaging::from_ref(state), &f.base_url)
            .await?;
    }
    if f.instructions.chars().count() > 4000
        || f.tone.chars().count() > 200
        || f.model.chars().count() > 100
    {
        return Err("error.too_large");
    }
    if !f.fallback_provider.is_empty() && f.fallback_provider.parse::<ProviderKind>().is_err() {
        return Err("ai.provider.invalid");
    }
    if !f.daily_call_limit.trim().is_empty()
        && f.daily_call_limit
            .trim()
            .parse::<u32>()
            .map_or(true, |n| n == 0)
    {
        return Err("ai.limit.invalid");
    }
    if f.undo_seconds().is_none() {
        return Err("ai.undo_seconds.invalid");
    }
    Ok(())
}

async fn save(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<AiForm>,
) -> AppResult<Response> {
    if let Err(key) = validate(&state, &f).await {
        let mut page = load(&state, ctx, &t).await?;
        page.error = Some(key);
        return Ok(form_error(page));
    }
    let tenant = t.id();
    let now = state.now();
    let api_key_sealed = match f.api_key.trim() {
        "" => None,
        k => Some(
            state
                .keys
                .seal_tenant_str(tenant, Aad::new("ai_settings", "api_key", tenant), k)
                .await?,
        ),
    };
    let opt = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let s = db_ai::AiSettings {
        provider: f.provider.clone(),
        model: f.model.trim().to_owned(),
        base_url: opt(&f.base_url),
        api_key_sealed,
        fallback_provider: opt(&f.fallback_provider),
        fallback_model: opt(&f.fallback_model),
        instructions: f.instructions.trim().to_owned(),
        tone: f.tone.trim().to_owned(),
        policy: f.policy.clone(),
        daily_call_limit: f.daily_call_limit.trim().parse().ok(),
        undo_seconds: f.undo_seconds().unwrap_or(db_ai::DEFAULT_UNDO_SECONDS),
    };
    let mut tx = t.begin_at(&state, now).await?;
    db_ai::save_settings(&mut tx, tenant, &s, f.clear_key.is_some(), now).await?;
    // Which provider and policy — never the key.
    tx.audit(
        "ai.settings_changed",
        &s.provider,
        json!({ "model": s.model, "policy": s.policy, "own_key": f.api_key.trim() != "" }),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/ai", t.tenant.slug),
        true,
        "settings.saved",
    ))
}

// ---- knowledge ----

#[derive(Template, WebTemplate)]
#[template(path = "ai/knowledge.html")]
pub(crate) struct KnowledgePage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) entries: Vec<KnowledgeEntry>,
    pub(crate) kinds: [KnowledgeKind; 5],
    pub(crate) error: Option<&'static str>,
    /// The tenant's synonym groups, one per line.
    pub(crate) synonyms: String,
    /// The result of "test a question", when one was asked.
    pub(crate) test: Option<TestView>,
    /// Entries read from an import, waiting for the admin's review.
    pub(crate) import: Vec<crate::domain::knowledge_import::Draft>,
    /// A refused add or edit: its errors, each beside its field, and which entry it was
    /// (`None`: the new-entry form, which then shows what was typed).
    pub(crate) errors: FieldErrors,
    pub(crate) editing: Option<Uuid>,
    /// A note about the page's state (e.g. the form was filled in from a reply).
    pub(crate) notice: Option<&'static str>,
    pub(crate) new_kind: String,
    pub(crate) new_title: String,
    pub(crate) new_body: String,
}

impl KnowledgePage {
    /// Whether this entry's edit was just refused (its form shows the errors).
    pub(crate) fn is_editing(&self, id: &Uuid) -> bool {
        self.editing.as_ref() == Some(id)
    }
}

/// What the offline answerer would do with a question, and why.
pub(crate) struct TestView {
    pub(crate) question: String,
    /// The entries that would answer (titles), empty when it would not answer.
    pub(crate) answers: Vec<String>,
    /// Why it would not answer (an escalation code), or "greeting".
    pub(crate) reason: String,
    pub(crate) terms: String,
    pub(crate) rows: Vec<TestRow>,
}

pub(crate) struct TestRow {
    pub(crate) title: String,
    pub(crate) score: String,
    pub(crate) coverage: String,
    pub(crate) matched: String,
}

/// The longest question the test box takes.
const MAX_TEST_QUESTION: usize = 1_000;
/// The longest synonym list (matches the column's check).
const MAX_SYNONYMS: usize = 8_000;

async fn load_knowledge(state: &AppState, ctx: PageCtx, t: &TenantCtx) -> AppResult<KnowledgePage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let entries = db_ai::knowledge(&mut tx).await?;
    let synonyms = db_ai::synonyms(&mut tx).await?;
    tx.commit().await?;
    Ok(KnowledgePage {
        ctx,
        shell: Shell::load(state, t, "knowledge").await?,
        entries,
        kinds: [
            KnowledgeKind::Faq,
            KnowledgeKind::Hours,
            KnowledgeKind::Service,
            KnowledgeKind::Price,
            KnowledgeKind::Other,
        ],
        error: None,
        synonyms,
        test: None,
        import: Vec::new(),
        errors: FieldErrors::default(),
        editing: None,
        notice: None,
        new_kind: String::new(),
        new_title: String::new(),
        new_body: String::new(),
    })
}

#[derive(Deserialize)]
pub(crate) struct TestQuery {
    #[serde(default)]
    q: String,
}

/// "Test a question": which entry would answer, its score and the words that matched.
async fn test_question(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Query(q): Query<TestQuery>,
) -> AppResult<Response> {
    use crate::ai::{offline, text::Synonyms};
    let question = q.q.trim().to_owned();
    if question.is_empty() || question.chars().count() > MAX_TEST_QUESTION {
        tracing::warn!(
            chars = question.chars().count(),
            "knowledge test question refused"
        );
        return refuse(&state, ctx, &t, "knowledge.test_invalid").await;
    }
    let mut page = load_knowledge(&state, ctx, &t).await?;
    let lang = page.ctx.tr.lang();
    let synonyms = Synonyms::parse(&page.synonyms);
    let e = offline::explain(&question, &page.entries, lang, &synonyms);
    let (answers, reason) = match &e.outcome {
        offline::OfflineOutcome::Answer { entry_ids, .. } => (
            entry_ids
                .iter()
                .filter_map(|id| page.entries.iter().find(|k| k.id == *id))
                .map(|k| k.title.clone())
                .collect(),
            String::new(),
        ),
        offline::OfflineOutcome::Greeting { .. } => (Vec::new(), "greeting".to_owned()),
        offline::OfflineOutcome::Escalate { reason } => (Vec::new(), reason.code().to_owned()),
    };
    let rows = e
        .ranked
        .iter()
        .map(|r| TestRow {
            title: r.entry.title.clone(),
            score: format!("{:.2}", r.score),
            coverage: format!("{:.0}%", 100.0 * r.coverage),
            matched: r.matched.join(", "),
        })
        .collect();
    let terms = e.terms.join(", ");
    page.test = Some(TestView {
        question,
        answers,
        reason,
        terms,
        rows,
    });
    Ok(axum::response::IntoResponse::into_response(page))
}

#[derive(Deserialize)]
pub(crate) struct ImportForm {
    format: String,
    #[serde(default)]
    text: String,
}

/// Import, step 1: the pasted CSV, Markdown or text becomes entries shown for review;
/// nothing is saved yet.
async fn import_preview(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<ImportForm>,
) -> AppResult<Response> {
    use crate::domain::knowledge_import::{self as import, Format};
    let Some(format) = Format::parse(&f.format) else {
        tracing::warn!("knowledge import with an unknown format");
        return refuse(&state, ctx, &t, "knowledge.import_invalid").await;
    };
    let drafts = import::parse(&f.text, format);
    if drafts.is_empty() {
        tracing::warn!(
            chars = f.text.chars().count(),
            "knowledge import found no entries"
        );
        return refuse(&state, ctx, &t, "knowledge.import_empty").await;
    }
    let mut page = load_knowledge(&state, ctx, &t).await?;
    page.import = drafts;
    Ok(axum::response::IntoResponse::into_response(page))
}

/// Import, step 2: the entries the admin kept (edited or not) are saved.
async fn import_save(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(fields): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    use crate::domain::knowledge_import::MAX_ENTRIES;
    let get = |k: &str| {
        fields
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    let mut entries = Vec::new();
    for i in 0..MAX_ENTRIES {
        if get(&format!("keep_{i}")).as_deref() != Some("1") {
            continue;
        }
        let form = EntryForm {
            kind: get(&format!("kind_{i}")).unwrap_or_default(),
            title: get(&format!("title_{i}")).unwrap_or_default(),
            body: get(&format!("body_{i}")).unwrap_or_default(),
        };
        match parse_entry(Uuid::now_v7(), &form) {
            Ok(e) => entries.push(e),
            Err(key) => {
                tracing::warn!(row = i, "knowledge import row refused");
                return refuse(&state, ctx, &t, key).await;
            }
        }
    }
    if entries.is_empty() {
        tracing::warn!("knowledge import saved with no entry kept");
        return refuse(&state, ctx, &t, "knowledge.import_empty").await;
    }
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    for e in &entries {
        db_ai::insert_knowledge(&mut tx, t.id(), e, now).await?;
    }
    tx.audit(
        "knowledge.imported",
        "",
        json!({ "entries": entries.len() }),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/knowledge", t.tenant.slug),
        true,
        "knowledge.saved",
    ))
}

#[derive(Deserialize)]
pub(crate) struct SynonymsForm {
    #[serde(default)]
    synonyms: String,
}

async fn save_synonyms(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<SynonymsForm>,
) -> AppResult<Response> {
    let body = f.synonyms.trim().replace("\r\n", "\n");
    if body.chars().count() > MAX_SYNONYMS {
        tracing::warn!(chars = body.chars().count(), "synonym list refused");
        return refuse(&state, ctx, &t, "knowledge.synonyms_invalid").await;
    }
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    db_ai::set_synonyms(&mut tx, t.id(), &body, now).await?;
    tx.audit(
        "knowledge.synonyms_saved",
        "",
        json!({ "lines": body.lines().count() }),
    )
    .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/knowledge", t.tenant.slug),
        true,
        "knowledge.saved",
    ))
}

async fn knowledge_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
) -> AppResult<KnowledgePage> {
    load_knowledge(&state, ctx, &t).await
}

#[derive(Deserialize)]
pub(crate) struct EntryForm {
    kind: String,
    title: String,
    body: String,
}

fn parse_entry(id: Uuid, f: &EntryForm) -> Result<KnowledgeEntry, &'static str> {
    check_entry(id, f).map_err(|_| "knowledge.invalid")
}

/// An entry as submitted, with every field's error at once.
fn check_entry(id: Uuid, f: &EntryForm) -> Result<KnowledgeEntry, FieldErrors> {
    let mut errors = FieldErrors::default();
    let kind = KnowledgeKind::parse(&f.kind);
    if kind.is_none() {
        errors.add("kind", "knowledge.kind.invalid");
    }
    let (title, body) = (f.title.trim(), f.body.trim());
    errors.check(
        "title",
        required_text(
            title,
            200,
            ("knowledge.title.required", "knowledge.title.long"),
        ),
    );
    errors.check(
        "body",
        required_text(
            body,
            8000,
            ("knowledge.body.required", "knowledge.body.long"),
        ),
    );
    match kind {
        Some(kind) if errors.is_empty() => Ok(KnowledgeEntry {
            id,
            kind,
            title: title.to_owned(),
            body: body.to_owned(),
        }),
        _ => Err(errors),
    }
}

/// "Save as knowledge" from a reply staff edited before approving: the knowledge page with
/// the new-entry form filled in (the customer's question as title, the reply as it was sent
/// as answer) for the admin to check and save. Nothing is stored by this request; it is a
/// POST so the texts never travel in a URL.
async fn reply_to_knowledge(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let tenant = t.id();
    let mut tx = db::begin_tenant(&state.db, tenant).await?;
    let reply = db::messages::get(&mut tx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let question = match db_ai::question_of_reply(&mut tx, id).await? {
        Some(q) => db::messages::get(&mut tx, q).await?,
        None => None,
    };
    tx.commit().await?;
    let open = |m: &db::messages::Message| {
        let state = &state;
        let (contact, id, sealed) = (m.contact_id, m.id, m.body_sealed.clone());
        async move {
            match sealed {
                Some(s) => state
                    .keys
                    .open_str(tenant, contact, Aad::new("messages", "body", id), &s)
                    .await
                    .ok(),
                None => None,
            }
        }
    };
    let Some(answer) = open(&reply).await else {
        return Err(AppError::NotFound);
    };
    let title = match &question {
        Some(q) => open(q).await.unwrap_or_default(),
        None => String::new(),
    };
    let mut page = load_knowledge(&state, ctx, &t).await?;
    page.new_kind = KnowledgeKind::Faq.as_str().to_owned();
    page.new_title = title
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect();
    page.new_body = answer.chars().take(8000).collect();
    page.notice = Some("knowledge.from_reply");
    Ok(axum::response::IntoResponse::into_response(page))
}

/// Shows the page again with a refused entry's errors beside its fields and what was typed
/// in them (in the new-entry form, or in the entry being edited).
async fn refuse_entry(
    state: &AppState,
    ctx: PageCtx,
    t: &TenantCtx,
    editing: Option<Uuid>,
    f: &EntryForm,
    errors: FieldErrors,
) -> AppResult<Response> {
    let mut page = load_knowledge(state, ctx, t).await?;
    let typed = |s: &str, max: usize| s.chars().take(max).collect::<String>();
    match editing {
        None => {
            page.new_kind = f.kind.clone();
            page.new_title = typed(&f.title, 400);
            page.new_body = typed(&f.body, 16_000);
        }
        Some(id) => {
            if let Some(e) = page.entries.iter_mut().find(|e| e.id == id) {
                e.title = typed(&f.title, 400);
                e.body = typed(&f.body, 16_000);
                if let Some(k) = KnowledgeKind::parse(&f.kind) {
                    e.kind = k;
                }
            }
        }
    }
    page.errors = errors;
    page.editing = editing;
    Ok(form_error(page))
}

async fn refuse(
    state: &AppState,
    ctx: PageCtx,
    t: &TenantCtx,
    key: &'static str,
) -> AppResult<Response> {
    let mut page = load_knowledge(state, ctx, t).await?;
    page.error = Some(key);
    Ok(form_error(page))
}

async fn add_entry(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<EntryForm>,
) -> AppResult<Response> {
    let e = match check_entry(Uuid::now_v7(), &f) {
        Ok(e) => e,
        Err(errors) => return refuse_entry(&state, ctx, &t, None, &f, errors).await,
    };
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    db_ai::insert_knowledge(&mut tx, t.id(), &e, now).await?;
    tx.audit("knowledge.added", &e.title, json!({ "id": e.id }))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/knowledge", t.tenant.slug),
        true,
        "knowledge.saved",
    ))
}

async fn edit_entry(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
    Form(f): Form<EntryForm>,
) -> AppResult<Response> {
    let e = match check_entry(id, &f) {
        Ok(e) => e,
        Err(errors) => return refuse_entry(&state, ctx, &t, Some(id), &f, errors).await,
    };
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !db_ai::update_knowledge(&mut tx, &e, now).await? {
        return Err(AppError::NotFound);
    }
    tx.audit("knowledge.edited", &e.title, json!({ "id": e.id }))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/knowledge", t.tenant.slug),
        true,
        "knowledge.saved",
    ))
}

async fn delete_entry(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !db_ai::delete_knowledge(&mut tx, id).await? {
        return Err(AppError::NotFound);
    }
    tx.audit("knowledge.deleted", &id.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/knowledge", t.tenant.slug),
        true,
        "knowledge.deleted",
    ))
}

// ---- canned replies ----

#[derive(Template, WebTemplate)]
#[template(path = "ai/canned.html")]
pub(crate) struct CannedPage {
    pub(crate) ctx: PageCtx,
    pub(crate) shell: Shell,
    pub(crate) replies: Vec<db::canned::Canned>,
    pub(crate) errors: FieldErrors,
    /// What was typed into the new-reply form, kept when it is refused.
    pub(crate) title: String,
    pub(crate) body: String,
}

async fn load_canned(state: &AppState, ctx: PageCtx, t: &TenantCtx) -> AppResult<CannedPage> {
    let mut tx = db::begin_tenant(&state.db, t.id()).await?;
    let replies = db::canned::list(&mut tx).await?;
    tx.commit().await?;
    Ok(CannedPage {
        ctx,
        shell: Shell::load(state, t, "canned").await?,
        replies,
        errors: FieldErrors::default(),
        title: String::new(),
        body: String::new(),
    })
}

async fn canned_page(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
) -> AppResult<CannedPage> {
    load_canned(&state, ctx, &t).await
}

#[derive(Deserialize)]
pub(crate) struct CannedForm {
    title: String,
    body: String,
}

async fn add_canned(
    State(state): State<AppState>,
    ctx: PageCtx,
    t: RequireRole<Admin>,
    Form(f): Form<CannedForm>,
) -> AppResult<Response> {
    let (title, body) = (f.title.trim(), f.body.trim());
    let mut errors = FieldErrors::default();
    errors.check(
        "title",
        required_text(title, 80, ("canned.title.required", "canned.title.long")),
    );
    errors.check(
        "body",
        required_text(body, 4000, ("canned.body.required", "canned.body.long")),
    );
    if !errors.is_empty() {
        let mut page = load_canned(&state, ctx, &t).await?;
        page.errors = errors;
        page.title = f.title.chars().take(200).collect();
        page.body = f.body.chars().take(8000).collect();
        return Ok(form_error(page));
    }
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    let id = db::canned::insert(&mut tx, t.id(), title, body, now).await?;
    tx.audit("canned.added", title, json!({ "id": id })).await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/canned", t.tenant.slug),
        true,
        "canned.saved",
    ))
}

async fn delete_canned(
    State(state): State<AppState>,
    t: RequireRole<Admin>,
    Path((_s, id)): Path<(String, Uuid)>,
) -> AppResult<Response> {
    let now = state.now();
    let mut tx = t.begin_at(&state, now).await?;
    if !db::canned::delete(&mut tx, id).await? {
        return Err(AppError::NotFound);
    }
    tx.audit("canned.deleted", &id.to_string(), json!({}))
        .await?;
    tx.commit().await?;
    Ok(redirect_with_flash(
        &format!("/t/{}/canned", t.tenant.slug),
        true,
        "canned.deleted",
    ))
}

/// A required text of at most `max` characters; the error names which rule it broke.
fn required_text(
    text: &str,
    max: usize,
    (empty, long): (&'static str, &'static str),
) -> Result<(), &'static str> {
    if text.is_empty() {
        Err(empty)
    } else if text.chars().count() > max {
        Err(long)
    } else {
        Ok(())
    }
}
