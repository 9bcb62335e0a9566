//! The Device screen: one device's details and its *Assigned Licenses*, one
//! checkbox per product: checking assigns a seat (or says there is none free),
//! unchecking frees it.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};
use serde::{Deserialize, Serialize};

use crate::auth::AuthActions;
use crate::devices::{DeleteDevice, IgnoreDevice, confirm_submit, questions};
use crate::ui::{ActionError, Failure, Moment, UiError, When, submit_on_change, use_hydrated};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LicenseView {
    pub product: String,
    pub name: String,
    pub assigned: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceScreen {
    pub serial: String,
    pub first_seen: Moment,
    pub last_seen: Moment,
    pub seats_assigned: i64,
    pub licenses: Vec<LicenseView>,
}

#[server]
pub async fn load_device(serial: String) -> Result<DeviceScreen, UiError> {
    use crate::server::*;
    use store::LicenseStore;
    respond(async {
        let org = require_org().await?;
        let detail = store()?.device(org.id, &serial).await?;
        let now = store::now();
        Ok(DeviceScreen {
            serial: detail.device.serial,
            first_seen: moment(detail.device.first_seen, now),
            last_seen: moment(detail.device.last_seen, now),
            seats_assigned: detail.device.seats_assigned,
            licenses: detail
                .licenses
                .into_iter()
                .map(|l| LicenseView { product: l.product, name: l.name, assigned: l.assigned })
                .collect(),
        })
    }
    .await)
}

/// `assigned` is the checkbox: present ("on") when checked.
#[server]
pub async fn set_license(serial: String, product: String, assigned: Option<String>) -> Result<(), UiError> {
    use crate::server::*;
    use store::LicenseStore;
    let result = async {
        let org = require_org().await?;
        let store = store()?;
        if assigned.is_some() {
            store.assign(org.id, &serial, &product, store::Actor::AdminSession).await?;
        } else {
            store.unassign(org.id, &serial, &product, store::Actor::AdminSession).await?;
        }
        Ok(())
    }
    .await;
    finish_form(&format!("license-{product}"), result)
}

#[component]
pub fn DevicePage() -> impl IntoView {
    let auth = AuthActions::get();
    let params = use_params_map();
    let delete = ServerAction::<DeleteDevice>::new();
    let ignore = ServerAction::<IgnoreDevice>::new();
    let hydrated = use_hydrated();
    let serial = move || params.read().get("serial").unwrap_or_default();
    let screen = Resource::new(move || (serial(), auth.version()), |(serial, _)| load_device(serial));
    let saved = Callback::new(move |()| screen.refetch());

    // After a delete or ignore (with JavaScript) the device is gone: back to the list.
    let navigate = use_navigate();
    Effect::new(move |_| {
        if matches!(*delete.value().read(), Some(Ok(()))) || matches!(*ignore.value().read(), Some(Ok(()))) {
            navigate("/devices", Default::default());
        }
    });

    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match screen.await {
                    Err(error) => view! {
                        <Failure error/>
                        <p><A href="/devices">"Back to Devices"</A></p>
                    }.into_any(),
                    Ok(device) => {
                        let serial = device.serial.clone();
                        let (delete_question, ignore_question) = questions(&serial);
                        let delete_serial = serial.clone();
                        let ignore_serial = serial.clone();
                        view! {
                            <p class="crumbs"><A href="/devices">"Devices"</A>" › "{device.serial.clone()}</p>
                            <h1>{device.serial.clone()}</h1>
                            <dl class="facts">
                                <dt>"First seen"</dt><dd><When moment=device.first_seen /></dd>
                                <dt>"Last seen"</dt><dd><When moment=device.last_seen /></dd>
                                <dt>"Seats assigned"</dt><dd>{device.seats_assigned}</dd>
                            </dl>
                            <section aria-labelledby="licenses-title">
                                <h2 id="licenses-title">"Assigned Licenses"</h2>
                                {if device.licenses.is_empty() {
                                    view! { <p class="muted">"Your organization has no products yet."</p> }.into_any()
                                } else {
                                    view! {
                                        <ul class="licenses">
                                            {device.licenses.into_iter().map(|license| view! {
                                                <LicenseRow serial=serial.clone() license hydrated saved />
                                            }).collect_view()}
                                        </ul>
                                    }.into_any()
                                }}
                            </section>
                            <section class="danger-zone" aria-label="Remove this device">
                                <ActionError value=delete.value() form="device-actions" />
                                <ActionError value=ignore.value() form="device-actions" />
                                <ActionForm action=delete attr:class="inline" on:submit=confirm_submit(delete_question)>
                                    <input type="hidden" name="serial" value=delete_serial />
                                    <button type="submit" class="danger">"Delete device"</button>
                                </ActionForm>
                                <ActionForm action=ignore attr:class="inline" on:submit=confirm_submit(ignore_question)>
                                    <input type="hidden" name="serial" value=ignore_serial />
                                    <button type="submit">"Ignore device"</button>
                                </ActionForm>
                                <p class="muted">"Deleting frees its seats; the device reappears if it checks in again. Ignoring also refuses its check-ins until you un-ignore it in Settings."</p>
                            </section>
                        }.into_any()
                    }
                }
            })}
        </Transition>
    }
}

#[component]
fn LicenseRow(serial: String, license: LicenseView, hydrated: ReadSignal<bool>, saved: Callback<()>) -> impl IntoView {
    let action = ServerAction::<SetLicense>::new();
    let checked = RwSignal::new(license.assigned);
    Effect::new(move |_| match &*action.value().read() {
        Some(Ok(())) => saved.run(()),
        // Not assigned after all (no seat free, say): the box shows the truth.
        Some(Err(_)) => checked.set(license.assigned),
        None => {}
    });
    let label = format!("Assigned {}", license.name);
    let form_id = format!("license-{}", license.product);
    view! {
        <li>
            <ActionForm action attr:class="inline">
                <input type="hidden" name="serial" value=serial />
                <input type="hidden" name="product" value=license.product.clone() />
                <label>
                    <input
                        type="checkbox"
                        name="assigned"
                        aria-label=label
                        checked=license.assigned
                        prop:checked=checked
                        on:change=move |ev| {
                            checked.set(event_target_checked(&ev));
                            submit_on_change(ev);
                        }
                    />
                    " " {license.name.clone()} " " <span class="muted">"(" {license.product.clone()} ")"</span>
                </label>
                <button type="submit" class="small" hidden=move || hydrated.get()>"Save"</button>
                <ActionError value=action.value() form=form_id />
            </ActionForm>
        </li>
    }
}
