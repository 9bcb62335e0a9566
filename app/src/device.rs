//! The Device screen: one device's details and its *Assigned Licenses*, one
//! checkbox per product: checking assigns a seat (or says there is none free),
//! unchecking frees it.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use crate::devices::{DeleteDevice, IgnoreDevice, questions};
use crate::frame::Loaded;
use crate::ui::{ConfirmForm, Moment, PostedError, SavingCheckbox, UiError, When, posted_error, posting_to, use_hydrated};

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
    use store::prelude::*;
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

/// `assigned` is the checkbox: present ("on") when checked. Answers how many
/// seats the device holds now.
#[server]
pub async fn set_license(serial: String, product: String, assigned: Option<String>) -> Result<i64, UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        let store = store()?;
        if assigned.is_some() {
            store.assign(org.id, &serial, &product, store::Actor::AdminSession).await?;
        } else {
            store.unassign(org.id, &serial, &product, store::Actor::AdminSession).await?;
        }
        Ok(store.device(org.id, &serial).await?.device.seats_assigned)
    }
    .await;
    finish_form(&license_form(&product), result)
}

#[component]
pub fn DevicePage() -> impl IntoView {
    let params = use_params_map();
    let screen = Resource::new(move || params.read().get("serial").unwrap_or_default(), load_device);

    view! {
        <Loaded data=screen back=("/devices", "Back to Devices") page={move |device: DeviceScreen| {
            let serial = device.serial.clone();
            let (delete_question, ignore_question) = questions(&serial);
            let posted = device
                .licenses
                .iter()
                .find_map(|license| posted_error(&license_form(&license.product)).map(|message| (license.product.clone(), message)));
            let (delete_serial, ignore_serial) = (serial.clone(), serial.clone());
            view! {
                <p class="crumbs"><A href="/devices">"Devices"</A>" › "{serial.clone()}</p>
                <h1>{serial.clone()}</h1>
                <DeviceLicenses device posted action=posting_to(SetLicense::url()) />
                <section class="danger-zone" aria-label="Remove this device">
                    <PostedError form="device-actions" />
                    // After either, the device is gone: back to the list.
                    <ConfirmForm action=DeleteDevice::url().to_owned() question=delete_question class="inline".to_owned()>
                        <input type="hidden" name="serial" value=delete_serial />
                        <input type="hidden" name="next" value="/devices" />
                        <button type="submit" class="danger">"Delete device"</button>
                    </ConfirmForm>
                    <ConfirmForm action=IgnoreDevice::url().to_owned() question=ignore_question class="inline".to_owned()>
                        <input type="hidden" name="serial" value=ignore_serial />
                        <input type="hidden" name="next" value="/devices" />
                        <button type="submit">"Ignore device"</button>
                    </ConfirmForm>
                    <p class="muted">"Deleting frees its seats; the device reappears if it checks in again. Ignoring also refuses its check-ins until you un-ignore it in Settings."</p>
                </section>
            }.into_any()
        }}/>
    }
}

/// Which form a license's checkbox is, for errors after a plain post.
fn license_form(product: &str) -> String {
    format!("license-{product}")
}

/// The device's facts and its *Assigned Licenses*. Each checkbox saves as
/// soon as it changes (see [`SavingCheckbox`]), and the seat count follows.
/// `posted` is the error a plain post of one of them came back with, and
/// `action` where they post (see `ui::posting_to`).
#[island]
fn DeviceLicenses(device: DeviceScreen, posted: Option<(String, String)>, action: String) -> impl IntoView {
    let seats = RwSignal::new(device.seats_assigned);
    let hydrated = use_hydrated();
    let serial = device.serial;
    view! {
        <dl class="facts">
            <dt>"First seen"</dt><dd><When moment=device.first_seen /></dd>
            <dt>"Last seen"</dt><dd><When moment=device.last_seen /></dd>
            <dt>"Seats assigned"</dt><dd>{seats}</dd>
        </dl>
        <section aria-labelledby="licenses-title">
            <h2 id="licenses-title">"Assigned Licenses"</h2>
            {if device.licenses.is_empty() {
                view! { <p class="muted">"Your organization has no products yet."</p> }.into_any()
            } else {
                view! {
                    <ul class="licenses">
                        {device.licenses.into_iter().map(|license| {
                            let posted = posted.as_ref().filter(|(product, _)| *product == license.product).map(|(_, message)| message.clone());
                            view! { <LicenseRow action=action.clone() serial=serial.clone() license posted hydrated seats /> }
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn LicenseRow(
    action: String,
    serial: String,
    license: LicenseView,
    posted: Option<String>,
    hydrated: ReadSignal<bool>,
    seats: RwSignal<i64>,
) -> impl IntoView {
    let assigned = SavingCheckbox::new(license.assigned, posted);
    // Saved: the answer is how many seats the device holds now.
    let saved = move |seats_now: i64| seats.set(seats_now);
    let label = format!("Assigned {}", license.name);
    view! {
        <li>
            <form method="post" action=action class="inline" on:submit=assigned.on_submit(saved)>
                <input type="hidden" name="serial" value=serial />
                <input type="hidden" name="product" value=license.product.clone() />
                <label>
                    <input
                        type="checkbox"
                        name="assigned"
                        aria-label=label
                        checked=license.assigned
                        prop:checked=assigned.checked
                        prop:disabled=assigned.pending
                        on:change=assigned.on_change()
                    />
                    " " {license.name.clone()} " " <span class="muted">"(" {license.product.clone()} ")"</span>
                </label>
                <button type="submit" class="small" hidden=move || hydrated.get()>"Save"</button>
                {assigned.alert()}
            </form>
        </li>
    }
}
