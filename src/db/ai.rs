//! AI settings, knowledge entries, drafts, data recipients and usage.

use serde_json::Value;
use sqlx::PgConnection;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::domain::knowledge::{KnowledgeEntry, KnowledgeKind};

#[derive(Clone, Debug)]
pub(crate) struct AiSettings {
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) base_url: Option<String>,
    pub(crate) api_key_sealed: Option<Vec<u8>>,
    pub(crate) fallback_provider: Option<String>,
    pub(crate) fallback_model: Option<String>,
    pub(crate) instructions: String,
    pub(crate) tone: String,
    pub(crate) policy: String,
    pub(crate) daily_call_limit: Option<i32>,
    /// Seconds an approved reply waits (and can be undone) before it is sent.
    pub(crate) undo_seconds: i32,
}

impl Default for AiSettings {
    fn default() -> Self {
        AiSettings {
            provider: "offline".into(),
            model: String::new(),
            base_url: None,
            api_key_sealed: None,
            fallback_provider: None,
            fallback_model: None,
            instructions: String::new(),
            tone: String::new(),
            policy: "review_all".into(),
            daily_call_limit: None,
            undo_seconds: DEFAULT_UNDO_SECONDS,
        }
    }
}

/// The tenant's AI settings (defaults when never saved: offline answerer, review all).
/// The undo window for tenants that never saved AI settings (the column's default).
pub(crate) const DEFAULT_UNDO_SECONDS: i32 = 10;

pub(crate) async fn settings(conn: &mut PgConnection) -> sqlx::Result<AiSettings> {
    let row = sqlx::query_as!(
        AiSettings,
        r#"SELECT provider, model, base_url, api_key_sealed, fallback_provider, fallback_model,
                  instructions, tone, policy, daily_call_limit, undo_seconds
           FROM ai_settings WHERE tenant_id = app_current_tenant()"#
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.unwrap_or_default())
}

/// Saves settings. `api_key_sealed: None` keeps the stored key (`clear_key` removes it).
pub(crate) async fn save_settings(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    s: &AiSettings,
    clear_key: bool,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO ai_settings (tenant_id, provider, model, base_url, api_key_sealed, fallback_provider, fallback_model,
                                    instructions, tone, policy, daily_call_limit, updated_at, undo_seconds)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $14)
           ON CONFLICT (tenant_id) DO UPDATE SET
             provider = EXCLUDED.provider, model = EXCLUDED.model, base_url = EXCLUDED.base_url,
             api_key_sealed = CASE WHEN $13 THEN NULL ELSE COALESCE(EXCLUDED.api_key_sealed, ai_settings.api_key_sealed) END,
             fallback_provider = EXCLUDED.fallback_provider, fallback_model = EXCLUDED.fallback_model,
             instructions = EXCLUDED.instructions, tone = EXCLUDED.tone, policy = EXCLUDED.policy,
             daily_call_limit = EXCLUDED.daily_call_limit, updated_at = EXCLUDED.updated_at,
             undo_seconds = EXCLUDED.undo_seconds"#,
        tenant_id,
        s.provider,
        s.model,
        s.base_url,
        s.api_key_sealed,
        s.fallback_provider,
        s.fallback_model,
        s.instructions,
        s.tone,
        s.policy,
        s.daily_call_limit,
        now,
        clear_key,
        s.undo_seconds
    )
    .execute(conn)
    .await?;
    Ok(())
}

// ---- knowledge ----

struct KnowledgeRow {
    id: Uuid,
    kind: String,
    title: String,
    body: String,
}

pub(crate) async fn knowledge(conn: &mut PgConnection) -> sqlx::Result<Vec<KnowledgeEntry>> {
    let rows = sqlx::query_as!(
        KnowledgeRow,
        "SELECT id, kind, title, body FROM knowledge_entries ORDER BY created_at, id"
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| KnowledgeEntry {
            id: r.id,
            kind: KnowledgeKind::parse(&r.kind).unwrap_or(KnowledgeKind::Other),
            title: r.title,
            body: r.body,
        })
        .collect())
}

