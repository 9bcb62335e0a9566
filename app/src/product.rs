//! The Product screen: the devices holding a seat of one product, each with a
//! revoke (×) that frees the seat at once (and, for floating seats, when its
//! lease ends), how its seats are held, and how long its signed licenses
//! stay valid.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::A;
use leptos_router::hooks::{use_params_map, use_query_map};
use serde::{Deserialize, Serialize};

use crate::licenses::ProductView;
use crate::frame::Loaded;
use crate::ui::{Moment, PostedError, UiError, When, encode_segment, posting_to};

pub const HOLDERS_PER_PAGE: u32 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderView {
    pub serial: String,
    pub assigned: Moment,
    pub last_seen: Moment,
    /// A floating seat's lease end.
    pub lease_ends: Option<Moment>,
}

/// A device waiting in the product's line for a seat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingView {
    pub position: i64,
    pub serial: String,
    pub since: Moment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductScreen {
    pub product: ProductView,
    pub license_days: i64,
    pub reclaim_after_days: Option<i64>,
    pub floating: bool,
    /// A floating seat's lease (kept while seats are assigned).
    pub lease_minutes: i64,
    /// The share of seats in use that raises an alert, if any.
    #[serde(default)]
    pub alert_at_percent: Option<i64>,
    /// Seat usage over `usage_days` days up to `today`.
    pub usage: Vec<crate::usage::UsagePoint>,
    pub usage_days: i64,
    pub today: i64,
    pub holders: Vec<HolderView>,
    /// The devices waiting for a seat, longest first.
    #[serde(default)]
    pub waiting: Vec<WaitingView>,
    /// The serial to continue after, for the next page.
    pub next: Option<String>,
}

#[server]
pub async fn load_product(code: String, after: Option<String>, days: Option<String>) -> Result<ProductScreen, UiError> {
    use crate::server::*;
    use store::prelude::*;
    use store::PageRequest;
    respond(async {
        let org = require_org().await?;
        let store = store()?;
        let product = store.product(org.id, &code).await?;
        let policy = store.policy(org.id, &code).await?;
        let usage_days = if days.as_deref() == Some("90") { 90 } else { 30 };
        let now = store::now();
        let today = store::day_of(now);
        let usage = store
            .product_usage(org.id, &code, usage_days)
            .await?
            .into_iter()
            .map(|d| crate::usage::UsagePoint { day: d.day, seats: d.seats, assigned: d.assigned, refused: d.refused_devices })
            .collect();
        let page = store.holders(org.id, &code, &PageRequest { after, limit: HOLDERS_PER_PAGE }).await?;
        let waiting = store
            .waiting_line(org.id, &code)
            .await?
            .into_iter()
            .map(|w| WaitingView { position: w.position, serial: w.serial, since: moment(w.waiting_since, now) })
            .collect();
        Ok(ProductScreen {
            product: product.into(),
            license_days: policy.license_days,
            reclaim_after_days: policy.reclaim_after_days,
            floating: policy.seat_model == store::SeatModel::Floating,
            lease_minutes: policy.lease_minutes,
            alert_at_percent: policy.alert_at_percent,
            usage,
            usage_days,
            today,
            holders: page
                .items
                .into_iter()
                .map(|h| HolderView {
                    serial: h.serial,
                    assigned: moment(h.assigned_at, now),
                    last_seen: moment(h.last_seen, now),
                    lease_ends: h.lease_expires_at.map(|at| moment_ahead(at, now)),
                })
                .collect(),
            waiting,
            next: page.next,
        })
    }
    .await)
}

#[server]
pub async fn revoke_seat(code: String, serial: String) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        store()?.unassign(org.id, &serial, &code, store::Actor::AdminSession).await?;
        Ok(())
    }
    .await;
    finish_form("revoke", result)
}

#[server]
pub async fn remove_from_queue(code: String, serial: String) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        store()?.remove_from_line(org.id, &code, &serial, store::Actor::AdminSession).await?;
        Ok(())
    }
    .await;
    finish_form("queue", result)
}

/// A whole number as typed in a number field, if `valid` takes it; the
/// error `code` otherwise.
#[cfg(feature = "ssr")]
fn typed(text: &str, valid: fn(i64) -> Result<(), store::StoreError>, code: &str) -> Result<i64, UiError> {
    text.trim().parse::<i64>().ok().filter(|number| valid(*number).is_ok()).ok_or_else(|| UiError::new(code))
}

/// The same, or `None` for an empty field.
#[cfg(feature = "ssr")]
fn typed_or_empty(text: &str, valid: fn(i64) -> Result<(), store::StoreError>, code: &str) -> Result<Option<i64>, UiError> {
    match text.trim() {
        "" => Ok(None),
        text => typed(text, valid, code).map(Some),
    }
}

