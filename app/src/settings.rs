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

/// A webhook endpoint and its latest delivery attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub added: Moment,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptView {
    pub event: String,
    pub at: Moment,
    /// "200", or what went wrong.
    pub outcome: String,
    pub delivered: bool,
}

/// A webhook just added, with its signing secret: shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWebhookSecret {
    pub url: String,
    pub secret: String,
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
    pub webhooks: Vec<WebhookView>,
    /// Every event a webhook may subscribe to: its name and its words.
    pub events: Vec<(String, String)>,
    /// A webhook added by the form post before this page, shown once.
    pub new_webhook: Option<NewWebhookSecret>,
}

/// Delivery attempts shown per webhook; the admin API lists them all.
#[cfg(feature = "ssr")]
const ATTEMPTS_SHOWN: u32 = 5;

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
        let (new_admin_key, new_webhook) = match cookie(SESSION_COOKIE) {
            Some(session) => match store.take_session_flash(&session).await? {
                Some(flash) => (new_admin_key_from(&session, &flash), new_webhook_from(&session, &flash)),
                None => (None, None),
            },
            None => (None, None),
        };
        let now = store::now();
        let mut webhooks = Vec::new();
        for webhook in store.webhooks(org.id).await? {
            let attempts = store.delivery_attempts(org.id, webhook.id, &PageRequest::first(ATTEMPTS_SHOWN)).await?;
            webhooks.push(WebhookView {
                id: webhook.id,
                url: webhook.url,
                events: webhook.events.iter().map(|event| event.as_str().to_owned()).collect(),
                added: moment(webhook.created_at, now),
                attempts: attempts
                    .items
                    .into_iter()
                    .map(|attempt| AttemptView {
                        delivered: attempt.error.is_none(),
                        outcome: match (attempt.status, attempt.error) {
                            (Some(status), None) => status.to_string(),
                            (_, Some(error)) => error,
                            (None, None) => String::new(),
                        },
                        event: attempt.event,
                        at: moment(attempt.time, now),
                    })
                    .collect(),
            });
        }
        Ok(SettingsScreen {
            organization: settings.organization_name,
            product_key: settings.product_key,
            ignored: ignored.items.into_iter().map(|i| IgnoredView { serial: i.serial, ignored: moment(i.ignored_at, now) }).collect(),
            more_ignored: ignored.next.is_some(),
            new_admin_key,
            webhooks,
            events: store::WebhookEvent::ALL.iter().map(|event| (event.as_str().to_owned(), event.label().to_owned())).collect(),
            new_webhook,
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

/// Adds a webhook (the events ticked as `events[]`); the page that follows
/// shows its signing secret, once.
#[server]
pub async fn add_webhook(url: String, events: Option<Vec<String>>) -> Result<(), UiError> {
    use crate::server::*;
    use store::ErrorCode;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        let store = store()?;
        let events = events.unwrap_or_default();
        if events.is_empty() {
            return Err(UiError::new("no_webhook_events"));
        }
        let added = store.create_webhook(org.id, url.trim(), &events, store::Actor::AdminSession).await.map_err(|error| match error.code() {
            ErrorCode::InvalidRequest => UiError::new("invalid_webhook_url"),
            ErrorCode::Conflict => UiError::new("too_many_webhooks"),
            _ => UiError::from(error),
        })?;
        if let Some(session) = cookie(SESSION_COOKIE) {
            store.set_session_flash(&session, &new_webhook_flash(&session, &added.url, &added.secret)).await?;
        }
        Ok(())
    }
    .await;
    finish_form("add-webhook", result)
}

#[server]
pub async fn delete_webhook(id: i64) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let org = require_org().await?;
        Ok(store()?.delete_webhook(org.id, id, store::Actor::AdminSession).await?)
    }
    .await;
    finish_form("webhooks", result)
}

/// A just-added webhook's URL and secret, sealed for this session alone,
/// with the time until which it may be shown.
#[cfg(feature = "ssr")]
fn new_webhook_flash(session: &str, url: &str, secret: &str) -> Vec<u8> {
    let until = (store::now() + NEW_KEY_SHOWN_FOR).timestamp_millis();
    store::sealed::SealingKey::derive("new webhook secret", session.as_bytes()).seal(format!("{until}\n{secret}\n{url}").as_bytes(), b"")
}

