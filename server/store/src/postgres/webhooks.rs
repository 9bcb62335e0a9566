//! Webhooks on PostgreSQL: endpoints, the outbox and delivery attempts, and
//! the alerts that write to the outbox.

use super::*;
use crate::webhooks::{Alert, AlertRow, AttemptRow, EXPIRY_NOTICE_DAYS, REFUSALS_QUIET, attempts_before, attempts_page};

/// Endpoints one organization may have.
const MAX_WEBHOOKS: i64 = 20;

type WebhookRow = (i64, String, String, Timestamp);

fn webhook_from((id, url, events, created_at): WebhookRow) -> Webhook {
    let events = events.split(',').filter_map(WebhookEvent::parse).collect();
    Webhook { id, url, events, created_at }
}

/// Writes a message for each of the organization's endpoints that
/// subscribes to `event`, inside the caller's transaction.
pub(super) async fn enqueue(conn: &mut PgConnection, org: OrgId, at: Timestamp, event: WebhookEvent, data: &serde_json::Value) -> Result<()> {
    sqlx::query(
        "insert into webhook_outbox (webhook_id, type, at, data, next_attempt_at)
         select id, $2, $3, $4, $3 from webhooks where org_id = $1 and events & $5 <> 0 order by id",
    )
    .bind(org.0)
    .bind(event.as_str())
    .bind(at)
    .bind(data.to_string())
    .bind(event.bit())
    .execute(conn)
    .await?;
    Ok(())
}

impl Webhooks for PgStore {
    #[tracing::instrument(skip_all)]
    async fn add_webhook(&self, org: OrgId, url: &str, events: &[WebhookEvent], secret: &[u8], by: Actor) -> Result<Webhook> {
        let mut tx = self.begin().await?;
        let count: i64 = sqlx::query_scalar("select count(*) from webhooks where org_id = $1").bind(org.0).fetch_one(&mut *tx).await?;
        if count >= MAX_WEBHOOKS {
            return Err(StoreError::Conflict(format!("an organization may have at most {MAX_WEBHOOKS} webhooks; delete one first")));
        }
        let at = now();
        let row: WebhookRow = sqlx::query_as(
            "insert into webhooks (org_id, url, events, event_names, secret, created_at) values ($1, $2, $3, $4, $5, $6)
             returning id, url, event_names, created_at",
        )
        .bind(org.0)
        .bind(url)
        .bind(WebhookEvent::bits(events))
        .bind(events.iter().map(|event| event.as_str()).collect::<Vec<_>>().join(","))
        .bind(secret)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?;
        record(&mut tx, org, at, audit::webhook_added(by, url)).await?;
        tx.commit().await?;
        Ok(webhook_from(row))
    }

