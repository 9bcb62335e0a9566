//! The Devices screen: every device of the organization by serial, searchable
//! and paged by keyset (so it stays fast with a million devices), with view,
//! delete and ignore on each row.

use leptos::prelude::*;
use leptos_router::components::{A, Form};
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::auth::AuthActions;
use crate::ui::{ActionError, Failure, Moment, UiError, When, encode_segment};

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
}

#[server]
pub async fn list_devices(q: Option<String>, after: Option<String>) -> Result<DevicesScreen, UiError> {
    use crate::server::*;
    use store::{LicenseStore, PageRequest};
    respond(async {
        let org = require_org().await?;
        let page = store()?.devices(org.id, q.as_deref(), &PageRequest { after, limit: DEVICES_PER_PAGE }).await?;
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
        })
    }
    .await)
}

/// Deletes a device and frees its seats. If it checks in again, it returns as
/// a new device.
#[server]
pub async fn delete_device(serial: String) -> Result<(), UiError> {
    use crate::server::*;
    use store::LicenseStore;
    let result = async {
        let org = require_org().await?;
        Ok(store()?.delete_device(org.id, &serial, store::Actor::AdminSession).await?)
    }
    .await;
    finish_form("device-actions", result)
}

/// Deletes a device and puts its serial on the ignore list.
#[server]
pub async fn ignore_device(serial: String) -> Result<(), UiError> {
    use crate::server::*;
    use store::LicenseStore;
    let result = async {
        let org = require_org().await?;
        store()?.ignore_device(org.id, &serial, store::Actor::AdminSession).await?;
        Ok(())
    }
    .await;
    finish_form("device-actions", result)
}

/// What to ask before deleting or ignoring a device.
pub fn questions(serial: &str) -> (String, String) {
    (
        format!("Delete {serial}? Its seats are freed; it reappears if it checks in again."),
        format!("Ignore {serial}? It is deleted and its check-ins are refused until you un-ignore it."),
    )
}

/// Asks once before a form that deletes something is sent (with JavaScript).
pub fn confirm_submit(question: String) -> impl Fn(leptos::ev::SubmitEvent) + 'static {
    move |ev| {
        let confirmed = web_sys::window().and_then(|w| w.confirm_with_message(&question).ok()).unwrap_or(true);
        if !confirmed {
            ev.prevent_default();
        }
    }
}

#[component]
pub fn DevicesPage() -> impl IntoView {
    let auth = AuthActions::get();
    let query = use_query_map();
    let delete = ServerAction::<DeleteDevice>::new();
    let ignore = ServerAction::<IgnoreDevice>::new();
    let search = move || query.read().get("q").unwrap_or_default();
    let screen = Resource::new(
        move || (search(), query.read().get("after"), auth.version(), delete.version().get(), ignore.version().get()),
        |(q, after, ..)| list_devices((!q.is_empty()).then_some(q), after),
    );

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
        <ActionError value=delete.value() form="device-actions" />
        <ActionError value=ignore.value() form="device-actions" />
    };

    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading devices…"</p> }>
            {move || Suspend::new(async move {
                match screen.await {
                    Err(error) => view! { <Failure error/> }.into_any(),
                    Ok(DevicesScreen { devices, .. }) if devices.is_empty() => view! {
                        {search_form()}
                        <p class="muted">{if search().is_empty() { "No device has checked in yet." } else { "No device matches that search." }}</p>
                    }.into_any(),
                    Ok(DevicesScreen { devices, next }) => view! {
                        {search_form()}
                        <div class="table-wrap">
                            <table>
                                <thead>
                                    <tr>
                                        <th scope="col">"Serial number"</th>
                                        <th scope="col">"First seen"</th>
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
                                                <th scope="row">{device.serial.clone()}</th>
                                                <td><When moment=device.first_seen /></td>
                                                <td><When moment=device.last_seen /></td>
                                                <td class="num">{device.seats_assigned}</td>
                                                <td class="actions">
                                                    <A href=href attr:aria-label=view_label>"View"</A>
                                                    <ActionForm action=delete attr:class="inline" on:submit=confirm_submit(delete_question)>
                                                        <input type="hidden" name="serial" value=delete_serial />
                                                        <button type="submit" class="small danger" aria-label=delete_label>"Delete"</button>
                                                    </ActionForm>
                                                    <ActionForm action=ignore attr:class="inline" on:submit=confirm_submit(ignore_question)>
                                                        <input type="hidden" name="serial" value=ignore_serial />
                                                        <button type="submit" class="small" aria-label=ignore_label>"Ignore"</button>
                                                    </ActionForm>
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
                }
            })}
        </Transition>
    }
}
