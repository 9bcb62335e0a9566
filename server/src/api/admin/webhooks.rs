//! The admin API's webhooks: the endpoints Seatkeeper tells of changes, and
//! each delivery attempt (see `crate::webhooks` for how they are sent).

use axum::http::StatusCode;
use store::{DeliveryAttempt, NewWebhook, Webhook};

use super::*;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhooks, add_webhook))
        .routes(routes!(delete_webhook))
        .routes(routes!(deliveries))
}

/// `{id}` in a path: a webhook.
#[derive(Deserialize, IntoParams, FromRequestParts)]
#[into_params(parameter_in = Path)]
#[from_request(via(Path), rejection(ApiError))]
pub struct WebhookId {
    /// The webhook's id.
    #[param(value_type = i64)]
    id: String,
}

impl WebhookId {
    /// The id; one that is not a number names no webhook.
    fn id(&self) -> Result<i64, ApiError> {
        let unknown = || ApiError::new(StatusCode::NOT_FOUND, "unknown_webhook", format!("no webhook with id {:?}", self.id));
        self.id.parse().map_err(|_| unknown())
    }
}

/// The organization's webhooks, oldest first (at most 20).
#[utoipa::path(
    get,
    path = "/webhooks",
    responses(
        (status = 200, description = "Every webhook; never more than one page", body = List<Webhook>),
    ),
)]
async fn webhooks(AdminOrg(org): AdminOrg, State(store): State<Store>) -> Result<Json<List<Webhook>>, ApiError> {
    let items = store.webhooks(org.id).await?;
    Ok(Json(List { items, next_cursor: None }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookToAdd {
    /// Where to POST: an HTTPS URL of a public address (a loopback, private
    /// or link-local one, or plain HTTP, only when the server runs with
    /// `--allow-private-webhooks`).
    ///
    /// Which addresses are public is the server's to find out (a name is
    /// resolved when the webhook is added): a URL of this form may still be
    /// refused.
    #[schema(max_length = 2000, pattern = r"^https://([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?(/[!-~]*)?$")]
    url: String,
    /// What to tell it of, at least one (each once).
    #[schema(min_items = 1, value_type = Vec<store::WebhookEvent>)]
    events: Vec<String>,
}

/// Adds a webhook. The answer carries its signing secret (`whsec_…`),
/// shown only now: each delivery is signed with it (Standard Webhooks).
#[utoipa::path(
    post,
    path = "/webhooks",
    request_body = WebhookToAdd,
    responses(
        (status = 201, description = "The webhook, with its signing secret", body = NewWebhook),
        (status = 400, description = "`invalid_request`: a URL webhooks may not go to, or an unknown event", body = ErrorBody),
        (status = 409, description = "`conflict`: the organization has 20 webhooks already", body = ErrorBody),
    ),
)]
async fn add_webhook(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    JsonBody(webhook): JsonBody<WebhookToAdd>,
) -> Result<(StatusCode, Json<NewWebhook>), ApiError> {
    let added = store.create_webhook(org.id, &webhook.url, &webhook.events, Actor::AdminApi).await?;
    Ok((StatusCode::CREATED, Json(added)))
}

#[derive(Serialize, ToSchema)]
pub struct DeletedWebhook {
    id: i64,
    deleted: bool,
}

/// Deletes a webhook, with the messages still waiting for it.
#[utoipa::path(
    delete,
    path = "/webhooks/{id}",
    params(WebhookId),
    responses(
        (status = 200, description = "The webhook is gone", body = DeletedWebhook),
        (status = 404, description = "`unknown_webhook`", body = ErrorBody),
    ),
)]
async fn delete_webhook(AdminOrg(org): AdminOrg, State(store): State<Store>, id: WebhookId) -> Result<Json<DeletedWebhook>, ApiError> {
    let id = id.id()?;
    store.delete_webhook(org.id, id, Actor::AdminApi).await?;
    Ok(Json(DeletedWebhook { id, deleted: true }))
}

/// A webhook's delivery attempts, newest first: when, the endpoint's HTTP
/// status (`null` when none came back) and what went wrong (`null` for a
/// delivery). Kept for 30 days.
#[utoipa::path(
    get,
    path = "/webhooks/{id}/deliveries",
    params(WebhookId, Paging),
    responses(
        (status = 200, description = "A page of delivery attempts", body = List<DeliveryAttempt>),
        (status = 400, description = "`invalid_request`: a bad limit or cursor", body = ErrorBody),
        (status = 404, description = "`unknown_webhook`", body = ErrorBody),
    ),
)]
async fn deliveries(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    id: WebhookId,
    Params(paging): Params<Paging>,
) -> Result<Json<List<DeliveryAttempt>>, ApiError> {
    let id = id.id()?;
    Ok(Json(store.delivery_attempts(org.id, id, &paging.page()?).await?.into()))
}
