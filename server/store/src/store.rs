//! [`Store`]: the backend a database URL names, and every operation
//! forwarded to it. Changes run to completion in a task of their own; the
//! input every backend refuses is refused here, once; and what the process
//! keeps in memory beside the database (a product's license terms) is
//! forgotten here when an operation changes it, whoever asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::*;

/// The store a database URL names: `sqlite:…` or `postgres://…`. Cloning
/// it is two reference counts: the server clones it for every request.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    terms: Arc<Terms>,
    webhooks: Arc<WebhookSettings>,
}

/// Where webhooks may be sent, and the key their secrets are sealed with.
#[derive(Default)]
struct WebhookSettings {
    destinations: crate::webhooks::Destinations,
    sealing: Option<crate::sealed::SealingKey>,
    /// Woken when a change may have written to the outbox.
    written: tokio::sync::Notify,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<sqlite::SqliteStore>),
    Postgres(Arc<postgres::PgStore>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password, so only the backend is shown.
        write!(f, "Store({})", self.backend_name())
    }
}

/// Forwards each operation to the backend in use.
macro_rules! dispatch {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match &$self.backend {
            Backend::Sqlite(store) => store.$method($($arg),*).await,
            Backend::Postgres(store) => store.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Connects to the database the URL names (creating a SQLite file and its
    /// folder when missing) and runs the migrations.
    pub async fn open(url: &str) -> Result<Store> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(Arc::new(sqlite::SqliteStore::open(url).await?))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(Arc::new(postgres::PgStore::open(url).await?))
        } else {
            return Err(StoreError::invalid(
                "the database URL must start with sqlite: or postgres:// (for example sqlite://data/seatkeeper.db)",
            ));
        };
        let store = Store { backend, terms: Arc::default(), webhooks: Arc::default() };
        store.migrate().await?;
        Ok(store)
    }

    /// Claims the database for this server process (SQLite serves one
    /// process; PostgreSQL any number, so there it claims nothing).
    pub fn lock_for_serving(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(store) => store.lock_for_serving(),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Writes the `last seen` times waiting in memory; called when the server
    /// stops.
    pub async fn flush(&self) -> Result<()> {
        dispatch!(self, flush())
    }

    /// On PostgreSQL, the hot path's requests answered by shared statements
    /// and the shared statements that failed (see `postgres/batch.rs`).
    pub fn batch_counts(&self) -> Option<(u64, u64)> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(store) => Some(store.batch_counts()),
        }
    }

    /// This process's connection pools.
    pub fn pool_stats(&self) -> Vec<PoolStats> {
        match &self.backend {
            Backend::Sqlite(store) => store.pool_stats(),
            Backend::Postgres(store) => store.pool_stats(),
        }
    }

    /// Brings the schema up to date. Run at every start; migrations are
    /// embedded in the binary.
    pub async fn migrate(&self) -> Result<()> {
        dispatch!(self, migrate())
    }

    /// For tests: moves every lease of the product, and its waiting line's
    /// times, `by` earlier, as if that much time had passed since each was
    /// written (a lease lasts minutes; a test does not wait them out).
    #[cfg(feature = "testing")]
    pub async fn pass_time(&self, org: OrgId, code: &str, by: chrono::Duration) -> Result<()> {
        dispatch!(self, pass_time(org, code, by))
    }

    /// Where webhooks may be sent, and the key that seals their secrets
    /// (none: stored as they are, like the signing keys); set once, before
    /// the store is shared.
    pub fn with_webhooks(mut self, destinations: crate::webhooks::Destinations, sealing: Option<crate::sealed::SealingKey>) -> Store {
        self.webhooks = Arc::new(WebhookSettings { destinations, sealing, written: tokio::sync::Notify::new() });
        self
    }

    pub fn webhook_destinations(&self) -> crate::webhooks::Destinations {
        self.webhooks.destinations
    }

    /// Resolves when a change of this process may have written webhook
    /// messages (other processes' are found by polling).
    pub async fn outbox_written(&self) {
        self.webhooks.written.notified().await;
    }

    fn wake_webhooks(&self) {
        self.webhooks.written.notify_one();
    }

    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

/// The short searches (see [`SHORT_SEARCH_WALK`]) that may walk the serial
/// index at once in this process; the others wait their turn.
static SHORT_WALKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

