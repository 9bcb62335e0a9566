//! The Activity screen: the organization's audit log, newest first, filtered
//! by product, device, kind of change, who made it and a time range, paged,
//! and downloadable as CSV with the same filters.

use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::frame::Loaded;
use crate::ui::{Alert, Moment, UiError, When, encode_segment};

pub const CHANGES_PER_PAGE: u32 = 50;

/// The query parameters the filters use, in the form's order.
const FILTERS: [&str; 6] = ["product", "serial", "kind", "actor", "since", "until"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRow {
    pub at: Moment,
    pub actor: String,
    pub kind: String,
    pub product: Option<String>,
    pub serial: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityScreen {
    pub changes: Vec<ChangeRow>,
    /// The id to continue before, for older changes.
    pub next: Option<String>,
    /// What the filters offer: products (code, name), kinds and actors.
    pub products: Vec<(String, String)>,
    pub kinds: Vec<String>,
    pub actors: Vec<String>,
    /// Why the filters were refused, if they were.
    pub problem: Option<String>,
}

#[server]
pub async fn load_activity(
    product: Option<String>,
    serial: Option<String>,
    kind: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
    before: Option<String>,
) -> Result<ActivityScreen, UiError> {
    use crate::server::*;
    use store::prelude::*;
    use store::{ActivityKind, ActivityQuery, Actor, StoreError};
    respond(async {
        let org = require_org().await?;
        let store = store()?;
        let products = store.products(org.id).await?.into_iter().map(|p| (p.code, p.name)).collect();
        let kinds = ActivityKind::ALL.iter().map(|k| k.as_str().to_owned()).collect();
        let actors = Actor::ALL.iter().map(|a| a.as_str().to_owned()).collect();
        let query = ActivityQuery { product, serial, kind, actor, since, until };
        let before = before.and_then(|id| id.parse().ok());
        let mut screen = ActivityScreen { changes: vec![], next: None, products, kinds, actors, problem: None };
        let filter = match query.filter(before, CHANGES_PER_PAGE) {
            Ok(filter) => filter,
            Err(StoreError::Invalid(problem)) => return Ok(ActivityScreen { problem: Some(problem), ..screen }),
            Err(error) => return Err(error.into()),
        };
        let page = store.activity(org.id, &filter).await?;
        let now = store::now();
        screen.changes = page
            .items
            .into_iter()
            .map(|change| ChangeRow {
                at: moment(change.at, now),
                actor: change.actor.as_str().to_owned(),
                kind: change.kind.as_str().to_owned(),
                product: change.product,
                serial: change.serial,
                detail: change.detail,
            })
            .collect();
        screen.next = page.next;
        Ok(screen)
    }
    .await)
}

/// A kind of change in words: `seat_auto_assigned` → "Seat auto-assigned".
pub fn kind_label(kind: &str) -> String {
    let words = kind.replace("auto_assign", "auto-assign").replace('_', " ");
    let mut chars = words.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub fn actor_label(actor: &str) -> &'static str {
    match actor {
        "operator" => "Operator (command line)",
        "admin_session" => "Admin (screens)",
        "admin_api" => "Admin API",
        "device" => "Device check-in",
        "reclaim" => "Idle-seat reclaim",
        _ => "Other",
    }
}

#[component]
pub fn ActivityPage() -> impl IntoView {
    let query = use_query_map();
    let value = move |name: &str| query.read().get(name).unwrap_or_default();
    let screen = Resource::new(
        move || (FILTERS.map(value), value("before")),
        |(filters, before)| {
            let given = |text: &String| (!text.is_empty()).then(|| text.clone());
            let [product, serial, kind, actor, since, until] = filters.each_ref().map(given);
            load_activity(product, serial, kind, actor, since, until, given(&before))
        },
    );
    // The filters as a query string, to carry into the CSV link and the pager.
    let filters_query = move || {
        FILTERS
            .iter()
            .filter_map(|name| {
                let text = value(name);
                (!text.is_empty()).then(|| format!("{name}={}", encode_segment(&text)))
            })
            .collect::<Vec<_>>()
            .join("&")
    };

    view! {
        <h1>"Activity"</h1>
        <Loaded data=screen loading="Loading activity…" page={move |screen: ActivityScreen| {
            let ActivityScreen { changes, next, products, kinds, actors, problem } = screen;
            let selected = move |name: &str, option: &str| value(name) == option;
            let csv = format!("/activity.csv?{}", filters_query());
            view! {
                <Form method="GET" action="" attr:class="filters" attr:aria-label="Filter activity">
                    <div class="field">
                        <label for="filter-product">"Product"</label>
                        <select id="filter-product" name="product">
                            <option value="">"Any product"</option>
                            {products.into_iter().map(|(code, name)| {
                                let chosen = selected("product", &code);
                                view! { <option value=code selected=chosen>{name}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field">
                        <label for="filter-serial">"Serial number"</label>
                        <input id="filter-serial" type="text" name="serial" value=value("serial") placeholder="Exact serial" />
                    </div>
                    <div class="field">
                        <label for="filter-kind">"What"</label>
                        <select id="filter-kind" name="kind">
                            <option value="">"Any change"</option>
                            {kinds.into_iter().map(|kind| {
                                let chosen = selected("kind", &kind);
                                let label = kind_label(&kind);
                                view! { <option value=kind selected=chosen>{label}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field">
                        <label for="filter-actor">"Who"</label>
                        <select id="filter-actor" name="actor">
                            <option value="">"Anyone"</option>
                            {actors.into_iter().map(|actor| {
                                let chosen = selected("actor", &actor);
                                let label = actor_label(&actor);
                                view! { <option value=actor selected=chosen>{label}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field">
                        <label for="filter-since">"From"</label>
                        <input id="filter-since" type="date" name="since" value=value("since") />
                    </div>
                    <div class="field">
                        <label for="filter-until">"To"</label>
                        <input id="filter-until" type="date" name="until" value=value("until") />
                    </div>
                    <button type="submit">"Apply"</button>
                    <a href=csv download="activity.csv" rel="external">"Download CSV"</a>
                </Form>
                {problem.map(|message| view! { <Alert message/> })}
                {if changes.is_empty() {
                    view! { <p class="muted">"No change matches."</p> }.into_any()
                } else {
                    view! {
                        <div class="table-wrap">
                            <table>
                                <thead>
                                    <tr>
                                        <th scope="col">"When"</th>
                                        <th scope="col">"Who"</th>
                                        <th scope="col">"What"</th>
                                        <th scope="col">"Product"</th>
                                        <th scope="col">"Device"</th>
                                        <th scope="col">"Detail"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {changes.into_iter().map(|change| view! {
                                        <tr>
                                            <td><When moment=change.at /></td>
                                            <td>{actor_label(&change.actor)}</td>
                                            <td>{kind_label(&change.kind)}</td>
                                            <td>{change.product.map(|code| {
                                                let href = format!("/products/{}", encode_segment(&code));
                                                view! { <A href=href>{code}</A> }
                                            })}</td>
                                            <td>{change.serial.map(|serial| {
                                                let href = format!("/devices/{}", encode_segment(&serial));
                                                view! { <A href=href>{serial}</A> }
                                            })}</td>
                                            <td>{change.detail}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any()
                }}
                <p class="pager">
                    {(!value("before").is_empty()).then(|| {
                        view! { <A href=format!("/activity?{}", filters_query())>"← Newest"</A> }
                    })}
                    {next.map(|before| {
                        let href = format!("/activity?{}&before={}", filters_query(), encode_segment(&before));
                        view! { <A href=href>"Older changes →"</A> }
                    })}
                </p>
            }.into_any()
        }}/>
    }
}
