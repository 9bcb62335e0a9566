//! Signing in with the administration API key, and out again.
//!
//! A valid key starts a server-side session; the browser holds only the
//! session's random id in an HttpOnly, SameSite=Strict cookie, never the key.

use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_router::hooks::use_location;

use crate::ui::{PostedError, UiError, posting_to};

/// The signed-in organization's name, or `None` when signed out.
#[server]
pub async fn current_org() -> Result<Option<String>, UiError> {
    Ok(crate::server::session_org().await?.map(|org| org.name))
}

#[server]
pub async fn sign_in(key: String, next: String) -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    let result = async {
        let store = store()?;
        let Some(org) = store.authenticate_admin(key.trim()).await? else {
            credentials_refused();
            return Err(UiError::new("invalid_key"));
        };
        let session = store.create_session(org.id, SESSION_LIFETIME).await?;
        set_cookie(SESSION_COOKIE, Some(&session), SESSION_LIFETIME);
        Ok(())
    }
    .await;
    if result.is_ok() {
        leptos_axum::redirect(&same_site_path(&next));
    }
    finish_form("sign-in", result)
}

#[server]
pub async fn sign_out() -> Result<(), UiError> {
    use crate::server::*;
    use store::prelude::*;
    if let Some(session) = cookie(SESSION_COOKIE) {
        store()?.end_session(&session).await?;
    }
    set_cookie(SESSION_COOKIE, None, std::time::Duration::ZERO);
    leptos_axum::redirect("/");
    Ok(())
}

/// The "Enter API key" dialog, shown in place of any page while signed out;
/// after signing in, the page that was asked for is shown.
#[component]
pub fn SignInForm() -> impl IntoView {
    let location = use_location();
    let next = move || {
        let search = location.search.get();
        let search: String = search
            .trim_start_matches('?')
            .split('&')
            .filter(|p| !p.is_empty() && !p.starts_with("error=") && !p.starts_with("form="))
            .collect::<Vec<_>>()
            .join("&");
        if search.is_empty() { location.pathname.get() } else { format!("{}?{search}", location.pathname.get()) }
    };
    view! {
        <section class="sign-in" aria-labelledby="sign-in-title">
            <h1 id="sign-in-title">"Seatkeeper"</h1>
            <p>"Enter the administration API key your vendor gave you to manage your organization's license seats."</p>
            <form method="post" action=posting_to(SignIn::url()) class="stack">
                <label for="admin-key">"Administration API key"</label>
                <input
                    id="admin-key"
                    type="password"
                    name="key"
                    required
                    autocomplete="off"
                    spellcheck="false"
                    placeholder="sk_admin_…"
                />
                <input type="hidden" name="next" value=next />
                <PostedError form="sign-in" />
                <button type="submit" class="primary">"Sign in"</button>
            </form>
        </section>
    }
}
