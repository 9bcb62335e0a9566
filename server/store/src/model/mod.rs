//! The things the store hands out, in the product's words.
//!
//! These are plain data: no SQL and no secrets beyond the keys an operator or
//! admin is meant to see at that moment. One file per thing.

mod time;
mod organizations;
mod products;
mod devices;
mod checkin;
mod paging;
mod usage;
mod activity;
mod webhooks;

pub use time::*;
pub use organizations::*;
pub use products::*;
pub use devices::*;
pub use checkin::*;
pub use paging::*;
pub use usage::*;
pub use activity::*;
pub use webhooks::*;

// What the files below share (each takes `use super::*`).
#[allow(unused_imports)]
use {
    chrono::{DateTime, SubsecRound, Utc},
    serde::{Deserialize, Serialize},
    utoipa::{IntoParams, ToSchema},
};
