//! The Settings screen (the cog): the product API key to copy into the apps,
//! key rotation, signing out, and the ignore list.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use serde::{Deserialize, Serialize};

use crate::frame::Loaded;
use crate::ui::{Moment, PostedError, UiError, When, posting_to, use_hydrated};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoredView {
    pub serial: String,
    pub ignored: Moment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsScreen {
    pub organization: String,
    pub product_key: String,
    pub ignored: Vec<IgnoredView>,
    pub more_ignored: bool,
    /// An administration key rotated by a form post without JavaScript, shown
    /// once on the page that follows.
    pub new_admin_key: Option<String>,
}

#[server]
pub async fn load_settings() -> Result<SettingsScreen, UiError> {
    use crate::server::*;
    use store::prelude::*;
    use store::PageRequest;
    respond(async {
        let org = require_org().await?;
        let store = store()?;
        let settings = store.settings(org.id).await?;
        let ignored = store.ignored(org.id, &PageRequest::first(PageRequest::MAX_LIMIT)).await?;
        let new_admin_key = match cookie(SESSION_COOKIE) {
            Some(session) => store.take_session_flash(&session).await?.and_then(|flash| new_admin_key_from(&session, &flash)),
            None => None,
        };
        let now = store::now();
        Ok(SettingsScreen {
            organization: settings.organization_name,
            product_key: settings.product_key,
            ignored: ignored.items.into_iter().map(|i| IgnoredView { serial: i.serial, ignored: moment(i.ignored_at, now) }).collect(),
            more_ignored: ignored.next.is_some(),
            new_admin_key,
        })
    }
    .await)
}

#[server]
pub async fn rotate_product_key() -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        store()?.rotate_product_key(org.id, store::Actor::AdminSession).await?;
        Ok(())
    }
    .await;
    finish_form("rotate-product-key", result)
}

/// Issues a new administration key and returns it (shown once). Every other
/// session of the organization ends; this browser stays signed in.
#[server]
pub async fn rotate_admin_key() -> Result<String, UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        let store = store()?;
        let key = store.rotate_admin_key(org.id, store::Actor::AdminSession).await?;
        let session = store.create_session(org.id, SESSION_LIFETIME).await?;
        set_cookie(SESSION_COOKIE, Some(&session), SESSION_LIFETIME);
        // The page that follows shows it, once: a message kept for this
        // session on the server, never the key in a cookie.
        store.set_session_flash(&session, &new_admin_key_flash(&session, &key)).await?;
        Ok(key)
    }
    .await;
    finish_form("rotate-admin-key", result)
}

/// How long after a rotation the next page still shows the new key.
#[cfg(feature = "ssr")]
const NEW_KEY_SHOWN_FOR: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// A just-rotated administration key, sealed for this session alone, with
/// the time until which it may be shown.
#[cfg(feature = "ssr")]
fn new_admin_key_flash(session: &str, key: &str) -> Vec<u8> {
    let until = (store::now() + NEW_KEY_SHOWN_FOR).timestamp_millis();
    store::sealed::SealingKey::derive("new admin key", session.as_bytes()).seal(format!("{until}\n{key}").as_bytes(), b"")
}

#[cfg(feature = "ssr")]
fn new_admin_key_from(session: &str, flash: &[u8]) -> Option<String> {
    let opened = store::sealed::SealingKey::derive("new admin key", session.as_bytes()).open(flash, b"")?;
    let (until, key) = std::str::from_utf8(&opened).ok()?.split_once('\n')?;
    let fresh = until.parse::<i64>().ok()? > store::now().timestamp_millis();
    (fresh && key.starts_with(store::keys::ADMIN_PREFIX)).then(|| key.to_owned())
}

#[server]
pub async fn unignore(serial: String) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        Ok(store()?.unignore(org.id, &serial, store::Actor::AdminSession).await?)
    }
    .await;
    finish_form("ignore-list", result)
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let screen = Resource::new(|| (), |_| load_settings());

    view! {
        <Loaded data=screen page={move |settings: SettingsScreen| {
            view! {
                <h1>"Settings"</h1>
                <section class="card" aria-labelledby="product-key-title">
                    <h2 id="product-key-title">"Product API key"</h2>
                    <p>"Enter this key in your apps' settings: it tells the license server that an installation belongs to " {settings.organization.clone()} "."</p>
                    <div class="key-row">
                        <label for="product-key" class="visually-hidden">"Product API key"</label>
                        <input id="product-key" class="key" readonly value=settings.product_key.clone() />
                        <CopyButton text=settings.product_key.clone() />
                    </div>
                    <form method="post" action=posting_to(RotateProductKey::url()) class="stack">
                        <p class="warning">"Rotating issues a new product key and the old one stops working at once: every installed app must be updated with the new key."</p>
                        <PostedError form="rotate-product-key" />
                        <button type="submit" class="danger">"Rotate product key"</button>
                    </form>
                </section>
                <section class="card" aria-labelledby="admin-key-title">
                    <h2 id="admin-key-title">"Administration API key"</h2>
                    <p>"This browser is signed in to " {settings.organization.clone()} " with the administration key."</p>
                    {settings.new_admin_key.map(|key| view! {
                        <div class="notice" role="status">
                            <p>"Your new administration API key is shown only now. Store it safely:"</p>
                            <label for="new-admin-key" class="visually-hidden">"New administration API key"</label>
                            <input id="new-admin-key" class="key" readonly value=key />
                        </div>
                    })}
                    <form method="post" action=posting_to(RotateAdminKey::url()) class="stack">
                        <p class="warning">"Rotating issues a new administration key: the old one stops working, other signed-in browsers are signed out, and scripts using it must be updated."</p>
                        <PostedError form="rotate-admin-key" />
                        <button type="submit" class="danger">"Rotate administration key"</button>
                    </form>
                    <p class="muted">"Sign out of this browser with " <strong>"Sign out"</strong> " at the top of the page."</p>
                </section>
                <section class="card" aria-labelledby="ignored-title">
                    <h2 id="ignored-title">"Ignored devices"</h2>
                    <PostedError form="ignore-list" />
                    {if settings.ignored.is_empty() {
                        view! { <p class="muted">"No device is ignored."</p> }.into_any()
                    } else {
                        view! {
                            <ul class="ignored">
                                {settings.ignored.into_iter().map(|ignored| view! {
                                    <li>
                                        <span class="serial">{ignored.serial.clone()}</span>
                                        " " <span class="muted">"ignored " <When moment=ignored.ignored /></span>
                                        <form method="post" action=posting_to(Unignore::url()) class="inline">
                                            <input type="hidden" name="serial" value=ignored.serial.clone() />
                                            <button type="submit" class="small" aria-label=format!("Un-ignore {}", ignored.serial)>"Un-ignore"</button>
                                        </form>
                                    </li>
                                }).collect_view()}
                            </ul>
                            {settings.more_ignored.then(|| view! { <p class="muted">"Only the first 1,000 ignored serials are shown."</p> })}
                        }.into_any()
                    }}
                </section>
            }.into_any()
        }}/>
    }
}

/// Copies `text` to the clipboard: shown only with JavaScript, which it needs.
#[island]
fn CopyButton(text: String) -> impl IntoView {
    let hydrated = use_hydrated();
    let copied = RwSignal::new(false);
    let copy = move |_| {
        let _ = window().navigator().clipboard().write_text(&text);
        copied.set(true);
    };
    view! {
        <button type="button" on:click=copy hidden=move || !hydrated.get()>
            {move || if copied.get() { "Copied" } else { "Copy" }}
        </button>
    }
}