    #[tracing::instrument(skip_all)]
    async fn webhooks(&self, org: OrgId) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> =
            sqlx::query_as("select id, url, event_names, created_at from webhooks where org_id = $1 order by id")
                .bind(org.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(webhook_from).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn delete_webhook(&self, org: OrgId, id: i64, by: Actor) -> Result<()> {
        let mut tx = self.begin().await?;
        let url: Option<String> = sqlx::query_scalar("delete from webhooks where org_id = $1 and id = $2 returning url")
            .bind(org.0)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let url = url.ok_or(StoreError::UnknownWebhook(id))?;
        record(&mut tx, org, now(), audit::webhook_deleted(by, &url)).await?;
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn delivery_attempts(&self, org: OrgId, id: i64, page: &PageRequest) -> Result<Page<DeliveryAttempt>> {
        let before = attempts_before(page);
        let known: Option<i64> = sqlx::query_scalar("select id from webhooks where org_id = $1 and id = $2")
            .bind(org.0)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        known.ok_or(StoreError::UnknownWebhook(id))?;
        let limit = page.clamped_limit();
        let rows: Vec<AttemptRow<Timestamp>> = sqlx::query_as(
            "select id, message_id, type, attempt, at, status, error from webhook_attempts
             where webhook_id = $1 and id < $2 order by id desc limit $3",
        )
        .bind(id)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&self.pool)
        .await?;
        Ok(attempts_page(rows, limit, |at| at))
    }

    #[tracing::instrument(skip_all)]
    async fn claim_messages(&self, now: Timestamp, claim_until: Timestamp, limit: i64) -> Result<Vec<OutboxMessage>> {
        // Most of the time no endpoint's first message is due: a read (one
        // look per endpoint) then spares a write.
        let due: Option<i64> = sqlx::query_scalar(
            "select o.id from webhooks w
             join webhook_outbox o on o.id = (select min(h.id) from webhook_outbox h where h.webhook_id = w.id)
             where o.next_attempt_at <= $1 and (o.claimed_until is null or o.claimed_until < $1)
             limit 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        // Each endpoint's first message, claimed if it is due and free; the
        // update checks again under the row's lock, so that of two processes
        // claiming one message only one gets it.
        let mut tx = self.begin().await?;
        let claimed: Vec<i64> = sqlx::query_scalar(
            "update webhook_outbox o set claimed_until = $2
             from (select head.id from webhooks w
                   cross join lateral (select h.id, h.next_attempt_at, h.claimed_until from webhook_outbox h
                                       where h.webhook_id = w.id order by h.id limit 1) head
                   where head.next_attempt_at <= $1 and (head.claimed_until is null or head.claimed_until < $1)
                   limit $3) ready
             where o.id = ready.id and (o.claimed_until is null or o.claimed_until < $1)
             returning o.id",
        )
        .bind(now)
        .bind(claim_until)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, i64, i64, String, Vec<u8>, String, Timestamp, String, i64)> = sqlx::query_as(
            "select o.id, w.org_id, w.id, w.url, w.secret, o.type, o.at, o.data, o.attempts
             from webhook_outbox o join webhooks w on w.id = o.webhook_id
             where o.id = any($1) order by o.id",
        )
        .bind(&claimed)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|(id, org, webhook_id, url, secret, event, at, data, attempts)| OutboxMessage {
                id,
                org: OrgId(org),
                webhook_id,
                url,
                secret,
                event,
                at,
                data,
                attempts,
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn finish_message(&self, message: &OutboxMessage, attempted: &Attempted) -> Result<()> {
        let mut tx = self.begin().await?;
        // Nothing is kept of an endpoint deleted meanwhile.
        sqlx::query(
            "insert into webhook_attempts (webhook_id, message_id, type, attempt, at, status, error)
             select id, $2, $3, $4, $5, $6, $7 from webhooks where id = $1",
        )
        .bind(message.webhook_id)
        .bind(message.message_id())
        .bind(&message.event)
        .bind(message.attempts + 1)
        .bind(attempted.at)
        .bind(attempted.status)
        .bind(&attempted.error)
        .execute(&mut *tx)
        .await?;
        match attempted.retry_at {
            None => sqlx::query("delete from webhook_outbox where id = $1").bind(message.id).execute(&mut *tx).await?,
            Some(retry_at) => {
                sqlx::query(
                    "update webhook_outbox set attempts = attempts + 1, next_attempt_at = $1, claimed_until = null where id = $2",
                )
                .bind(retry_at)
                .bind(message.id)
                .execute(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn raise_alerts(&self, now: Timestamp) -> Result<u64> {
        let today = now.date_naive();
        let soon = today + chrono::Days::new(EXPIRY_NOTICE_DAYS);
        let quiet_since = now - REFUSALS_QUIET;
        // Products with something to tell, read without the write lock: most
        // calls find none. Each is then told under the lock, if still due.
        let due: Vec<(i64,)> = sqlx::query_as(
            "select id from products
             where (alert_at_percent is not null and seats > 0 and assigned * 100 >= seats * alert_at_percent) <> alert_raised
                or (refused_total > refused_told and (refused_told_at is null or refused_told_at <= $1))
                or (valid_until between $2 and $3 and expiry_told is distinct from valid_until)",
        )
        .bind(quiet_since)
        .bind(today)
        .bind(soon)
        .fetch_all(&self.pool)
        .await?;
        let mut told = 0;
        for (id,) in due {
            let mut tx = self.begin().await?;
            let row: Option<AlertRow<Option<Timestamp>, Option<chrono::NaiveDate>>> = sqlx::query_as(
                "select org_id, code, seats, assigned, alert_at_percent, alert_raised, refused_total, refused_told,
                        refused_told_at, valid_until, expiry_told
                 from products where id = $1 for update",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let alert = Alert::of(row, now, |at| at, |day| day);
            for (event, data) in alert.messages() {
                enqueue(&mut tx, alert.org, now, event, &data).await?;
                told += 1;
            }
            sqlx::query(
                "update products set alert_raised = $1, refused_told = $2, refused_told_at = $3, expiry_told = $4 where id = $5",
            )
            .bind(alert.raised)
            .bind(alert.refused_told)
            .bind(alert.refused_told_at)
            .bind(alert.expiry_told)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(told)
    }

    #[tracing::instrument(skip_all)]
    async fn prune_webhook_attempts(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("delete from webhook_attempts where at < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }
}