pub(crate) async fn insert_knowledge(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    e: &KnowledgeEntry,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO knowledge_entries (id, tenant_id, kind, title, body, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
        e.id,
        tenant_id,
        e.kind.as_str(),
        e.title,
        e.body,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn update_knowledge(
    conn: &mut PgConnection,
    e: &KnowledgeEntry,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        "UPDATE knowledge_entries SET kind = $2, title = $3, body = $4, updated_at = $5 WHERE id = $1",
        e.id,
        e.kind.as_str(),
        e.title,
        e.body,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn delete_knowledge(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let r = sqlx::query!("DELETE FROM knowledge_entries WHERE id = $1", id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

// ---- drafts ----

#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct Draft {
    pub(crate) id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) contact_id: Uuid,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) reply_to_message_id: Uuid,
    pub(crate) state: String,
    pub(crate) original_sealed: Option<Vec<u8>>,
    pub(crate) final_sealed: Option<Vec<u8>>,
    pub(crate) escalation_reason: Option<String>,
    pub(crate) provider: String,
    pub(crate) model: String,
    pub(crate) prompt_version: String,
    pub(crate) knowledge_ids: Vec<Uuid>,
    pub(crate) input_tokens: i32,
    pub(crate) output_tokens: i32,
    pub(crate) latency_ms: i32,
    #[expect(dead_code, reason = "read by no caller yet; kept with its column")]
    pub(crate) auto_sent: bool,
    pub(crate) decided_by: Option<Uuid>,
    pub(crate) decided_at: Option<OffsetDateTime>,
    pub(crate) reject_reason: Option<String>,
    pub(crate) edited: bool,
    pub(crate) sent_message_id: Option<Uuid>,
    pub(crate) created_at: OffsetDateTime,
    /// A message its context held was later edited or deleted (`edited` / `deleted`).
    pub(crate) source_changed: Option<String>,
}

pub(crate) struct NewDraft<'a> {
    pub(crate) id: Uuid,
    pub(crate) tenant_id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) reply_to_message_id: Uuid,
    pub(crate) state: &'a str,
    pub(crate) original_sealed: Option<Vec<u8>>,
    pub(crate) escalation_reason: Option<&'a str>,
    pub(crate) provider: &'a str,
    pub(crate) model: &'a str,
    pub(crate) prompt_version: &'a str,
    pub(crate) knowledge_ids: Vec<Uuid>,
    pub(crate) input_tokens: i32,
    pub(crate) output_tokens: i32,
    pub(crate) latency_ms: i32,
}

/// Stores a draft, superseding the conversation's older pending one. `false` when this
/// inbound turn already has a draft (the job ran twice).
pub(crate) async fn insert_draft(
    conn: &mut PgConnection,
    d: NewDraft<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    // A draft set aside by "regenerate" (superseded) leaves the turn open for a new one.
    let exists: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM drafts WHERE reply_to_message_id = $1 AND state <> 'superseded'",
    )
    .bind(d.reply_to_message_id)
    .fetch_optional(&mut *conn)
    .await?;
    if exists.is_some() {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE drafts SET state = 'superseded', decided_at = $2 WHERE conversation_id = $1 AND state = 'pending'",
        d.conversation_id,
        now
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        r#"INSERT INTO drafts (id, tenant_id, conversation_id, contact_id, reply_to_message_id, state, original_sealed,
                               escalation_reason, provider, model, prompt_version, knowledge_ids, input_tokens,
                               output_tokens, latency_ms, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"#,
        d.id,
        d.tenant_id,
        d.conversation_id,
        d.contact_id,
        d.reply_to_message_id,
        d.state,
        d.original_sealed,
        d.escalation_reason,
        d.provider,
        d.model,
        d.prompt_version,
        &d.knowledge_ids,
        d.input_tokens,
        d.output_tokens,
        d.latency_ms,
        now
    )
    .execute(conn)
    .await?;
    Ok(true)
}

