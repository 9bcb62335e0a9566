//! Webhooks on SQLite: endpoints, the outbox and delivery attempts, and
//! the alerts that write to the outbox.

use super::*;
use crate::webhooks::{Alert, AlertRow, AttemptRow, EXPIRY_NOTICE_DAYS, REFUSALS_QUIET, attempts_before, attempts_page};

/// Endpoints one organization may have.
const MAX_WEBHOOKS: i64 = 20;

type WebhookRow = (i64, String, String, i64);

fn webhook_from((id, url, events, created_at): WebhookRow) -> Webhook {
    let events = events.split(',').filter_map(WebhookEvent::parse).collect();
    Webhook { id, url, events, created_at: timestamp(created_at) }
}

/// Writes a message for each of the organization's endpoints that
/// subscribes to `event`, inside the caller's transaction.
pub(super) async fn enqueue(conn: &mut SqliteConnection, org: OrgId, at: Timestamp, event: WebhookEvent, data: &serde_json::Value) -> Result<()> {
    sqlx::query(
        "insert into webhook_outbox (webhook_id, type, at, data, next_attempt_at)
         select id, ?2, ?3, ?4, ?3 from webhooks where org_id = ?1 and events & ?5 <> 0 order by id",
    )
    .bind(org.0)
    .bind(event.as_str())
    .bind(millis(at))
    .bind(data.to_string())
    .bind(event.bit())
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes a `seat.assigned` message for each seat a check-in group took
/// (`seats`: the JSON array of `[org_id, product, serial]`), inside the
/// group's transaction: one statement for the group.
pub(super) async fn enqueue_auto_assigned(conn: &mut SqliteConnection, seats: &str, at: i64) -> Result<()> {
    sqlx::query(
        "insert into webhook_outbox (webhook_id, type, at, data, next_attempt_at)
         select w.id, ?2, ?3, json_object('product', seat.value ->> 1, 'serial', seat.value ->> 2, 'by', ?4), ?3
         from json_each(?1) seat join webhooks w on w.org_id = seat.value ->> 0 and w.events & ?5 <> 0
         order by seat.key, w.id",
    )
    .bind(seats)
    .bind(WebhookEvent::SeatAssigned.as_str())
    .bind(at)
    .bind(Actor::Device.as_str())
    .bind(WebhookEvent::SeatAssigned.bit())
    .execute(conn)
    .await?;
    Ok(())
}

impl Webhooks for SqliteStore {
    #[tracing::instrument(skip_all)]
    async fn add_webhook(&self, org: OrgId, url: &str, events: &[WebhookEvent], secret: &[u8], by: Actor) -> Result<Webhook> {
        let mut tx = self.write().await?;
        let count: i64 = sqlx::query_scalar("select count(*) from webhooks where org_id = ?").bind(org.0).fetch_one(&mut *tx).await?;
        if count >= MAX_WEBHOOKS {
            return Err(StoreError::Conflict(format!("an organization may have at most {MAX_WEBHOOKS} webhooks; delete one first")));
        }
        let at = now();
        let row: WebhookRow = sqlx::query_as(
            "insert into webhooks (org_id, url, events, event_names, secret, created_at) values (?, ?, ?, ?, ?, ?)
             returning id, url, event_names, created_at",
        )
        .bind(org.0)
        .bind(url)
        .bind(WebhookEvent::bits(events))
        .bind(events.iter().map(|event| event.as_str()).collect::<Vec<_>>().join(","))
        .bind(secret)
        .bind(millis(at))
        .fetch_one(&mut *tx)
        .await?;
        record(&mut tx, org, at, audit::webhook_added(by, url)).await?;
        tx.commit().await?;
        Ok(webhook_from(row))
    }

    #[tracing::instrument(skip_all)]
    async fn webhooks(&self, org: OrgId) -> Result<Vec<Webhook>> {
        let rows: Vec<WebhookRow> =
            sqlx::query_as("select id, url, event_names, created_at from webhooks where org_id = ? order by id")
                .bind(org.0)
                .fetch_all(&self.readers)
                .await?;
        Ok(rows.into_iter().map(webhook_from).collect())
    }

    #[tracing::instrument(skip_all)]
    async fn delete_webhook(&self, org: OrgId, id: i64, by: Actor) -> Result<()> {
        let mut tx = self.write().await?;
        let url: Option<String> = sqlx::query_scalar("delete from webhooks where org_id = ? and id = ? returning url")
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
        let known: Option<i64> = sqlx::query_scalar("select id from webhooks where org_id = ? and id = ?")
            .bind(org.0)
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        known.ok_or(StoreError::UnknownWebhook(id))?;
        let limit = page.clamped_limit();
        let rows: Vec<AttemptRow<i64>> = sqlx::query_as(
            "select id, message_id, type, attempt, at, status, error from webhook_attempts
             where webhook_id = ? and id < ? order by id desc limit ?",
        )
        .bind(id)
        .bind(before)
        .bind(limit + 1)
        .fetch_all(&self.readers)
        .await?;
        Ok(attempts_page(rows, limit, timestamp))
    }

    #[tracing::instrument(skip_all)]
    async fn claim_messages(&self, now: Timestamp, claim_until: Timestamp, limit: i64) -> Result<Vec<OutboxMessage>> {
        // Most of the time no endpoint's first message is due: a read (one
        // look per endpoint) then spares a write.
        let due: Option<i64> = sqlx::query_scalar(
            "select o.id from webhooks w
             join webhook_outbox o on o.id = (select min(h.id) from webhook_outbox h where h.webhook_id = w.id)
             where o.next_attempt_at <= ?1 and (o.claimed_until is null or o.claimed_until < ?1)
             limit 1",
        )
        .bind(millis(now))
        .fetch_optional(&self.readers)
        .await?;
        if due.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.write().await?;
        // Each endpoint's first message, claimed if it is due and free.
        let claimed: Vec<i64> = sqlx::query_scalar(
            "update webhook_outbox set claimed_until = ?2
             where id in (
                 select o.id from webhooks w
                 join webhook_outbox o on o.id = (select min(h.id) from webhook_outbox h where h.webhook_id = w.id)
                 where o.next_attempt_at <= ?1 and (o.claimed_until is null or o.claimed_until < ?1)
                 limit ?3)
             returning id",
        )
        .bind(millis(now))
        .bind(millis(claim_until))
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, i64, i64, String, Vec<u8>, String, i64, String, i64)> = sqlx::query_as(
            "select o.id, w.org_id, w.id, w.url, w.secret, o.type, o.at, o.data, o.attempts
             from json_each(?) claimed join webhook_outbox o on o.id = claimed.value join webhooks w on w.id = o.webhook_id
             order by o.id",
        )
        .bind(checkin::json(claimed.iter())?)
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
                at: timestamp(at),
                data,
                attempts,
            })
            .collect())
    }

    #[tracing::instrument(skip_all)]
    async fn finish_message(&self, message: &OutboxMessage, attempted: &Attempted) -> Result<()> {
        let mut tx = self.write().await?;
        // Nothing is kept of an endpoint deleted meanwhile.
        sqlx::query(
            "insert into webhook_attempts (webhook_id, message_id, type, attempt, at, status, error)
             select id, ?2, ?3, ?4, ?5, ?6, ?7 from webhooks where id = ?1",
        )
        .bind(message.webhook_id)
        .bind(message.message_id())
        .bind(&message.event)
        .bind(message.attempts + 1)
        .bind(millis(attempted.at))
        .bind(attempted.status)
        .bind(&attempted.error)
        .execute(&mut *tx)
        .await?;
        match attempted.retry_at {
            None => sqlx::query("delete from webhook_outbox where id = ?").bind(message.id).execute(&mut *tx).await?,
            Some(retry_at) => {
                sqlx::query(
                    "update webhook_outbox set attempts = attempts + 1, next_attempt_at = ?, claimed_until = null where id = ?",
                )
                .bind(millis(retry_at))
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
        let quiet_since = millis(now - REFUSALS_QUIET);
        // Products with something to tell, read without the write lock: most
        // calls find none. Each is then told under the lock, if still due.
        let due: Vec<(i64,)> = sqlx::query_as(
            "select id from products
             where (alert_at_percent is not null and seats > 0 and assigned * 100 >= seats * alert_at_percent) <> alert_raised
                or (refused_total > refused_told and (refused_told_at is null or refused_told_at <= ?1))
                or (valid_until between ?2 and ?3 and expiry_told is not valid_until)",
        )
        .bind(quiet_since)
        .bind(today.to_string())
        .bind(soon.to_string())
        .fetch_all(&self.readers)
        .await?;
        let mut told = 0;
        for (id,) in due {
            let mut tx = self.write().await?;
            let row: Option<AlertRow<Option<i64>, Option<String>>> = sqlx::query_as(
                "select org_id, code, seats, assigned, alert_at_percent, alert_raised, refused_total, refused_told,
                        refused_told_at, valid_until, expiry_told
                 from products where id = ?",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { continue };
            let alert = Alert::of(row, now, |at| at.map(timestamp), |day| day.and_then(|day| day.parse().ok()));
            for (event, data) in alert.messages() {
                enqueue(&mut tx, alert.org, now, event, &data).await?;
                told += 1;
            }
            sqlx::query(
                "update products set alert_raised = ?, refused_told = ?, refused_told_at = ?, expiry_told = ? where id = ?",
            )
            .bind(alert.raised)
            .bind(alert.refused_told)
            .bind(alert.refused_told_at.map(millis))
            .bind(alert.expiry_told.map(|day| day.to_string()))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(told)
    }

    #[tracing::instrument(skip_all)]
    async fn prune_webhook_attempts(&self, before: Timestamp) -> Result<u64> {
        let done = sqlx::query("delete from webhook_attempts where at < ?").bind(millis(before)).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }
}
