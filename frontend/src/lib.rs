//! The browser entry point: hydrates the islands of the page the server
//! rendered. The pages themselves are plain HTML whose forms post to the
//! server; only the controls that JavaScript improves are islands.

// The islands live in `app`; naming it links them in.
use app as _;

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
    // Lets browser tests (and curious people) see that the page is live.
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("data-hydrated", "true");
    }
}