impl Store {
    /// Runs a change in a task of its own, to completion even when its caller
    /// is dropped half-way (a client gone, the request timeout, a bulk action
    /// cut short). A transaction dropped mid-way could commit without what
    /// must follow its commit, and leaves its connection inside it for the
    /// next caller (sqlx rolls back only on that connection's next use).
    async fn to_completion<T, F>(&self, change: impl FnOnce(Store) -> F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        match tokio::spawn(change(self.clone())).await {
            Ok(result) => result,
            Err(failed) => Err(StoreError::Unavailable(format!("a change stopped before it ended: {failed}"))),
        }
    }
}

impl Store {
    /// Whether the product's subscription has ended, as this process last
    /// read its terms (at most a second ago: a term changed by the operator
    /// or another process reaches every check-in within a second). A
    /// product that cannot be read says no: the check-in then meets the
    /// failure where it always does.
    async fn term_ended(&self, org: OrgId, code: &str) -> bool {
        let valid_until = match self.terms.valid_until(org, code) {
            Some(valid_until) => valid_until,
            None => match self.license_terms(org, code).await {
                Ok(terms) => terms.valid_until,
                Err(_) => return false,
            },
        };
        term_ended(valid_until, now())
    }
}

impl Store {
    /// A product's usage day by day over the last `days` days up to today
    /// (live), oldest first: seats and assignments at each day's last
    /// reading, and its refusals for want of a seat. A day without a reading
    /// carries the one before it; the days before the product's first
    /// reading are left out, so a new product's history starts today.
    pub async fn product_usage(&self, org: OrgId, code: &str, days: i64) -> Result<Vec<UsageDay>> {
        let product = self.product(org, code).await?;
        let today = day_of(now());
        let first = today - days.max(1) + 1;
        let readings: Vec<UsagePoint> =
            self.usage(org, first).await?.into_iter().filter(|(c, _)| c == code).map(|(_, point)| point).collect();
        let refusals: HashMap<i64, Refusals> =
            self.refusals(org, first).await?.into_iter().filter(|(c, _)| c == code).map(|(_, r)| (r.day, r)).collect();
        let start = readings.first().map_or(today, |point| point.day).min(refusals.keys().copied().min().unwrap_or(today));
        let mut carried: Option<(i64, i64)> = None;
        let mut out = Vec::new();
        for day in start.max(first)..=today {
            let reading = if day == today {
                Some((product.seats, product.assigned))
            } else {
                readings.iter().find(|point| point.day == day).map(|point| (point.seats, point.assigned)).or(carried)
            };
            carried = reading;
            let (seats, assigned) = reading.unwrap_or((product.seats, 0));
            let refused = refusals.get(&day).copied().unwrap_or(Refusals { day, refused: 0, devices: 0 });
            out.push(UsageDay { day, date: date_of_day(day), seats, assigned, refused: refused.refused, refused_devices: refused.devices });
        }
        Ok(out)
    }
}

impl Store {
    /// Adds a webhook endpoint for the organization: its URL must be one
    /// webhooks may be sent to (HTTPS, and no name that resolves to a
    /// loopback, private or link-local address, unless the server allows
    /// private ones), its events known. Answers with its signing secret,
    /// shown only now.
    pub async fn create_webhook(&self, org: OrgId, url: &str, events: &[String], by: Actor) -> Result<NewWebhook> {
        let destinations = self.webhooks.destinations;
        let parsed = destinations.check_url(url)?;
        let events = crate::webhooks::parse_events(events)?;
        if !destinations.allow_private {
            refuse_private_names(&parsed).await?;
        }
        let (bytes, secret) = crate::webhooks::new_secret();
        let stored = match &self.webhooks.sealing {
            Some(key) => key.seal(&bytes, &crate::webhooks::secret_belongs_to(org)),
            None => bytes,
        };
        let added = self.add_webhook(org, parsed.as_str(), &events, &stored, by).await?;
        Ok(NewWebhook { id: added.id, url: added.url, events: added.events, created_at: added.created_at, secret })
    }

    /// The signing secret's bytes of a message's endpoint, opened with this
    /// server's secrets key if it was sealed.
    pub fn webhook_secret(&self, message: &OutboxMessage) -> std::result::Result<Vec<u8>, String> {
        if !crate::sealed::is_sealed(&message.secret) {
            return Ok(message.secret.clone());
        }
        let key = self.webhooks.sealing.as_ref().ok_or("the webhook's secret is sealed and this server has no secrets key")?;
        key.open(&message.secret, &crate::webhooks::secret_belongs_to(message.org))
            .ok_or_else(|| "the webhook's secret does not open with this server's secrets key".to_owned())
    }
}