pub(crate) async fn get_draft(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Draft>> {
    sqlx::query_as!(
        Draft,
        r#"SELECT id, conversation_id, contact_id, reply_to_message_id, state, original_sealed, final_sealed,
                  escalation_reason, provider, model, prompt_version, knowledge_ids, input_tokens, output_tokens,
                  latency_ms, auto_sent, decided_by, decided_at, reject_reason, edited, sent_message_id, created_at,
                  source_changed
           FROM drafts WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// The review queue: pending and escalated drafts, oldest first.
pub(crate) async fn queue_count(conn: &mut PgConnection) -> sqlx::Result<i64> {
    // Through `drafts_waiting` (partial: waiting drafts only).
    sqlx::query_scalar(
        "SELECT count(*) FROM drafts
         WHERE tenant_id = app_current_tenant() AND state IN ('pending', 'escalated')",
    )
    .fetch_one(conn)
    .await
}

/// Decides a draft once: only a pending (or escalated) draft moves. `false` when someone
/// else decided first — so a double click or two reviewers send once.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn decide(
    conn: &mut PgConnection,
    id: Uuid,
    state: &str,
    by: Option<Uuid>,
    final_sealed: Option<&[u8]>,
    edited: bool,
    reject_reason: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let r = sqlx::query!(
        r#"UPDATE drafts SET state = $2, decided_by = $3, decided_at = $4, final_sealed = $5, edited = $6, reject_reason = $7
           WHERE id = $1 AND state IN ('pending', 'escalated')"#,
        id,
        state,
        by,
        now,
        final_sealed,
        edited,
        reject_reason
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Takes back an approval whose reply has not left: the queued message is deleted (so its
/// send job finds nothing) and the draft waits for review again. False when the send has
/// started (the job claimed the message first) or the draft is no longer approved.
pub(crate) async fn undo_approval(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<bool> {
    let gone = sqlx::query!(
        r#"DELETE FROM messages m USING drafts d
           WHERE d.id = $1 AND d.state = 'approved' AND m.id = d.sent_message_id
             AND m.direction = 'out' AND m.status = 'queued'"#,
        id
    )
    .execute(&mut *conn)
    .await?;
    if gone.rows_affected() != 1 {
        return Ok(false);
    }
    // Back in the queue, unless a newer turn already has its own pending draft.
    let r = sqlx::query!(
        r#"UPDATE drafts SET
             state = CASE WHEN EXISTS (SELECT 1 FROM drafts o WHERE o.tenant_id = drafts.tenant_id
                          AND o.conversation_id = drafts.conversation_id AND o.state = 'pending')
                     THEN 'superseded' ELSE 'pending' END,
             decided_by = NULL, decided_at = NULL, final_sealed = NULL, edited = false, sent_message_id = NULL
           WHERE id = $1 AND state = 'approved'"#,
        id
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Which of these outbound messages were approved drafts, and whether staff edited them.
pub(crate) async fn edited_by_message(
    conn: &mut PgConnection,
    message_ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, bool)>> {
    let rows = sqlx::query!(
        r#"SELECT sent_message_id AS "id!", edited FROM drafts
           WHERE sent_message_id = ANY($1) AND state = 'approved'"#,
        message_ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.edited)).collect())
}

pub(crate) async fn set_sent(
    conn: &mut PgConnection,
    id: Uuid,
    message_id: Uuid,
    auto: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE drafts SET sent_message_id = $2, auto_sent = $3 WHERE id = $1",
        id,
        message_id,
        auto
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Drafts awaiting review (or escalated) that were written after `since` (so their context held a message
/// that has now been edited or deleted) are flagged for the reviewer.
pub(crate) async fn flag_source_changed(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    since: OffsetDateTime,
    what: &str,
) -> sqlx::Result<u64> {
    let r = sqlx::query!(
        r#"UPDATE drafts SET source_changed = CASE WHEN source_changed = 'deleted' THEN source_changed ELSE $3 END
           WHERE conversation_id = $1 AND state IN ('pending', 'escalated') AND created_at >= $2"#,
        conversation_id,
        since,
        what
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// Pending drafts of a conversation stop being offered (staff took over).
pub(crate) async fn supersede_pending(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    let r = sqlx::query!(
        "UPDATE drafts SET state = 'superseded', decided_at = $2 WHERE conversation_id = $1 AND state IN ('pending', 'escalated')",
        conversation_id,
        now
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

// ---- recipients and usage ----

/// Records that `name` (an AI provider or MCP server) received this contact's data.
pub(crate) async fn record_recipient(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    contact_id: Uuid,
    kind: &str,
    name: &str,
    detail: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO data_recipients (tenant_id, contact_id, kind, name, detail, first_at, last_at)
           VALUES ($1, $2, $3, $4, $5, $6, $6)
           ON CONFLICT (tenant_id, contact_id, kind, name)
           DO UPDATE SET last_at = EXCLUDED.last_at, detail = EXCLUDED.detail, times = data_recipients.times + 1"#,
        tenant_id,
        contact_id,
        kind,
        name,
        detail,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug)]
pub(crate) struct Recipient {
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) detail: String,
    pub(crate) first_at: OffsetDateTime,
    pub(crate) last_at: OffsetDateTime,
    pub(crate) times: i32,
}

pub(crate) async fn recipients(
    conn: &mut PgConnection,
    contact_id: Uuid,
) -> sqlx::Result<Vec<Recipient>> {
    sqlx::query_as!(
        Recipient,
        "SELECT kind, name, detail, first_at, last_at, times FROM data_recipients WHERE contact_id = $1 ORDER BY kind, name",
        contact_id
    )
    .fetch_all(conn)
    .await
}

pub(crate) struct UsageDelta<'a> {
    pub(crate) provider: &'a str,
    pub(crate) calls: i32,
    pub(crate) failures: i32,
    pub(crate) drafts: i32,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
}

pub(crate) async fn add_usage(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    day: Date,
    u: UsageDelta<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"INSERT INTO ai_usage (tenant_id, day, provider, calls, failures, drafts, input_tokens, output_tokens)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (tenant_id, day, provider) DO UPDATE SET
             calls = ai_usage.calls + EXCLUDED.calls, failures = ai_usage.failures + EXCLUDED.failures,
             drafts = ai_usage.drafts + EXCLUDED.drafts,
             input_tokens = ai_usage.input_tokens + EXCLUDED.input_tokens,
             output_tokens = ai_usage.output_tokens + EXCLUDED.output_tokens"#,
        tenant_id,
        day,
        u.provider,
        u.calls,
        u.failures,
        u.drafts,
        u.input_tokens,
        u.output_tokens
    )
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(Clone, Debug)]
pub(crate) struct UsageRow {
    pub(crate) day: Date,
    pub(crate) provider: String,
    pub(crate) calls: i32,
    pub(crate) failures: i32,
    pub(crate) drafts: i32,
    pub(crate) input_tokens: i64,
    pub(crate) output_tokens: i64,
}

pub(crate) async fn usage_since(
    conn: &mut PgConnection,
    since: Date,
) -> sqlx::Result<Vec<UsageRow>> {
    sqlx::query_as!(
        UsageRow,
        "SELECT day, provider, calls, failures, drafts, input_tokens, output_tokens FROM ai_usage WHERE day >= $1 ORDER BY day DESC, provider",
        since
    )
    .fetch_all(conn)
    .await
}

/// Drafts made since `since` (the plan's monthly AI message limit counts these).
pub(crate) async fn drafts_since(conn: &mut PgConnection, since: Date) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(drafts), 0)::bigint AS "n!" FROM ai_usage WHERE day >= $1"#,
        since
    )
    .fetch_one(conn)
    .await
}

pub(crate) async fn calls_on(conn: &mut PgConnection, day: Date) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(sum(calls), 0)::bigint AS "n!" FROM ai_usage WHERE day = $1"#,
        day
    )
    .fetch_one(conn)
    .await
}

/// Flags a stored escalation (and its conversation) urgent, or clears the conversation's
/// flag for a non-urgent one.
pub(crate) async fn set_urgent(
    conn: &mut PgConnection,
    draft_id: Uuid,
    conversation_id: Uuid,
    urgent: bool,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE drafts SET urgent = $2 WHERE id = $1")
        .bind(draft_id)
        .bind(urgent)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE conversations SET urgent = $2 WHERE id = $1")
        .bind(conversation_id)
        .bind(urgent)
        .execute(conn)
        .await?;
    Ok(())
}

/// The conversations among `ids` flagged urgent that still need a person.
pub(crate) async fn urgent_conversations(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM conversations WHERE id = ANY($1) AND urgent AND attention IS NOT NULL",
    )
    .bind(ids)
    .fetch_all(conn)
    .await
}

/// The tenant's synonym list for knowledge retrieval (one group per line), "" when none.
pub(crate) async fn synonyms(conn: &mut PgConnection) -> sqlx::Result<String> {
    Ok(
        sqlx::query_scalar::<_, String>("SELECT body FROM knowledge_synonyms LIMIT 1")
            .fetch_optional(conn)
            .await?
            .unwrap_or_default(),
    )
}

/// Replaces the tenant's synonym list.
pub(crate) async fn set_synonyms(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    body: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO knowledge_synonyms (tenant_id, body, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE SET body = EXCLUDED.body, updated_at = EXCLUDED.updated_at",
    )
    .bind(tenant_id)
    .bind(body)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn set_attention(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE conversations SET attention = $2, attention_at = CASE WHEN $2::text IS NULL THEN NULL ELSE $3::timestamptz END WHERE id = $1",
        conversation_id,
        reason,
        now
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The inbound message an approved reply answered (the draft that became `sent_message_id`).
pub(crate) async fn question_of_reply(
    conn: &mut PgConnection,
    sent_message_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar::<_, Uuid>(
        "SELECT reply_to_message_id FROM drafts WHERE sent_message_id = $1 AND state = 'approved'",
    )
    .bind(sent_message_id)
    .fetch_optional(conn)
    .await
}

/// Which waiting drafts the review queue shows.
#[derive(Debug, Default)]
pub(crate) struct QueueFilter {
    /// `pending` (drafts to approve) or `escalated`; `None`: both.
    pub(crate) state: Option<&'static str>,
    /// Only conversations assigned to this member.
    pub(crate) assigned_to: Option<Uuid>,
    /// Only conversations nobody is assigned to.
    pub(crate) unassigned: bool,
    /// Only conversations on this channel (number).
    pub(crate) channel: Option<Uuid>,
    /// Only drafts written before this instant (waiting longer than some minutes).
    pub(crate) created_before: Option<OffsetDateTime>,
    pub(crate) limit: i64,
    pub(crate) offset: i64,
}

/// One page of the review queue: emergencies first, then oldest first; and how many wait
/// under the same filter.
pub(crate) async fn queue_page(
    conn: &mut PgConnection,
    f: &QueueFilter,
) -> sqlx::Result<(Vec<Draft>, i64)> {
    let rows = queue_rows(conn, f).await?;
    let total = queue_total(conn, f).await?;
    Ok((rows, total))
}

impl QueueFilter {
    /// No filter but the page: the whole queue, which the page frame's waiting badge
    /// (maintained, see migration 0031) already counts.
    pub(crate) fn is_whole_queue(&self) -> bool {
        self.state.is_none()
            && self.assigned_to.is_none()
            && !self.unassigned
            && self.channel.is_none()
            && self.created_before.is_none()
    }
}

const QUEUE_WHERE: &str = "d.state IN ('pending', 'escalated')
             AND ($1::text IS NULL OR d.state = $1)
             AND ($2::uuid IS NULL OR c.assigned_to = $2)
             AND (NOT $3 OR c.assigned_to IS NULL)
             AND ($4::uuid IS NULL OR c.channel_id = $4)
             AND ($5::timestamptz IS NULL OR d.created_at < $5)";

/// One page of the queue (`queue_page` without its count).
pub(crate) async fn queue_rows(
    conn: &mut PgConnection,
    f: &QueueFilter,
) -> sqlx::Result<Vec<Draft>> {
    sqlx::query_as::<_, Draft>(&format!(
        "SELECT d.id, d.conversation_id, d.contact_id, d.reply_to_message_id, d.state,
                d.original_sealed, d.final_sealed, d.escalation_reason, d.provider, d.model,
                d.prompt_version, d.knowledge_ids, d.input_tokens, d.output_tokens, d.latency_ms,
                d.auto_sent, d.decided_by, d.decided_at, d.reject_reason, d.edited,
                d.sent_message_id, d.created_at, d.source_changed
         FROM drafts d JOIN conversations c ON c.tenant_id = d.tenant_id AND c.id = d.conversation_id
         WHERE d.tenant_id = app_current_tenant() AND {QUEUE_WHERE}
         ORDER BY d.urgent DESC, d.created_at, d.id LIMIT $6 OFFSET $7"
    ))
    .bind(f.state)
    .bind(f.assigned_to)
    .bind(f.unassigned)
    .bind(f.channel)
    .bind(f.created_before)
    .bind(f.limit)
    .bind(f.offset)
    .fetch_all(conn)
    .await
}

/// One card of the review queue page: the draft, whether it is an emergency, its
/// conversation, the kind of its channel (`None` once the channel is deleted) and the
/// conversation's contact (`None` should row-level security hide it).
pub(crate) struct QueueCard {
    pub(crate) draft: Draft,
    pub(crate) urgent: bool,
    pub(crate) conversation: super::conversations::Conversation,
    pub(crate) channel_kind: Option<String>,
    pub(crate) contact: Option<super::contacts::Contact>,
}

/// One page of the queue as its cards show it, in one statement whatever the page holds:
/// [`queue_rows`] with each draft's urgency, conversation, channel kind and contact
/// (primary-key probes beside the `drafts_queue_order` walk; four round trips before, and
/// the channel list).
pub(crate) async fn queue_cards(
    conn: &mut PgConnection,
    f: &QueueFilter,
) -> sqlx::Result<Vec<QueueCard>> {
    use sqlx::{FromRow, Row};
    let rows = sqlx::query(&format!(
        "SELECT d.id, d.conversation_id, d.contact_id, d.reply_to_message_id, d.state,
                d.original_sealed, d.final_sealed, d.escalation_reason, d.provider, d.model,
                d.prompt_version, d.knowledge_ids, d.input_tokens, d.output_tokens, d.latency_ms,
                d.auto_sent, d.decided_by, d.decided_at, d.reject_reason, d.edited,
                d.sent_message_id, d.created_at, d.source_changed, d.urgent,
                c.channel_id AS cv_channel_id, c.contact_id AS cv_contact_id, c.is_group AS cv_is_group,
                c.group_name_sealed AS cv_group_name_sealed, c.status AS cv_status,
                c.ownership AS cv_ownership, c.policy_override AS cv_policy_override,
                c.assigned_to AS cv_assigned_to, c.labels AS cv_labels, c.unread_count AS cv_unread_count,
                c.last_message_at AS cv_last_message_at, c.last_inbound_at AS cv_last_inbound_at,
                c.created_at AS cv_created_at, c.attention AS cv_attention,
                ct.id AS ct_id, ct.phone_index AS ct_phone_index, ct.lid_index AS ct_lid_index,
                ct.phone_sealed AS ct_phone_sealed, ct.name_sealed AS ct_name_sealed,
                ct.profile_sealed AS ct_profile_sealed, ct.tags AS ct_tags,
                ct.restricted_at AS ct_restricted_at, ct.erased_at AS ct_erased_at,
                ct.created_at AS ct_created_at, ch.kind AS ch_kind
         FROM drafts d JOIN conversations c ON c.tenant_id = d.tenant_id AND c.id = d.conversation_id
         LEFT JOIN contacts ct ON ct.id = c.contact_id
         LEFT JOIN channels ch ON ch.id = c.channel_id AND ch.deleted_at IS NULL
         WHERE d.tenant_id = app_current_tenant() AND {QUEUE_WHERE}
         ORDER BY d.urgent DESC, d.created_at, d.id LIMIT $6 OFFSET $7"
    ))
    .bind(f.state)
    .bind(f.assigned_to)
    .bind(f.unassigned)
    .bind(f.channel)
    .bind(f.created_before)
    .bind(f.limit)
    .bind(f.offset)
    .fetch_all(conn)
    .await?;
    let mut cards = Vec::with_capacity(rows.len());
    for r in rows {
        let draft = Draft::from_row(&r)?;
        let conversation = super::conversations::Conversation::from_prefixed_row(
            &r,
            "cv_",
            draft.conversation_id,
        )?;
        let contact = match r.try_get::<Option<Uuid>, _>("ct_id")? {
            None => None,
            Some(id) => Some(super::contacts::Contact::from_prefixed_row(&r, "ct_", id)?),
        };
        cards.push(QueueCard {
            urgent: r.try_get("urgent")?,
            channel_kind: r.try_get("ch_kind")?,
            draft,
            conversation,
            contact,
        });
    }
    Ok(cards)
}

/// How many drafts the queue holds under this filter (the page and offset aside).
pub(crate) async fn queue_total(conn: &mut PgConnection, f: &QueueFilter) -> sqlx::Result<i64> {
    // Without a filter on the conversation, the count needs no join: every draft has its
    // conversation (a foreign key), and `drafts_queue_order` alone answers it.
    let join = if f.assigned_to.is_some() || f.unassigned || f.channel.is_some() {
        "JOIN conversations c ON c.tenant_id = d.tenant_id AND c.id = d.conversation_id"
    } else {
        "CROSS JOIN (SELECT NULL::uuid AS assigned_to, NULL::uuid AS channel_id) c"
    };
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM drafts d {join}
         WHERE d.tenant_id = app_current_tenant() AND {QUEUE_WHERE}"
    ))
    .bind(f.state)
    .bind(f.assigned_to)
    .bind(f.unassigned)
    .bind(f.channel)
    .bind(f.created_before)
    .fetch_one(conn)
    .await
}

/// Everything an approval checks before it writes, read in one statement: the draft, who
/// else is editing it, the undo window, whether its conversation may be sent to, and the
/// tenant's newest audit entry (read after the chain lock, see `begin_tenant_chain_locked`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ApprovalContext {
    #[sqlx(flatten)]
    pub(crate) draft: Draft,
    /// Another member editing the draft now (heartbeat at or after `since`).
    pub(crate) editor: Option<String>,
    /// `None`: the tenant never saved AI settings (the default window applies).
    pub(crate) undo_seconds: Option<i32>,
    pub(crate) conv_exists: bool,
    pub(crate) channel_id: Option<Uuid>,
    /// The conversation's contact (the reply is sealed for it).
    pub(crate) conv_contact_id: Option<Uuid>,
    pub(crate) last_inbound_at: Option<OffsetDateTime>,
    pub(crate) contact_exists: bool,
    pub(crate) erased_at: Option<OffsetDateTime>,
    pub(crate) restricted_at: Option<OffsetDateTime>,
    /// The conversation's channel unless deleted.
    pub(crate) channel_kind: Option<String>,
    pub(crate) audit_seq: Option<i64>,
    pub(crate) audit_hash: Option<Vec<u8>>,
}

pub(crate) async fn approval_context(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    draft_id: Uuid,
    me: Uuid,
    since: OffsetDateTime,
) -> sqlx::Result<Option<ApprovalContext>> {
    sqlx::query_as::<_, ApprovalContext>(
        r#"SELECT d.id, d.conversation_id, d.contact_id, d.reply_to_message_id, d.state, d.original_sealed,
                  d.final_sealed, d.escalation_reason, d.provider, d.model, d.prompt_version, d.knowledge_ids,
                  d.input_tokens, d.output_tokens, d.latency_ms, d.auto_sent, d.decided_by, d.decided_at,
                  d.reject_reason, d.edited, d.sent_message_id, d.created_at, d.source_changed,
                  (SELECT u.name FROM review_presence p JOIN users u ON u.id = p.user_id
                   WHERE p.tenant_id = app_current_tenant() AND p.draft_id = d.id AND p.editing
                     AND p.user_id <> $3 AND p.seen_at >= $4
                   ORDER BY p.seen_at DESC LIMIT 1) AS editor,
                  (SELECT s.undo_seconds FROM ai_settings s WHERE s.tenant_id = app_current_tenant()) AS undo_seconds,
                  c.id IS NOT NULL AS conv_exists, c.channel_id, c.contact_id AS conv_contact_id, c.last_inbound_at,
                  ct.id IS NOT NULL AS contact_exists, ct.erased_at, ct.restricted_at,
                  ch.kind AS channel_kind,
                  a.seq AS audit_seq, a.hash AS audit_hash
           FROM drafts d
           LEFT JOIN conversations c ON c.id = d.conversation_id
           LEFT JOIN contacts ct ON ct.id = c.contact_id
           LEFT JOIN channels ch ON ch.id = c.channel_id AND ch.deleted_at IS NULL
           LEFT JOIN LATERAL (SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1) a ON true
           WHERE d.id = $2"#,
    )
    .bind(tenant_id)
    .bind(draft_id)
    .bind(me)
    .bind(since)
    .fetch_optional(conn)
    .await
}

/// An approval's writes, all in one statement (see [`approve`]).
pub(crate) struct ApprovalWrite<'a> {
    pub(crate) tenant_id: Uuid,
    pub(crate) draft_id: Uuid,
    pub(crate) conversation_id: Uuid,
    pub(crate) channel_id: Uuid,
    pub(crate) contact_id: Uuid,
    pub(crate) state: &'a str,
    pub(crate) by: Uuid,
    pub(crate) final_sealed: &'a [u8],
    pub(crate) edited: bool,
    pub(crate) edit_words: i32,
    /// The reply: a queued outbound message from the AI, approved by `by`.
    pub(crate) message_id: Uuid,
    pub(crate) body_sealed: &'a [u8],
    /// Its send job (built by `NewJob::of`), woken with `notify_one_worker`'s payload.
    pub(crate) job: super::jobs::NewJob,
    pub(crate) audit: &'a super::audit::Entry,
    /// The outgoing-webhook event (`draft.approved`) and its data.
    pub(crate) event_type: &'a str,
    pub(crate) event: &'a Value,
    pub(crate) now: OffsetDateTime,
}

