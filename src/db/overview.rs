//! The overview page's figures: what waits for a person, how review is going this week,
//! and what is broken — one round trip.

use sqlx::PgConnection;
use time::OffsetDateTime;

#[derive(Debug, Default, sqlx::FromRow)]
pub(crate) struct Overview {
    /// Drafts waiting for review, and when the oldest arrived.
    pub(crate) pending: i64,
    pub(crate) oldest_pending: Option<OffsetDateTime>,
    /// Escalations waiting for a person.
    pub(crate) escalated: i64,
    /// Reviewed since `since` (auto-sent drafts are not reviews).
    pub(crate) approved: i64,
    pub(crate) edited: i64,
    pub(crate) rejected: i64,
    /// Median seconds from draft to decision, over the reviews since `since`.
    pub(crate) median_review_secs: Option<f64>,
    pub(crate) dsr_overdue: i64,
    pub(crate) channels_down: i64,
}

pub(crate) async fn load(
    conn: &mut PgConnection,
    since: OffsetDateTime,
    now: OffsetDateTime,
) -> sqlx::Result<Overview> {
    sqlx::query_as::<_, Overview>(
        r#"SELECT
             (SELECT count(*) FROM drafts WHERE state = 'pending') AS pending,
             (SELECT min(created_at) FROM drafts WHERE state = 'pending') AS oldest_pending,
             (SELECT count(*) FROM drafts WHERE state = 'escalated') AS escalated,
             r.approved, r.edited, r.rejected, r.median_review_secs,
             (SELECT count(*) FROM dsr_requests
               WHERE status NOT IN ('completed', 'denied') AND due_at < $2) AS dsr_overdue,
             (SELECT count(*) FROM channels
               WHERE deleted_at IS NULL AND health = 'disconnected') AS channels_down
           FROM (
             SELECT count(*) FILTER (WHERE state = 'approved') AS approved,
                    count(*) FILTER (WHERE state = 'approved' AND edited) AS edited,
                    count(*) FILTER (WHERE state = 'rejected') AS rejected,
                    percentile_cont(0.5) WITHIN GROUP (
                        ORDER BY extract(epoch FROM decided_at - created_at))::float8
                      AS median_review_secs
             FROM drafts
             WHERE state IN ('approved', 'rejected') AND NOT auto_sent AND decided_at >= $1
           ) r"#,
    )
    .bind(since)
    .bind(now)
    .fetch_one(conn)
    .await
}

/// The most frequent rejection reasons since `since` (as typed, case and spaces folded).
pub(crate) async fn reject_reasons(
    conn: &mut PgConnection,
    since: OffsetDateTime,
) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        r#"SELECT min(regexp_replace(trim(reject_reason), '\s+', ' ', 'g')), count(*) FROM drafts
           WHERE state = 'rejected' AND decided_at >= $1
             AND coalesce(trim(reject_reason), '') <> ''
           GROUP BY lower(regexp_replace(trim(reject_reason), '\s+', ' ', 'g'))
           ORDER BY count(*) DESC, 1 LIMIT 5"#,
    )
    .bind(since)
    .fetch_all(conn)
    .await
}

/// One week of review, for the draft-quality trend.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Week {
    /// The Monday the week starts, in the tenant's time zone.
    pub(crate) week: time::Date,
    pub(crate) approved: i64,
    pub(crate) edited: i64,
    pub(crate) rejected: i64,
    /// Mean words changed per approved draft.
    pub(crate) edit_words: Option<f64>,
    /// Median seconds from draft to approval.
    pub(crate) median_approve_secs: Option<f64>,
}

/// Review by week since `since` (newest first). Weeks start on Monday at midnight local time:
/// `utc_offset_secs` is the tenant's offset from UTC now (a DST shift moves a boundary by an
/// hour at most, which the trend does not notice).
pub(crate) async fn weeks(
    conn: &mut PgConnection,
    since: OffsetDateTime,
    utc_offset_secs: i32,
) -> sqlx::Result<Vec<Week>> {
    sqlx::query_as::<_, Week>(
        r#"SELECT date_trunc('week', (decided_at AT TIME ZONE 'UTC') + make_interval(secs => $2))::date AS week,
                  count(*) FILTER (WHERE state = 'approved') AS approved,
                  count(*) FILTER (WHERE state = 'approved' AND edited) AS edited,
                  count(*) FILTER (WHERE state = 'rejected') AS rejected,
                  (avg(edit_words) FILTER (WHERE state = 'approved'))::float8 AS edit_words,
                  (percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM decided_at - created_at))
                     FILTER (WHERE state = 'approved'))::float8 AS median_approve_secs
           FROM drafts
           WHERE state IN ('approved', 'rejected') AND NOT auto_sent AND decided_at >= $1
           GROUP BY 1 ORDER BY 1 DESC"#,
    )
    .bind(since)
    .bind(f64::from(utc_offset_secs))
    .fetch_all(conn)
    .await
}

/// What a new tenant has done of its set-up (the overview's checklist), in one query.
pub(crate) struct FirstSteps {
    pub(crate) connected_number: bool,
    pub(crate) added_knowledge: bool,
    pub(crate) tried_simulator: bool,
    pub(crate) invited_staff: bool,
}

impl FirstSteps {
    pub(crate) fn all_done(&self) -> bool {
        self.connected_number && self.added_knowledge && self.tried_simulator && self.invited_staff
    }
}

pub(crate) async fn first_steps(conn: &mut PgConnection) -> sqlx::Result<FirstSteps> {
    sqlx::query_as!(
        FirstSteps,
        r#"SELECT
             EXISTS (SELECT 1 FROM channels WHERE tenant_id = app_current_tenant()
                     AND kind <> 'simulator' AND deleted_at IS NULL) AS "connected_number!",
             EXISTS (SELECT 1 FROM knowledge_entries WHERE tenant_id = app_current_tenant()) AS "added_knowledge!",
             EXISTS (SELECT 1 FROM messages m JOIN channels c ON c.id = m.channel_id
                     WHERE m.tenant_id = app_current_tenant() AND c.tenant_id = app_current_tenant()
                       AND c.kind = 'simulator') AS "tried_simulator!",
             (EXISTS (SELECT 1 FROM invitations WHERE tenant_id = app_current_tenant())
              OR (SELECT count(*) FROM memberships WHERE tenant_id = app_current_tenant()) > 1) AS "invited_staff!""#
    )
    .fetch_one(conn)
    .await
}