/// Refuses a URL whose name resolves to an address webhooks may not be sent
/// to. A name that does not resolve now is let through: every delivery
/// resolves it again and connects only to public addresses.
async fn refuse_private_names(url: &url::Url) -> Result<()> {
    let Some(url::Host::Domain(name)) = url.host() else { return Ok(()) };
    let port = url.port_or_known_default().unwrap_or(443);
    let lookup = tokio::time::timeout(Duration::from_secs(3), tokio::net::lookup_host((name, port))).await;
    if let Ok(Ok(addresses)) = lookup {
        if addresses.into_iter().any(|address| !crate::webhooks::is_public(address.ip())) {
            return Err(StoreError::invalid(format!("url must be a public address: {name} resolves to a loopback, private or link-local one")));
        }
    }
    Ok(())
}

impl Organizations for Store {
    async fn bootstrap(&self) -> Result<Option<NewOrganization>> {
        self.to_completion(move |store| async move { dispatch!(store, bootstrap()) }).await
    }

    async fn create_organization(&self, name: &str) -> Result<NewOrganization> {
        let name = name.to_owned();
        self.to_completion(move |store| async move { dispatch!(store, create_organization(&name)) }).await
    }

    async fn organizations(&self) -> Result<Vec<OrganizationSummary>> {
        dispatch!(self, organizations())
    }

    async fn organization_by_name(&self, name: &str) -> Result<Organization> {
        validate::lookup("organization name", name)?;
        dispatch!(self, organization_by_name(name))
    }

    async fn authenticate_admin(&self, admin_key: &str) -> Result<Option<Organization>> {
        dispatch!(self, authenticate_admin(admin_key))
    }

    async fn authenticate_product(&self, product_key: &str) -> Result<Option<OrgId>> {
        dispatch!(self, authenticate_product(product_key))
    }

    async fn settings(&self, org: OrgId) -> Result<Settings> {
        dispatch!(self, settings(org))
    }

    async fn rotate_product_key(&self, org: OrgId, by: Actor) -> Result<String> {
        self.to_completion(move |store| async move { dispatch!(store, rotate_product_key(org, by)) }).await
    }

    async fn rotate_admin_key(&self, org: OrgId, by: Actor) -> Result<String> {
        self.to_completion(move |store| async move { dispatch!(store, rotate_admin_key(org, by)) }).await
    }
}

impl Sessions for Store {
    async fn create_session(&self, org: OrgId, lifetime: std::time::Duration) -> Result<String> {
        self.to_completion(move |store| async move { dispatch!(store, create_session(org, lifetime)) }).await
    }

    async fn session(&self, session_id: &str) -> Result<Option<Organization>> {
        dispatch!(self, session(session_id))
    }

    async fn end_session(&self, session_id: &str) -> Result<()> {
        let session_id = session_id.to_owned();
        self.to_completion(move |store| async move { dispatch!(store, end_session(&session_id)) }).await
    }

    async fn set_session_flash(&self, session_id: &str, flash: &[u8]) -> Result<()> {
        let (session_id, flash) = (session_id.to_owned(), flash.to_owned());
        self.to_completion(move |store| async move { dispatch!(store, set_session_flash(&session_id, &flash)) }).await
    }

    async fn take_session_flash(&self, session_id: &str) -> Result<Option<Vec<u8>>> {
        let session_id = session_id.to_owned();
        self.to_completion(move |store| async move { dispatch!(store, take_session_flash(&session_id)) }).await
    }
}

impl Products for Store {
    async fn add_product(&self, org: OrgId, product: &NewProduct, by: Actor) -> Result<Product> {
        let product = product.to_owned();
        self.to_completion(move |store| async move { dispatch!(store, add_product(org, &product, by)) }).await
    }

    async fn set_seats(&self, org: OrgId, code: &str, seats: i64, by: Actor) -> Result<Product> {
        validate::lookup("product code", code)?;
        let code = code.to_owned();
        self.to_completion(move |store| async move { dispatch!(store, set_seats(org, &code, seats, by)) }).await
    }

    async fn products(&self, org: OrgId) -> Result<Vec<Product>> {
        dispatch!(self, products(org))
    }

    async fn product(&self, org: OrgId, code: &str) -> Result<Product> {
        validate::lookup("product code", code)?;
        dispatch!(self, product(org, code))
    }