/// Changes the product's policy as the screen's form `form` asks: the
/// session first, then the form's fields (`update`), then the store's one
/// operation, which the admin API's PATCH calls too.
#[cfg(feature = "ssr")]
async fn change_policy(
    form: &str,
    code: &str,
    update: impl FnOnce() -> Result<store::PolicyUpdate, UiError>,
) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        let update = update()?;
        store()?.update_policy(org.id, code, &update, store::Actor::AdminSession).await?;
        Ok(())
    }
    .await;
    finish_form(form, result)
}

/// `days` as typed in the number field.
#[server]
pub async fn set_license_days(code: String, days: String) -> Result<(), UiError> {
    use store::{PolicyUpdate, validate};
    change_policy("license-days", &code, || {
        let days = typed(&days, validate::license_days, "invalid_license_days")?;
        Ok(PolicyUpdate { license_days: Some(days), ..PolicyUpdate::default() })
    })
    .await
}

/// `days` as typed: empty turns reclaiming off.
#[server]
pub async fn set_reclaim_days(code: String, days: String) -> Result<(), UiError> {
    use store::{PolicyUpdate, validate};
    change_policy("reclaim-days", &code, || {
        let days = typed_or_empty(&days, validate::reclaim_after_days, "invalid_reclaim_days")?;
        Ok(PolicyUpdate { reclaim_after_days: Some(days), ..PolicyUpdate::default() })
    })
    .await
}

/// `percent` as typed: empty turns the alert off.
#[server]
pub async fn set_alert_percent(code: String, percent: String) -> Result<(), UiError> {
    use store::{PolicyUpdate, validate};
    change_policy("alert-percent", &code, || {
        let percent = typed_or_empty(&percent, validate::alert_at_percent, "invalid_alert_percent")?;
        Ok(PolicyUpdate { alert_at_percent: Some(percent), ..PolicyUpdate::default() })
    })
    .await
}

/// `model` from the seat-model choice, `minutes` as typed (the lease of
/// floating seats; kept as it is when empty).
#[server]
pub async fn set_seat_model(code: String, model: String, minutes: String) -> Result<(), UiError> {
    use store::{PolicyUpdate, SeatModel, validate};
    change_policy("seat-model", &code, || {
        let seat_model = SeatModel::parse(&model).ok_or_else(|| UiError::new("invalid_seat_model"))?;
        let lease_minutes = typed_or_empty(&minutes, validate::lease_minutes, "invalid_seat_model")?;
        Ok(PolicyUpdate { seat_model: Some(seat_model), lease_minutes, ..PolicyUpdate::default() })
    })
    .await
}

