//! The admin API's audit log and its CSV.

use super::*;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(activity))
        .routes(routes!(activity_csv))
}

/// The audit log, newest first.
#[utoipa::path(
    get,
    path = "/activity",
    params(ActivityQuery, Paging),
    responses(
        (status = 200, description = "A page of changes, newest first", body = List<Activity>),
        (status = 400, description = "`invalid_request`: an unknown kind or actor, a bad time, limit or cursor", body = ErrorBody),
    ),
)]
async fn activity(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Params(query): Params<ActivityQuery>,
    Params(paging): Params<Paging>,
) -> Result<Json<List<Activity>>, ApiError> {
    // The audit log's cursor is the id to continue before, as it is.
    let before = match paging.cursor.as_deref() {
        None | Some("") => None,
        Some(id) => Some(id.parse::<i64>().ok().filter(|id| *id >= 0).ok_or_else(ApiError::invalid_cursor)?),
    };
    let filter = query.filter(before, paging.limit()?)?;
    let page = store.activity(org.id, &filter).await?;
    Ok(Json(List { items: page.items, next_cursor: page.next }))
}

/// Every change matching the filters, as CSV, newest first.
#[utoipa::path(
    get,
    path = "/activity.csv",
    params(ActivityQuery),
    responses(
        (status = 200, description = "`at,actor,kind,product,serial,detail`, one change a line", content_type = "text/csv", body = String),
        (status = 400, description = "`invalid_request`: an unknown kind or actor, a bad time", body = ErrorBody),
    ),
)]
async fn activity_csv(
    AdminOrg(org): AdminOrg,
    State(store): State<Store>,
    Params(query): Params<ActivityQuery>,
) -> Result<axum::response::Response, ApiError> {
    crate::export::activity_csv(&store, org.id, &query).await
}
