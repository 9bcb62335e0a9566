//! The Devices screen: every device of the organization by serial, searchable
//! and paged by keyset (so it stays fast with a million devices), with view,
//! delete and ignore on each row.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::frame::Loaded;
use crate::ui::{ConfirmForm, Moment, PostedError, UiError, When, encode_segment, posting_to};

pub const DEVICES_PER_PAGE: u32 = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRow {
    pub serial: String,
    pub first_seen: Moment,
    pub last_seen: Moment,
    pub seats_assigned: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevicesScreen {
    pub devices: Vec<DeviceRow>,
    pub next: Option<String>,
    /// The products a bulk action may assign: (code, name).
    #[serde(default)]
    pub products: Vec<(String, String)>,
}

#[server]
pub async fn list_devices(q: Option<String>, after: Option<String>) -> Result<DevicesScreen, UiError> {
    use crate::server::*;
    use store::prelude::*;
    use store::PageRequest;
    respond(async {
        let org = require_org().await?;
        let store = store()?;
        let page = store.devices(org.id, q.as_deref(), &PageRequest { after, limit: DEVICES_PER_PAGE }).await?;
        let products = store.products(org.id).await?.into_iter().map(|p| (p.code, p.name)).collect();
        let now = store::now();
        Ok(DevicesScreen {
            devices: page
                .items
                .into_iter()
                .map(|d| DeviceRow {
                    serial: d.serial,
                    first_seen: moment(d.first_seen, now),
                    last_seen: moment(d.last_seen, now),
                    seats_assigned: d.seats_assigned,
                })
                .collect(),
            next: page.next,
            products,
        })
    }
    .await)
}

/// Deletes a device and frees its seats. If it checks in again, it returns as
/// a new device. A plain form post goes on to `next` afterwards, if given.
#[server]
pub async fn delete_device(serial: String, next: Option<String>) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        Ok(store()?.delete_device(org.id, &serial, store::Actor::AdminSession).await?)
    }
    .await;
    finish_form_then("device-actions", result, next.as_deref())
}

/// Deletes a device and puts its serial on the ignore list. A plain form post
/// goes on to `next` afterwards, if given.
#[server]
pub async fn ignore_device(serial: String, next: Option<String>) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        store()?.ignore_device(org.id, &serial, store::Actor::AdminSession).await?;
        Ok(())
    }
    .await;
    finish_form_then("device-actions", result, next.as_deref())
}

/// One action on the selected devices (`serials[]`), or with `every` on
/// every device matching the search `q`. Answers the outcome in words.
#[server]
pub async fn bulk_devices(
    action: String,
    product: Option<String>,
    serials: Option<Vec<String>>,
    every: Option<String>,
    q: Option<String>,
) -> Result<String, UiError> {
    use crate::server::*;
    use store::bulk::{self, BulkAction};
    let result = async {
        let org = require_org().await?;
        let store = store()?;
        let action = BulkAction::parse(&action).ok_or_else(|| UiError::new("bad_request"))?;
        let serials = match every {
            Some(_) => bulk::matching(&store, org.id, q.as_deref()).await?,
            None => serials.unwrap_or_default(),
        };
        if serials.is_empty() {
            return Err(UiError::new("nothing_selected"));
        }
        let product = product.filter(|_| matches!(action, BulkAction::Assign | BulkAction::Unassign));
        Ok(bulk::apply(&store, org.id, action, product.as_deref(), &serials, store::Actor::AdminSession).await?)
    }
    .await;
    let told = result.as_ref().ok().map(|outcome| {
        let mut told = format!("{}.{}", outcome.action.as_str(), outcome.done);
        for (reason, count) in &outcome.skipped {
            told.push_str(&format!(".{reason}-{count}"));
        }
        told
    });
    finish_form_telling("bulk", result.map(|outcome| outcome.summary), told)
}

/// The words for a bulk outcome carried back in `done=` when JavaScript is
/// off: only known actions and reasons, and numbers, are read.
pub fn told(done: &str) -> Option<String> {
    let mut parts = done.split('.');
    let action = match parts.next()? {
        "assign" => "assigned",
        "unassign" => "unassigned",
        "delete" => "deleted",
        "ignore" => "ignored",
        _ => return None,
    };
    let count: u64 = parts.next()?.parse().ok()?;
    let mut skipped = Vec::new();
    let mut total = 0;
    for part in parts {
        let (reason, n) = part.split_once('-')?;
        let n: u64 = n.parse().ok()?;
        let words = match reason {
            "no_seats_available" => "no seats left",
            "already_assigned" => "already assigned",
            "unknown_device" => "no such device",
            _ => return None,
        };
        total += n;
        skipped.push(format!("{n} {words}"));
    }
    Some(if skipped.is_empty() {
        format!("{action} {count}")
    } else {
        format!("{action} {count}, {total} skipped: {}", skipped.join(", "))
    })
}

/// What to ask before deleting or ignoring a device.
pub fn questions(serial: &str) -> (String, String) {
    (
        format!("Delete {serial}? Its seats are freed; it reappears if it checks in again."),
        format!("Ignore {serial}? It is deleted and its check-ins are refused until you un-ignore it."),
    )
}