    async fn set_auto_assign(&self, org: OrgId, code: &str, auto_assign: bool, by: Actor) -> Result<Product> {
        validate::lookup("product code", code)?;
        let code = code.to_owned();
        self.to_completion(move |store| async move { dispatch!(store, set_auto_assign(org, &code, auto_assign, by)) }).await
    }

    async fn policy(&self, org: OrgId, code: &str) -> Result<ProductPolicy> {
        validate::lookup("product code", code)?;
        dispatch!(self, policy(org, code))
    }

    async fn policies(&self, org: OrgId) -> Result<Vec<(String, ProductPolicy)>> {
        dispatch!(self, policies(org))
    }

    async fn update_policy(&self, org: OrgId, code: &str, update: &PolicyUpdate, by: Actor) -> Result<ProductPolicy> {
        validate::lookup("product code", code)?;
        let code = code.to_owned();
        let update = update.to_owned();
        self.to_completion(move |store| async move {
            let policy = dispatch!(store, update_policy(org, &code, &update, by))?;
            store.terms.forget(org, &code);
            Ok(policy)
        })
        .await
    }

    /// Read again when older than [`TERMS_REFRESH`] (another process may have
    /// changed them), or once this process changed them.
    async fn set_term(&self, org: OrgId, code: &str, valid_until: Option<chrono::NaiveDate>, by: Actor) -> Result<Product> {
        validate::lookup("product code", code)?;
        if let Some(last_day) = valid_until {
            validate::term(last_day)?;
        }
        let code = code.to_owned();
        self.to_completion(move |store| async move {
            let product = dispatch!(store, set_term(org, &code, valid_until, by))?;
            store.terms.forget(org, &code);
            Ok(product)
        })
        .await
    }

    async fn license_terms(&self, org: OrgId, code: &str) -> Result<LicenseTerms> {
        // Only a code the database knew is remembered, so a hit needs no check.
        if let Some(terms) = self.terms.get(org, code) {
            return Ok(terms);
        }
        validate::lookup("product code", code)?;
        let terms = dispatch!(self, license_terms(org, code))?;
        self.terms.remember(org, code, &terms);
        Ok(terms)
    }

    async fn holders(&self, org: OrgId, code: &str, page: &PageRequest) -> Result<Page<Holder>> {
        validate::lookup("product code", code)?;
        validate::page(page)?;
        dispatch!(self, holders(org, code, page))
    }
}

impl Devices for Store {
    async fn devices(&self, org: OrgId, query: Option<&str>, page: &PageRequest) -> Result<Page<Device>> {
        validate::lookup("search", query.unwrap_or_default())?;
        validate::page(page)?;
        // One short walk at a time per process: sixteen admins paging
        // through a million devices at once then cost the database one
        // connection's work, not the cores the check-ins need.
        let _walking = match is_short_search(query.unwrap_or_default()) {
            true => Some(SHORT_WALKS.acquire().await.map_err(|_| StoreError::Unavailable("the store is closing".into()))?),
            false => None,
        };
        dispatch!(self, devices(org, query, page))
    }

    async fn device(&self, org: OrgId, serial: &str) -> Result<DeviceDetail> {
        validate::serial(serial)?;
        dispatch!(self, device(org, serial))
    }

    async fn delete_device(&self, org: OrgId, serial: &str, by: Actor) -> Result<()> {
        validate::serial(serial)?;
        let serial = serial.to_owned();
        let done = self.to_completion(move |store| async move { dispatch!(store, delete_device(org, &serial, by)) }).await;
        self.wake_webhooks();
        done
    }

    async fn ignore_device(&self, org: OrgId, serial: &str, by: Actor) -> Result<bool> {
        validate::serial(serial)?;
        let serial = serial.to_owned();
        let done = self.to_completion(move |store| async move { dispatch!(store, ignore_device(org, &serial, by)) }).await;
        self.wake_webhooks();
        done
    }

    async fn ignored(&self, org: OrgId, page: &PageRequest) -> Result<Page<IgnoredSerial>> {
        validate::page(page)?;
        dispatch!(self, ignored(org, page))
    }

    async fn unignore(&self, org: OrgId, serial: &str, by: Actor) -> Result<()> {
        validate::serial(serial)?;
        let serial = serial.to_owned();
        self.to_completion(move |store| async move { dispatch!(store, unignore(org, &serial, by)) }).await
    }
}

