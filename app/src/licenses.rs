//! The Licenses screen: every product with its seats, what is assigned and
//! available, and the auto-assign switch.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};

use crate::frame::Loaded;
use crate::ui::{SavingCheckbox, UiError, posted_error, posting_to, use_hydrated};

/// A product as the screens show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    pub code: String,
    pub name: String,
    pub seats: i64,
    pub assigned: i64,
    pub available: i64,
    pub auto_assign: bool,
    pub over_allocated: bool,
    /// Seats of devices not seen for this many days are reclaimed.
    #[serde(default)]
    pub reclaim_after_days: Option<i64>,
    /// Floating seats, leased for this many minutes (`assigned` counts the
    /// leases in use now); `None` for assigned seats.
    #[serde(default)]
    pub lease_minutes: Option<i64>,
    /// The subscription's end in words ("Subscription expires in 12 days",
    /// "Subscription expired on 2026-11-30"), when it has one.
    #[serde(default)]
    pub term: Option<String>,
    /// Whether the subscription has ended.
    #[serde(default)]
    pub expired: bool,
    /// Devices refused for want of a seat in the last seven days.
    #[serde(default)]
    pub refused_this_week: i64,
    /// The share of seats in use that raises an alert, if any.
    #[serde(default)]
    pub alert_at_percent: Option<i64>,
    /// What calls for the admin's attention: seats in use at the alert's
    /// share, refusals this week, a subscription ending within 14 days or
    /// ended.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// Assigned seats against seats over the last [`TREND_DAYS`] days.
    #[serde(default)]
    pub trend: Vec<crate::usage::UsagePoint>,
    #[serde(default)]
    pub today: i64,
}

/// Days a Licenses sparkline covers.
pub const TREND_DAYS: i64 = 30;

#[cfg(feature = "ssr")]
impl From<store::Product> for ProductView {
    fn from(p: store::Product) -> Self {
        let now = store::now();
        ProductView {
            over_allocated: p.over_allocated(),
            term: p.valid_until.map(|last_day| term_words(last_day, now)),
            expired: p.term_ended(now),
            code: p.code,
            name: p.name,
            seats: p.seats,
            assigned: p.assigned,
            available: p.available,
            auto_assign: p.auto_assign,
            reclaim_after_days: None,
            lease_minutes: None,
            refused_this_week: 0,
            alert_at_percent: None,
            alerts: Vec::new(),
            trend: Vec::new(),
            today: 0,
        }
    }
}

#[server]
pub async fn list_products() -> Result<Vec<ProductView>, UiError> {
    use crate::server::*;
    use store::prelude::*;
    respond(async {
        let org = require_org().await?;
        let store = store()?;
        let today = store::day_of(store::now());
        let usage = store.usage(org.id, today - TREND_DAYS + 1).await?;
        let policies: std::collections::HashMap<String, store::ProductPolicy> =
            store.policies(org.id).await?.into_iter().collect();
        let refused: std::collections::HashMap<String, i64> = store.refused_devices(org.id, today - 6).await?.into_iter().collect();
        let views = store.products(org.id).await?.into_iter().map(|product| {
            let policy = policies.get(&product.code);
            let reclaim_after_days = policy.and_then(|policy| policy.reclaim_after_days);
            let lease_minutes = policy.and_then(floating_lease);
            let trend = usage_of(&usage, &product, today);
            let refused_this_week = refused.get(&product.code).copied().unwrap_or(0);
            let alerts = alerts_of(&product, policy, refused_this_week);
            let alert_at_percent = policy.and_then(|policy| policy.alert_at_percent);
            ProductView {
                reclaim_after_days,
                lease_minutes,
                refused_this_week,
                alert_at_percent,
                alerts,
                trend,
                today,
                ..ProductView::from(product)
            }
        });
        Ok(views.collect())
    }
    .await)
}

/// A subscription's end in words, as of `now`.
#[cfg(feature = "ssr")]
pub(crate) fn term_words(last_day: chrono::NaiveDate, now: store::Timestamp) -> String {
    let days = (last_day - now.date_naive()).num_days();
    match days {
        ..0 => format!("Subscription expired on {last_day}"),
        0 => "Subscription expires today".to_owned(),
        1 => "Subscription expires tomorrow".to_owned(),
        _ => format!("Subscription expires in {days} days"),
    }
}

/// What about a product calls for its admin's attention now.
#[cfg(feature = "ssr")]
pub(crate) fn alerts_of(product: &store::Product, policy: Option<&store::ProductPolicy>, refused_this_week: i64) -> Vec<String> {
    let now = store::now();
    let mut alerts = Vec::new();
    if let Some(percent) = policy.filter(|policy| policy.alerts_for(product)).and_then(|policy| policy.alert_at_percent) {
        alerts.push(format!(
            "{}: {} of {} seats in use, at or above the alert at {percent}%",
            product.name, product.assigned, product.seats
        ));
    }
    match refused_this_week {
        0 => {}
        1 => alerts.push(format!("{}: 1 device refused this week for want of a seat", product.name)),
        n => alerts.push(format!("{}: {n} devices refused this week for want of a seat", product.name)),
    }
    if let Some(last_day) = product.valid_until.filter(|last_day| (*last_day - now.date_naive()).num_days() < 14) {
        alerts.push(format!("{}: {}", product.name, term_words(last_day, now)));
    }
    alerts
}

