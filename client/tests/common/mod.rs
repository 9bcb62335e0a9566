//! What the client's tests share: the real server in this process, and an
//! organization to check in to.

#![allow(dead_code)]

use std::sync::Arc;

use seatkeeper::AppState;
use seatkeeper::limits::Limits;
use store::prelude::*;
use store::{Actor, NewProduct, OrgId, PolicyUpdate, SeatModel, Store};

/// A server on a random local port, stopped when dropped.
pub struct Running {
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn start(store: &Store, limits: Arc<Limits>) -> Running {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState::new(store.clone(), addr).with_limits(limits);
        state.licenser.load().await.unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            seatkeeper::serve(listener, state, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Running { base: format!("http://{addr}"), stop: Some(stop), served }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.served).await;
    }
}

/// "acme" with `editor` (1 seat, auto-assign), `viewer` (auto-assign off)
/// and `studio` (floating, 2 seats); its id and product key.
pub async fn acme(store: &Store) -> (OrgId, String) {
    let keys = store.create_organization("acme").await.unwrap();
    let org = store.organization_by_name("acme").await.unwrap().id;
    for (code, seats, auto_assign) in [("editor", 1, true), ("viewer", 5, false), ("studio", 2, true)] {
        let product = NewProduct { code: code.into(), name: code.into(), seats, auto_assign };
        store.add_product(org, &product, Actor::Operator).await.unwrap();
    }
    let floating = PolicyUpdate { seat_model: Some(SeatModel::Floating), ..PolicyUpdate::default() };
    store.update_policy(org, "studio", &floating, Actor::Operator).await.unwrap();
    (org, keys.product_key)
}