#[component]
pub fn ProductPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let screen = Resource::new(
        move || (params.read().get("code").unwrap_or_default(), query.read().get("after"), query.read().get("days")),
        |(code, after, days)| load_product(code, after, days),
    );

    view! {
        <Loaded data=screen back=("/", "Back to Licenses") page={move |screen: ProductScreen| {
            let ProductScreen {
                product, license_days, reclaim_after_days, floating, lease_minutes, alert_at_percent, usage, usage_days, today,
                holders, waiting, next,
            } = screen;
            let alert_code = product.code.clone();
            let queue_code = product.code.clone();
            let code = product.code.clone();
            let (days_code, reclaim_code, model_code) = (code.clone(), code.clone(), code.clone());
            view! {
                <p class="crumbs"><A href="/">"Licenses"</A>" › "{product.name.clone()}</p>
                <h1>{product.name.clone()}</h1>
                <p class="summary">
                    {product.assigned}" of "{product.seats}
                    {if floating { " floating seats in use now, " } else { " seats assigned, " }}
                    {product.available}" available"
                    {product.over_allocated.then(|| view! { " " <span class="badge danger">"Over-allocated"</span> })}
                    {product.term.clone().map(|term| view! { " " <span class="note" class:expired=product.expired>{term}</span> })}
                </p>
                <section class="usage" aria-label="Seat usage">
                    <p class="range">
                        "Seat usage over "
                        {if usage_days == 90 {
                            view! { <A href="?days=30">"30 days"</A>" · "<strong>"90 days"</strong> }.into_any()
                        } else {
                            view! { <strong>"30 days"</strong>" · "<A href="?days=90">"90 days"</A> }.into_any()
                        }}
                    </p>
                    <crate::usage::UsageChart points=usage days=usage_days today />
                </section>
                <form method="post" action=posting_to(SetSeatModel::url()) class="inline setting">
                    <input type="hidden" name="code" value=model_code />
                    <label for="seat-model">"Seats are"</label>
                    <select id="seat-model" name="model">
                        <option value="assigned" selected=!floating>"assigned: a device keeps its seat until it is freed"</option>
                        <option value="floating" selected=floating>"floating: leased while a device keeps checking in"</option>
                    </select>
                    <label for="lease-minutes">"Leases last"</label>
                    <input id="lease-minutes" type="number" name="minutes" min="5" max="1440" required
                        value=lease_minutes.to_string() />
                    <span>"minutes after each check-in"</span>
                    <button type="submit" class="small">"Save"</button>
                </form>
                <PostedError form="seat-model" />
                <form method="post" action=posting_to(SetLicenseDays::url()) class="inline setting">
                    <input type="hidden" name="code" value=days_code />
                    <label for="license-days">"Signed licenses stay valid for"</label>
                    <input id="license-days" type="number" name="days" min="1" max="365" required
                        value=license_days.to_string() />
                    <span>"days after each check-in"</span>
                    <button type="submit" class="small">"Save"</button>
                </form>
                <PostedError form="license-days" />
                <form method="post" action=posting_to(SetReclaimDays::url()) class="inline setting">
                    <input type="hidden" name="code" value=reclaim_code />
                    <label for="reclaim-days">"Reclaim seats of devices not seen for"</label>
                    <input id="reclaim-days" type="number" name="days" min="1" max="3650" placeholder="never"
                        value=reclaim_after_days.map(|days| days.to_string()).unwrap_or_default() />
                    <span>"days (empty: never)"</span>
                    <button type="submit" class="small">"Save"</button>
                </form>
                <PostedError form="reclaim-days" />
                <form method="post" action=posting_to(SetAlertPercent::url()) class="inline setting">
                    <input type="hidden" name="code" value=alert_code />
                    <label for="alert-percent">"Alert when the seats in use reach"</label>
                    <input id="alert-percent" type="number" name="percent" min="1" max="100" placeholder="never"
                        value=alert_at_percent.map(|percent| percent.to_string()).unwrap_or_default() />
                    <span>"% of the seats (empty: no alert)"</span>
                    <button type="submit" class="small">"Save"</button>
                </form>
                <PostedError form="alert-percent" />
                <PostedError form="revoke" />
                {if holders.is_empty() {
                    view! { <p class="muted">"No device holds a seat of this product."</p> }.into_any()
                } else {
                    view! {
                        <div class="table-wrap">
                            <table>
                                <thead>
                                    <tr>
                                        <th scope="col">"Serial number"</th>
                                        <th scope="col">"Assigned"</th>
                                        <th scope="col">"Last seen"</th>
                                        {floating.then(|| view! { <th scope="col">"Lease ends"</th> })}
                                        <th scope="col"><span class="visually-hidden">"Revoke"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {holders.into_iter().map(|holder| {
                                        let label = format!("Revoke {}", holder.serial);
                                        let href = format!("/devices/{}", encode_segment(&holder.serial));
                                        let code = code.clone();
                                        let serial = holder.serial.clone();
                                        view! {
                                            <tr>
                                                <th scope="row">
                                                    <A href=href>{holder.serial}</A>
                                                </th>
                                                <td><When moment=holder.assigned /></td>
                                                <td><When moment=holder.last_seen /></td>
                                                {floating.then(|| view! {
                                                    <td>{holder.lease_ends.map(|moment| view! { <When moment /> })}</td>
                                                })}
                                                <td class="actions">
                                                    <form method="post" action=posting_to(RevokeSeat::url()) class="inline">
                                                        <input type="hidden" name="code" value=code />
                                                        <input type="hidden" name="serial" value=serial />
                                                        <button type="submit" class="icon danger" aria-label=label.clone() title=label>"×"</button>
                                                    </form>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                        {next.map(|after| view! {
                            <p class="pager"><A href=format!("?after={}", encode_segment(&after))>"More devices →"</A></p>
                        })}
                    }.into_any()
                }}
                {(!waiting.is_empty()).then(|| view! {
                    <section class="waiting" aria-labelledby="waiting-heading">
                        <h2 id="waiting-heading">"Waiting for a seat"</h2>
                        <PostedError form="queue" />
                        <div class="table-wrap">
                            <table>
                                <thead>
                                    <tr>
                                        <th scope="col" class="num">"Position"</th>
                                        <th scope="col">"Serial number"</th>
                                        <th scope="col">"Waiting since"</th>
                                        <th scope="col"><span class="visually-hidden">"Remove"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {waiting.into_iter().map(|waiter| {
                                        let label = format!("Remove {} from the line", waiter.serial);
                                        let code = queue_code.clone();
                                        view! {
                                            <tr>
                                                <td class="num">{waiter.position}</td>
                                                <th scope="row">{waiter.serial.clone()}</th>
                                                <td><When moment=waiter.since /></td>
                                                <td class="actions">
                                                    <form method="post" action=posting_to(RemoveFromQueue::url()) class="inline">
                                                        <input type="hidden" name="code" value=code />
                                                        <input type="hidden" name="serial" value=waiter.serial />
                                                        <button type="submit" class="icon danger" aria-label=label.clone() title=label>"×"</button>
                                                    </form>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    </section>
                })}
            }.into_any()
        }}/>
    }
}