/// A floating product's lease in minutes; `None` for assigned seats.
#[cfg(feature = "ssr")]
pub(crate) fn floating_lease(policy: &store::ProductPolicy) -> Option<i64> {
    (policy.seat_model == store::SeatModel::Floating).then_some(policy.lease_minutes)
}

/// `auto_assign` is the checkbox: present ("on") when checked.
#[server]
pub async fn set_auto_assign(code: String, auto_assign: Option<String>) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        store()?.set_auto_assign(org.id, &code, auto_assign.is_some(), store::Actor::AdminSession).await?;
        Ok(())
    }
    .await;
    finish_form(&format!("auto-assign-{code}"), result)
}

#[component]
pub fn LicensesPage() -> impl IntoView {
    let products = Resource::new(|| (), |_| list_products());

    view! {
        <Loaded data=products loading="Loading products…" page={move |screen: Vec<ProductView>| match screen {
            list if list.is_empty() => view! {
                <h1>"Licenses"</h1>
                <p class="muted">"Your organization has no products yet. Your vendor adds them."</p>
            }.into_any(),
            list => view! {
                <h1>"Licenses"</h1>
                {
                    let alerts: Vec<String> = list.iter().flat_map(|product| product.alerts.clone()).collect();
                    (!alerts.is_empty()).then(|| view! {
                        <section class="alerts" aria-labelledby="alerts-heading">
                            <h2 id="alerts-heading">"Alerts"</h2>
                            <ul>{alerts.into_iter().map(|alert| view! { <li>{alert}</li> }).collect_view()}</ul>
                        </section>
                    })
                }
                <div class="table-wrap">
                    <table>
                        <thead>
                            <tr>
                                <th scope="col">"Product"</th>
                                <th scope="col" class="num">"Seats"</th>
                                <th scope="col" class="num">"Assigned"</th>
                                <th scope="col" class="num">"Available"</th>
                                <th scope="col">"Auto-assign"</th>
                                <th scope="col">"Last 30 days"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {list.into_iter().map(|product| view! { <ProductRow product /> }).collect_view()}
                        </tbody>
                    </table>
                </div>
            }.into_any(),
        }}/>
    }
}

#[component]
fn ProductRow(product: ProductView) -> impl IntoView {
    let posted = posted_error(&format!("auto-assign-{}", product.code));
    let action = posting_to(SetAutoAssign::url());
    let switch = view! { <AutoAssignSwitch action code=product.code.clone() name=product.name.clone() on=product.auto_assign posted /> };
    view! {
        <tr class:over=product.over_allocated>
            <th scope="row">
                <A href=format!("/products/{}", product.code)>{product.name.clone()}</A>
                <meter class="seats" aria-hidden="true" min="0" max=product.seats.max(1) value=product.assigned.min(product.seats.max(1))></meter>
                {product.over_allocated.then(|| view! {
                    <span class="badge danger">"Over-allocated"</span>
                })}
                {product.term.clone().map(|term| view! {
                    <span class="note" class:expired=product.expired>{term}</span>
                })}
                {product.lease_minutes.map(|minutes| view! {
                    <span class="note">{format!("Floating seats: {minutes}-minute leases")}</span>
                })}
                {(product.refused_this_week > 0).then(|| view! {
                    <span class="note refused">{match product.refused_this_week {
                        1 => "1 device refused this week".to_owned(),
                        n => format!("{n} devices refused this week"),
                    }}</span>
                })}
                {product.reclaim_after_days.map(|days| view! {
                    <span class="note">{format!("Idle seats reclaimed after {days} days")}</span>
                })}
            </th>
            <td class="num">{product.seats}</td>
            <td class="num">
                {product.assigned}
                {product.lease_minutes.map(|_| view! { <span class="note">"in use now"</span> })}
            </td>
            <td class="num">{product.available}</td>
            <td>{switch}</td>
            <td><crate::usage::Sparkline points=product.trend.clone() days=TREND_DAYS today=product.today /></td>
        </tr>
    }
}

/// The auto-assign switch, which saves as soon as it is flipped (see
/// [`SavingCheckbox`]). `action` is where its form posts (see
/// `ui::posting_to`).
#[island]
fn AutoAssignSwitch(action: String, code: String, name: String, on: bool, posted: Option<String>) -> impl IntoView {
    let switch = SavingCheckbox::new(on, posted);
    let hydrated = use_hydrated();
    view! {
        <form method="post" action=action class="inline" on:submit=switch.on_submit(|()| ())>
            <input type="hidden" name="code" value=code />
            <label class="switch">
                <input
                    type="checkbox"
                    role="switch"
                    name="auto_assign"
                    aria-label=format!("Auto-assign {name}")
                    checked=on
                    prop:checked=switch.checked
                    prop:disabled=switch.pending
                    on:change=switch.on_change()
                />
                <span>{move || if switch.checked.get() { "On" } else { "Off" }}</span>
            </label>
            <button type="submit" class="small" hidden=move || hydrated.get()>"Save"</button>
            {switch.alert()}
        </form>
    }
}