/// Approves a draft and queues its reply in one statement: the draft's decision (only from
/// `pending`/`escalated`: `false` when someone decided first, and then nothing is written),
/// the queued message, the conversation's last message time and attention cleared, the send
/// job and the workers' wake-up at commit, the audit entry, and the outgoing-webhook
/// deliveries. The same writes as `decide`, `set_edit_words`, `send::queue_text_after`,
/// `set_sent`, `set_attention`, `audit::record` and `outgoing::emit`, one after another.
pub(crate) async fn approve(conn: &mut PgConnection, w: ApprovalWrite<'_>) -> sqlx::Result<bool> {
    use sqlx::Row;
    let a = w.audit;
    let row = sqlx::query(
        r#"WITH d AS (
               UPDATE drafts SET state = $3, decided_by = $4, decided_at = $5, final_sealed = $6, edited = $7,
                                 reject_reason = NULL, edit_words = $8, sent_message_id = $9, auto_sent = false
               WHERE id = $2 AND state IN ('pending', 'escalated')
               RETURNING id),
           m AS (
               INSERT INTO messages (id, tenant_id, conversation_id, channel_id, contact_id, direction, author,
                                     author_user_id, kind, body_sealed, status, status_rank, sent_at, created_at)
               SELECT $9, $1, $10, $11, $12, 'out', 'ai', $4, 'text', $13, 'queued', $14, $5, $5 FROM d
               RETURNING id),
           c AS (
               UPDATE conversations SET last_message_at = GREATEST(last_message_at, $5), attention = NULL,
                                        attention_at = NULL
               WHERE id = $10 AND EXISTS (SELECT 1 FROM m)
               RETURNING id),
           j AS (
               INSERT INTO jobs (id, kind, tenant_id, subject_id, payload, dedupe_key, run_at, max_attempts,
                                 created_at, updated_at)
               SELECT $15, $16, $1, m.id, $17, $18, $19, $20, $5, $5 FROM m
               ON CONFLICT (dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL
               DO UPDATE SET run_at = GREATEST(jobs.run_at, EXCLUDED.run_at), updated_at = EXCLUDED.updated_at
               RETURNING id),
           l AS (
               INSERT INTO audit_log (tenant_id, seq, id, at, actor_id, actor_label, action, subject, detail,
                                      prev_hash, hash)
               SELECT $1, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30 FROM d
               RETURNING id),
           wd AS (
               INSERT INTO webhook_deliveries (id, tenant_id, endpoint_id, event_type, data, occurred_at,
                                               next_attempt_at, created_at)
               SELECT gen_random_uuid(), e.tenant_id, e.id, $31, $32, $5, $5, $5
               FROM webhook_endpoints e CROSS JOIN d
               WHERE e.tenant_id = $1 AND e.enabled AND $31 = ANY (e.events)
               RETURNING id, tenant_id),
           wj AS (
               INSERT INTO jobs (id, kind, tenant_id, subject_id, dedupe_key, run_at, max_attempts, created_at,
                                 updated_at)
               SELECT gen_random_uuid(), $33, wd.tenant_id, wd.id, 'webhook:' || wd.id, $5, 8, $5, $5 FROM wd
               RETURNING id),
           n AS (
               -- One claimer for the send alone; every claimer when webhook deliveries wait too.
               SELECT pg_notify($34, CASE WHEN EXISTS (SELECT 1 FROM wd) THEN '' ELSE $35 END) FROM j)
           SELECT (SELECT count(*) FROM d) AS decided, (SELECT count(*) FROM n) AS woken,
                  (SELECT count(*) FROM c) + (SELECT count(*) FROM l) + (SELECT count(*) FROM wj) AS written"#,
    )
    .bind(w.tenant_id) // $1
    .bind(w.draft_id)
    .bind(w.state)
    .bind(w.by)
    .bind(w.now) // $5
    .bind(w.final_sealed)
    .bind(w.edited)
    .bind(w.edit_words)
    .bind(w.message_id)
    .bind(w.conversation_id) // $10
    .bind(w.channel_id)
    .bind(w.contact_id)
    .bind(w.body_sealed)
    .bind(super::messages::status_rank("queued"))
    .bind(Uuid::now_v7()) // $15
    .bind(w.job.kind)
    .bind(w.job.payload)
    .bind(w.job.dedupe_key)
    .bind(w.job.run_at)
    .bind(w.job.max_attempts) // $20
    .bind(a.seq)
    .bind(a.id)
    .bind(a.at)
    .bind(a.actor_id)
    .bind(&a.actor_label) // $25
    .bind(&a.action)
    .bind(&a.subject)
    .bind(&a.detail)
    .bind(&a.prev_hash)
    .bind(&a.hash) // $30
    .bind(w.event_type)
    .bind(w.event)
    .bind(super::outgoing::WEBHOOK_DELIVER)
    .bind(super::jobs::WAKE_CHANNEL)
    .bind(super::jobs::WAKE_ONE) // $35
    .fetch_one(conn)
    .await?;
    Ok(row.try_get::<i64, _>("decided")? == 1)
}