#[component]
pub fn DevicesPage() -> impl IntoView {
    let query = use_query_map();
    let search = move || query.read().get("q").unwrap_or_default();
    let screen = Resource::new(
        move || (search(), query.read().get("after")),
        |(q, after)| list_devices((!q.is_empty()).then_some(q), after),
    );
    // The outcome of the last bulk action, carried back in `done=`.
    let bulk_told = move || query.read().get("done").and_then(|done| told(&done));
    let (delete_url, ignore_url) = (StoredValue::new(posting_to(DeleteDevice::url())), StoredValue::new(posting_to(IgnoreDevice::url())));

    let search_form = move || view! {
        <h1>"Devices"</h1>
        <Form method="GET" action="" attr:class="search" attr:role="search">
            <label for="device-search">"Search serial numbers"</label>
            <input id="device-search" type="search" name="q" value=search placeholder="Part of a serial" />
            <button type="submit">"Search"</button>
            <a href=move || format!("/devices.csv?q={}", encode_segment(&search())) download="devices.csv" rel="external">
                "Download CSV"
            </a>
        </Form>
        <PostedError form="device-actions" />
        <PostedError form="bulk" />
        {move || bulk_told().map(|summary| view! { <p class="notice" role="status">{summary}</p> })}
    };

    let bulk_form = move |products: Vec<(String, String)>| {
        let every_label = if search().is_empty() {
            "every device".to_owned()
        } else {
            format!("every device matching “{}”", search())
        };
        view! {
            <ConfirmForm action=posting_to(BulkDevices::url()) question="Apply this to the selected devices?".to_owned()
                id="bulk".to_owned() class="bulk".to_owned()>
                <input type="hidden" name="q" value=search />
                <label for="bulk-action">"With the selected devices"</label>
                <select id="bulk-action" name="action">
                    <option value="assign">"Assign"</option>
                    <option value="unassign">"Unassign"</option>
                    <option value="delete">"Delete"</option>
                    <option value="ignore">"Ignore"</option>
                </select>
                <label for="bulk-product">"Product"</label>
                <select id="bulk-product" name="product">
                    {products.into_iter().map(|(code, name)| view! { <option value=code>{name}</option> }).collect_view()}
                </select>
                <label class="check"><input type="checkbox" name="every" value="on" />{every_label}</label>
                <button type="submit">"Apply"</button>
            </ConfirmForm>
        }
    };

    view! {
        <Loaded data=screen loading="Loading devices…" page={move |screen: DevicesScreen| match screen {
            DevicesScreen { devices, .. } if devices.is_empty() => view! {
                {search_form()}
                <p class="muted">{if search().is_empty() { "No device has checked in yet." } else { "No device matches that search." }}</p>
            }.into_any(),
            DevicesScreen { devices, next, products } => view! {
                {search_form()}
                {bulk_form(products)}
                <div class="table-wrap">
                    <table class="devices">
                        <thead>
                            <tr>
                                <th scope="col" class="select"><span class="visually-hidden">"Select"</span></th>
                                <th scope="col">"Serial number"</th>
                                <th scope="col" class="wide">"First seen"</th>
                                <th scope="col">"Last seen"</th>
                                <th scope="col" class="num">"Seats assigned"</th>
                                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            {devices.into_iter().map(|device| {
                                let href = format!("/devices/{}", encode_segment(&device.serial));
                                let serial = device.serial.clone();
                                let (delete_question, ignore_question) = questions(&serial);
                                let (view_label, delete_label, ignore_label) =
                                    (format!("View {serial}"), format!("Delete {serial}"), format!("Ignore {serial}"));
                                let delete_serial = serial.clone();
                                let ignore_serial = serial.clone();
                                view! {
                                    <tr>
                                        <td class="select">
                                            <input type="checkbox" name="serials[]" value=serial.clone() form="bulk"
                                                aria-label=format!("Select {serial}") />
                                        </td>
                                        <th scope="row"><A href=href.clone()>{device.serial.clone()}</A></th>
                                        <td class="wide"><When moment=device.first_seen /></td>
                                        <td class="seen" data-label="Last seen"><When moment=device.last_seen /></td>
                                        <td class="num" data-label="Seats">{device.seats_assigned}</td>
                                        <td class="actions">
                                            <div class="row-actions">
                                                <A href=href attr:aria-label=view_label>"View"</A>
                                                <ConfirmForm action=delete_url.get_value() question=delete_question class="inline".to_owned()>
                                                    <input type="hidden" name="serial" value=delete_serial />
                                                    <button type="submit" class="small danger" aria-label=delete_label>"Delete"</button>
                                                </ConfirmForm>
                                                <ConfirmForm action=ignore_url.get_value() question=ignore_question class="inline".to_owned()>
                                                    <input type="hidden" name="serial" value=ignore_serial />
                                                    <button type="submit" class="small" aria-label=ignore_label>"Ignore"</button>
                                                </ConfirmForm>
                                            </div>
                                        </td>
                                    </tr>
                                }
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
                <p class="pager">
                    {query.read().get("after").map(|_| {
                        let first = if search().is_empty() { "/devices".to_owned() } else { format!("/devices?q={}", encode_segment(&search())) };
                        view! { <A href=first>"← First page"</A> }
                    })}
                    {next.map(|after| {
                        let href = format!("/devices?q={}&after={}", encode_segment(&search()), encode_segment(&after));
                        view! { <A href=href>"Next page →"</A> }
                    })}
                </p>
            }.into_any(),
        }}/>
    }
}