impl Seats for Store {
    async fn assign(&self, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<Assigned> {
        validate::serial(serial)?;
        validate::lookup("product code", code)?;
        let serial = serial.to_owned();
        let code = code.to_owned();
        let done = self.to_completion(move |store| async move { dispatch!(store, assign(org, &serial, &code, by)) }).await;
        self.wake_webhooks();
        done
    }

    async fn unassign(&self, org: OrgId, serial: &str, code: &str, by: Actor) -> Result<()> {
        validate::serial(serial)?;
        validate::lookup("product code", code)?;
        let serial = serial.to_owned();
        let code = code.to_owned();
        let done = self.to_completion(move |store| async move { dispatch!(store, unassign(org, &serial, &code, by)) }).await;
        self.wake_webhooks();
        done
    }

    async fn bulk(&self, org: OrgId, action: bulk::BulkAction, product: &str, serials: &[String], by: Actor)
    -> Result<Vec<Result<Assigned>>> {
        let (product, serials) = (product.to_owned(), serials.to_owned());
        let done = self.to_completion(move |store| async move { dispatch!(store, bulk(org, action, &product, &serials, by)) }).await;
        self.wake_webhooks();
        done
    }

    async fn reclaim_idle_seats(&self, now: Timestamp) -> Result<u64> {
        self.to_completion(move |store| async move { dispatch!(store, reclaim_idle_seats(now)) }).await
    }

    async fn waiting_line(&self, org: OrgId, code: &str) -> Result<Vec<Waiting>> {
        validate::lookup("product code", code)?;
        dispatch!(self, waiting_line(org, code))
    }

    async fn remove_from_line(&self, org: OrgId, code: &str, serial: &str, by: Actor) -> Result<bool> {
        validate::lookup("product code", code)?;
        validate::serial(serial)?;
        let (code, serial) = (code.to_owned(), serial.to_owned());
        self.to_completion(move |store| async move { dispatch!(store, remove_from_line(org, &code, &serial, by)) }).await
    }
}

impl CheckIns for Store {
    async fn first_look(&self, product_key: &str, code: &str, serial: &str) -> Result<FirstLook> {
        dispatch!(self, first_look(product_key, code, serial))
    }

    /// A product whose subscription has ended (see [`Store::term_ended`])
    /// takes the full decision, which refuses.
    async fn check_in_held(&self, code: &str, serial: &str, seat: HeldSeat) -> Result<CheckIn> {
        if self.term_ended(seat.org, code).await {
            return dispatch!(self, decide(seat.org, code, serial, false));
        }
        dispatch!(self, check_in_held(code, serial, seat))
    }

    async fn check_in_or_wait(&self, org: OrgId, code: &str, serial: &str, queue: bool) -> Result<CheckIn> {
        if self.term_ended(org, code).await {
            return dispatch!(self, decide(org, code, serial, queue));
        }
        dispatch!(self, check_in_or_wait(org, code, serial, queue))
    }

    async fn release(&self, org: OrgId, code: &str, serial: &str) -> Result<bool> {
        validate::serial(serial)?;
        let (code, serial) = (code.to_owned(), serial.to_owned());
        self.to_completion(move |store| async move { dispatch!(store, release(org, &code, &serial)) }).await
    }
}

impl AuditLog for Store {
    async fn activity(&self, org: OrgId, filter: &ActivityFilter) -> Result<Page<Activity>> {
        validate::lookup("serial", filter.serial.as_deref().unwrap_or_default())?;
        validate::lookup("product", filter.product.as_deref().unwrap_or_default())?;
        dispatch!(self, activity(org, filter))
    }

    async fn prune_activity(&self, before: Timestamp) -> Result<u64> {
        self.to_completion(move |store| async move { dispatch!(store, prune_activity(before)) }).await
    }
}

impl Usage for Store {
    async fn snapshot_usage(&self, now: Timestamp) -> Result<u64> {
        self.to_completion(move |store| async move { dispatch!(store, snapshot_usage(now)) }).await
    }

    async fn usage(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, UsagePoint)>> {
        dispatch!(self, usage(org, since_day))
    }

    async fn seat_totals(&self) -> Result<Vec<SeatTotal>> {
        dispatch!(self, seat_totals())
    }

    async fn refusals(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, Refusals)>> {
        dispatch!(self, refusals(org, since_day))
    }