#[cfg(feature = "ssr")]
fn new_webhook_from(session: &str, flash: &[u8]) -> Option<NewWebhookSecret> {
    let opened = store::sealed::SealingKey::derive("new webhook secret", session.as_bytes()).open(flash, b"")?;
    let mut lines = std::str::from_utf8(&opened).ok()?.splitn(3, '\n');
    let (until, secret, url) = (lines.next()?, lines.next()?, lines.next()?);
    let fresh = until.parse::<i64>().ok()? > store::now().timestamp_millis();
    (fresh && secret.starts_with(store::webhooks::SECRET_PREFIX)).then(|| NewWebhookSecret { url: url.to_owned(), secret: secret.to_owned() })
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
                <Webhooks webhooks=settings.webhooks events=settings.events new_webhook=settings.new_webhook />
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

/// The webhooks section: each endpoint with its events and latest
/// attempts, a delete, and the form that adds one.
#[component]
fn Webhooks(webhooks: Vec<WebhookView>, events: Vec<(String, String)>, new_webhook: Option<NewWebhookSecret>) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="webhooks-title">
            <h2 id="webhooks-title">"Webhooks"</h2>
            <p>"Seatkeeper POSTs each event you choose to your URL as JSON, signed the Standard Webhooks way with the endpoint's secret (" <code>"webhook-signature"</code> "), and retries for a day until your endpoint answers 2xx."</p>
            {new_webhook.map(|added| view! {
                <div class="notice" role="status">
                    <p>"The signing secret of " <span class="url">{added.url}</span> " is shown only now. Store it with your receiver:"</p>
                    <label for="new-webhook-secret" class="visually-hidden">"New webhook signing secret"</label>
                    <input id="new-webhook-secret" class="key" readonly value=added.secret />
                </div>
            })}
            <PostedError form="webhooks" />
            {if webhooks.is_empty() {
                view! { <p class="muted">"No webhook yet."</p> }.into_any()
            } else {
                view! {
                    <ul class="webhooks">
                        {webhooks.into_iter().map(|webhook| view! { <WebhookItem webhook /> }).collect_view()}
                    </ul>
                }.into_any()
            }}
            <form method="post" action=posting_to(AddWebhook::url()) class="stack">
                <h3>"Add a webhook"</h3>
                <PostedError form="add-webhook" />
                <label for="webhook-url">"Endpoint URL"</label>
                <input id="webhook-url" name="url" type="url" required maxlength="2000" placeholder="https://hooks.example.com/seatkeeper" />
                <fieldset>
                    <legend>"Events"</legend>
                    {events.into_iter().map(|(name, label)| view! {
                        <label class="check">
                            <input type="checkbox" name="events[]" value=name.clone() />
                            {label} " " <code>{name}</code>
                        </label>
                    }).collect_view()}
                </fieldset>
                <button type="submit">"Add webhook"</button>
            </form>
        </section>
    }
}

#[component]
fn WebhookItem(webhook: WebhookView) -> impl IntoView {
    let title = format!("Webhook {}", webhook.url);
    view! {
        <li aria-label=title>
            <div class="webhook-head">
                <span class="url">{webhook.url.clone()}</span>
                <form method="post" action=posting_to(DeleteWebhook::url()) class="inline">
                    <input type="hidden" name="id" value=webhook.id.to_string() />
                    <button type="submit" class="small danger" aria-label=format!("Delete webhook {}", webhook.url)>"Delete"</button>
                </form>
            </div>
            <p class="muted">{webhook.events.join(", ")} " · added " <When moment=webhook.added /></p>
            {if webhook.attempts.is_empty() {
                view! { <p class="muted">"Nothing sent yet."</p> }.into_any()
            } else {
                view! {
                    <table class="attempts">
                        <caption class="visually-hidden">"Latest deliveries to " {webhook.url}</caption>
                        <thead><tr><th scope="col">"Sent"</th><th scope="col">"Event"</th><th scope="col">"Answer"</th></tr></thead>
                        <tbody>
                            {webhook.attempts.into_iter().map(|attempt| view! {
                                <tr>
                                    <td><When moment=attempt.at /></td>
                                    <td><code>{attempt.event}</code></td>
                                    <td class=if attempt.delivered { "delivered" } else { "failed" }>{attempt.outcome}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </li>
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