    async fn refused_devices(&self, org: OrgId, since_day: i64) -> Result<Vec<(String, i64)>> {
        dispatch!(self, refused_devices(org, since_day))
    }
}

impl Webhooks for Store {
    async fn add_webhook(&self, org: OrgId, url: &str, events: &[WebhookEvent], secret: &[u8], by: Actor) -> Result<Webhook> {
        let parsed = url::Url::parse(url).map_err(|error| StoreError::invalid(format!("url is not a URL: {error}")))?;
        self.webhooks.destinations.check_parsed(parsed)?;
        let (url, events, secret) = (url.to_owned(), events.to_owned(), secret.to_owned());
        self.to_completion(move |store| async move { dispatch!(store, add_webhook(org, &url, &events, &secret, by)) }).await
    }

    async fn webhooks(&self, org: OrgId) -> Result<Vec<Webhook>> {
        dispatch!(self, webhooks(org))
    }

    async fn delete_webhook(&self, org: OrgId, id: i64, by: Actor) -> Result<()> {
        self.to_completion(move |store| async move { dispatch!(store, delete_webhook(org, id, by)) }).await
    }

    async fn delivery_attempts(&self, org: OrgId, id: i64, page: &PageRequest) -> Result<Page<DeliveryAttempt>> {
        validate::page(page)?;
        dispatch!(self, delivery_attempts(org, id, page))
    }

    async fn claim_messages(&self, now: Timestamp, claim_until: Timestamp, limit: i64) -> Result<Vec<OutboxMessage>> {
        self.to_completion(move |store| async move { dispatch!(store, claim_messages(now, claim_until, limit)) }).await
    }

    async fn finish_message(&self, message: &OutboxMessage, attempted: &Attempted) -> Result<()> {
        let (message, attempted) = (message.clone(), attempted.clone());
        self.to_completion(move |store| async move { dispatch!(store, finish_message(&message, &attempted)) }).await
    }

    async fn raise_alerts(&self, now: Timestamp) -> Result<u64> {
        let told = self.to_completion(move |store| async move { dispatch!(store, raise_alerts(now)) }).await?;
        if told > 0 {
            self.wake_webhooks();
        }
        Ok(told)
    }

    async fn prune_webhook_attempts(&self, before: Timestamp) -> Result<u64> {
        self.to_completion(move |store| async move { dispatch!(store, prune_webhook_attempts(before)) }).await
    }
}

impl SigningKeys for Store {
    async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        dispatch!(self, signing_keys())
    }

    async fn add_signing_key(&self, key: &StoredSigningKey, retire_active: bool) -> Result<bool> {
        let key = key.to_owned();
        self.to_completion(move |store| async move { dispatch!(store, add_signing_key(&key, retire_active)) }).await
    }

    async fn replace_signing_secret(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let (kid, old, new) = (kid.to_owned(), old.to_owned(), new.to_owned());
        self.to_completion(move |store| async move { dispatch!(store, replace_signing_secret(&kid, &old, &new)) }).await
    }
}

/// How long a product's license terms read from the database are used
/// before they are read again: a change another process makes is honoured
/// within this.
const TERMS_REFRESH: Duration = Duration::from_secs(1);

/// The license terms of the products this process issued licenses for
/// lately: a signed license needs them at every licensed check-in.
/// By organization, then product code: a lookup by `&str` allocates nothing.
#[derive(Default)]
struct Terms(Mutex<HashMap<OrgId, HashMap<String, (Instant, LicenseTerms)>>>);

impl Terms {
    fn get(&self, org: OrgId, code: &str) -> Option<LicenseTerms> {
        let terms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_at, terms) = terms.get(&org)?.get(code)?;
        (read_at.elapsed() < TERMS_REFRESH).then(|| terms.clone())
    }

    /// The subscription's last day alone, without copying the rest: what
    /// every held check-in asks.
    fn valid_until(&self, org: OrgId, code: &str) -> Option<Option<chrono::NaiveDate>> {
        let terms = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (read_at, terms) = terms.get(&org)?.get(code)?;
        (read_at.elapsed() < TERMS_REFRESH).then_some(terms.valid_until)
    }

    fn remember(&self, org: OrgId, code: &str, terms: &LicenseTerms) {
        let mut known = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        known.entry(org).or_default().insert(code.to_owned(), (Instant::now(), terms.clone()));
    }

    fn forget(&self, org: OrgId, code: &str) {
        if let Some(products) = self.0.lock().unwrap_or_else(PoisonError::into_inner).get_mut(&org) {
            products.remove(code);
        }
    }
}
