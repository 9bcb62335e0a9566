//! The `seatkeeper` command line: `serve` (the default) and the operator's
//! commands, which work on the same database as running servers. Each operator
//! command prints a short summary for people, or JSON with `--json`.

use std::fmt::Write as _;
use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use store::prelude::*;
use store::{Actor, NewOrganization, NewProduct, OrganizationSummary, Product, Store, StoreError};

use store::sealed::SealingKey;

use crate::client_address::{Cidr, TrustedProxies};
use crate::observe::MetricsToken;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/seatkeeper.db";

#[derive(Parser)]
#[command(name = "seatkeeper", version, about = "Seatkeeper, the license seat server")]
pub struct Cli {
    /// Where the data lives: sqlite://path/to/file.db or postgres://user@host/db.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, global = true, hide_env_values = true)]
    pub database_url: String,

    /// The address to serve on.
    #[arg(long, env = "LEPTOS_SITE_ADDR", default_value = "127.0.0.1:3000", global = true)]
    pub addr: SocketAddr,

    /// Check-ins per second one organization's product key may make (0: no limit).
    #[arg(long, env = "SEATKEEPER_CHECKIN_RATE", default_value_t = 1000.0, global = true)]
    pub checkin_rate: f64,

    /// Check-ins one organization may make at once above that rate.
    #[arg(long, env = "SEATKEEPER_CHECKIN_BURST", default_value_t = 5000.0, global = true)]
    pub checkin_burst: f64,

    /// Failed authentications per minute one client address may make before it
    /// is refused for a while (0: no limit).
    #[arg(long, env = "SEATKEEPER_FAILED_AUTH_PER_MINUTE", default_value_t = 300.0, global = true)]
    pub failed_auth_per_minute: f64,

    /// Seconds one request may take, reading its body included.
    #[arg(long, env = "SEATKEEPER_REQUEST_TIMEOUT", default_value_t = 30, global = true)]
    pub request_timeout: u64,

    /// Connections the server keeps open at once; more wait in the listen queue.
    #[arg(long, env = "SEATKEEPER_MAX_CONNECTIONS", default_value_t = 4096, global = true)]
    pub max_connections: usize,

    /// Connections one client address (an IPv6 /64) may hold open at once;
    /// more are closed at once. Trusted proxies are exempt.
    #[arg(long, env = "SEATKEEPER_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, global = true)]
    pub max_connections_per_address: usize,

    /// Seconds a connection may stay open with no request under way.
    #[arg(long, env = "SEATKEEPER_IDLE_TIMEOUT", default_value_t = 30, global = true)]
    pub idle_timeout: u64,

    /// Reverse proxies (comma-separated addresses or CIDR networks) whose
    /// X-Forwarded-For header names the client to the failed-authentication
    /// throttle, and which are not held to the per-address connection cap.
    /// Without it the header is ignored.
    #[arg(long, env = "SEATKEEPER_TRUSTED_PROXIES", value_delimiter = ',', global = true)]
    pub trusted_proxies: Vec<Cidr>,

    /// Bytes a request's line and headers may take (431 above; at least 8192).
    #[arg(long, env = "SEATKEEPER_MAX_HEADER_BYTES", default_value_t = 16384, global = true)]
    pub max_header_bytes: usize,

    /// Days the audit log keeps a change (0: keep every change).
    #[arg(long, env = "SEATKEEPER_ACTIVITY_RETENTION_DAYS", default_value_t = 365, global = true)]
    pub activity_retention_days: u32,

    /// Seconds between two passes of the task that frees idle seats of
    /// products with `reclaim_after_days`.
    #[arg(long, env = "SEATKEEPER_RECLAIM_INTERVAL", default_value_t = 600, global = true)]
    pub reclaim_interval: u64,

    /// Serve `GET /metrics` (Prometheus), without a token, on this address of
    /// its own (keep it behind your firewall).
    #[arg(long, env = "SEATKEEPER_METRICS_ADDR", global = true)]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve `GET /metrics` on the main address to requests bearing this token
    /// (`Authorization: Bearer <token>`, at least 16 characters). Without it
    /// the main address does not serve metrics: they name every organization.
    #[arg(long, env = "SEATKEEPER_METRICS_TOKEN", hide_env_values = true, global = true, value_parser = metrics_token)]
    pub metrics_token: Option<MetricsToken>,

    /// How the server logs: `text` for people, `json` (one object per line,
    /// with the request id) for log collectors. The level is RUST_LOG's.
    #[arg(long, env = "SEATKEEPER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// A file holding the key that seals the license signing keys in the
    /// database: 64 hexadecimal digits (`openssl rand -hex 32`). Keys stored
    /// before are sealed at the first start with it; without it a server
    /// refuses to start on sealed keys.
    #[arg(long, env = "SEATKEEPER_SECRETS_KEY_FILE", global = true)]
    pub secrets_key_file: Option<std::path::PathBuf>,

    /// Let webhooks go to loopback, private and link-local addresses, and
    /// over plain HTTP: for tests and private networks. Without it a
    /// webhook must be an HTTPS URL of a public address.
    #[arg(long, env = "SEATKEEPER_ALLOW_PRIVATE_WEBHOOKS", global = true)]
    pub allow_private_webhooks: bool,

    /// Seconds a webhook endpoint has to answer one delivery.
    #[arg(long, env = "SEATKEEPER_WEBHOOK_TIMEOUT", default_value_t = 10, global = true,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub webhook_timeout: u64,

    /// Print JSON instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the web pages and the APIs (the default).
    Serve,
    /// Organizations: the vendor's customers.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Products and their seats.
    #[command(subcommand)]
    Product(ProductCommand),
    /// An organization's API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The server's Ed25519 keys that sign licenses.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
}

#[derive(Subcommand)]
pub enum SigningKeyCommand {
    /// List the signing keys: the active one and those retired.
    List,
    /// Make a new key the one that signs; the old one stays published so that
    /// licenses it signed still verify. Running servers switch within a second.
    Rotate,
}

#[derive(Subcommand)]
pub enum OrgCommand {
    /// Create an organization and print its two API keys (shown only now).
    Create { name: String },
    /// List organizations.
    List,
}

#[derive(Subcommand)]
pub enum ProductCommand {
    /// Add a product with its seats to an organization.
    Add {
        #[arg(long)]
        org: String,
        /// Stable id used by apps: [a-z0-9][a-z0-9-_.]{0,63}.
        #[arg(long)]
        code: String,
        /// Display name.
        #[arg(long)]
        name: String,
        #[arg(long, allow_negative_numbers = true)]
        seats: i64,
        /// Give a free seat to every new device that checks in.
        #[arg(long)]
        auto_assign: bool,
    },
    /// Change how many seats an organization owns. Lowering it revokes nothing.
    SetSeats {
        #[arg(long)]
        org: String,
        #[arg(long)]
        code: String,
        #[arg(long, allow_negative_numbers = true)]
        seats: i64,
    },
    /// Set the last day (UTC) of an organization's subscription to a
    /// product; from the day after, its check-ins are refused with
    /// `subscription_expired`. Nothing is deleted: extending the term
    /// restores every seat as it was. Running servers apply it within a second.
    SetTerm {
        #[arg(long)]
        org: String,
        #[arg(long)]
        code: String,
        /// The subscription's last day, YYYY-MM-DD.
        #[arg(long, value_name = "YYYY-MM-DD", conflicts_with = "clear", required_unless_present = "clear")]
        valid_until: Option<chrono::NaiveDate>,
        /// No end.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Issue a new key; the old one stops working at once.
    Rotate(RotateArgs),
}

#[derive(Args)]
pub struct RotateArgs {
    #[arg(long)]
    org: String,
    /// Rotate the administration API key.
    #[arg(long, conflicts_with = "product", required_unless_present = "product")]
    admin: bool,
    /// Rotate the product API key.
    #[arg(long)]
    product: bool,
}

impl Cli {
    /// The key-encryption key of `--secrets-key-file`, if one is named.
    pub fn secrets_key(&self) -> Result<Option<SealingKey>, StoreError> {
        self.secrets_key_file.as_deref().map(SealingKey::from_file).transpose().map_err(StoreError::Unavailable)
    }
}

fn metrics_token(token: &str) -> Result<MetricsToken, String> {
    MetricsToken::new(token).ok_or_else(|| "the metrics token must be at least 16 printable characters".to_owned())
}

impl Cli {
    pub fn limits(&self) -> std::sync::Arc<crate::limits::Limits> {
        use crate::limits::{Connections, Limits, Rate, RateLimiter};
        use std::time::Duration;
        let per_minute = self.failed_auth_per_minute.max(0.0);
        std::sync::Arc::new(Limits {
            checkins: RateLimiter::new(Rate { per_second: self.checkin_rate.max(0.0), burst: self.checkin_burst.max(1.0) }),
            failed_auth: RateLimiter::new(Rate { per_second: per_minute / 60.0, burst: per_minute.max(1.0) }),
            request_timeout: Duration::from_secs(self.request_timeout.max(1)),
            connections: Connections {
                max: self.max_connections.max(1),
                max_per_address: self.max_connections_per_address.max(1),
                max_header_bytes: self.max_header_bytes.max(8192),
                idle_timeout: Duration::from_secs(self.idle_timeout.max(1)),
                ..Connections::default()
            },
            trusted_proxies: TrustedProxies::new(self.trusted_proxies.clone()),
        })
    }
}

/// What an operator command prints: a summary for people and JSON for scripts.
pub struct Output {
    pub human: String,
    pub json: serde_json::Value,
}

/// A created organization as JSON. The keys appear under both their short
/// names and the long ones of docs/contract.md.
#[derive(Serialize)]
struct CreatedOrganization<'a> {
    name: &'a str,
    organization: &'a str,
    admin_key: &'a str,
    product_key: &'a str,
    admin_api_key: &'a str,
    product_api_key: &'a str,
}

#[derive(Serialize)]
struct ProductOfOrg<'a> {
    organization: &'a str,
    #[serde(flatten)]
    product: &'a Product,
}

#[derive(Serialize)]
struct RotatedKey<'a> {
    organization: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_api_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product_api_key: Option<&'a str>,
}

/// A signing key as the command line shows it: never the secret.
#[derive(Serialize)]
struct SigningKeyInfo<'a> {
    kid: &'a str,
    active: bool,
    /// Whether its secret is stored sealed (`--secrets-key-file`).
    sealed: bool,
    created_at: store::Timestamp,
    retired_at: Option<store::Timestamp>,
}

impl<'a> From<&'a store::StoredSigningKey> for SigningKeyInfo<'a> {
    fn from(key: &'a store::StoredSigningKey) -> Self {
        SigningKeyInfo {
            kid: &key.kid,
            active: key.retired_at.is_none(),
            sealed: store::sealed::is_sealed(&key.secret),
            created_at: key.created_at,
            retired_at: key.retired_at,
        }
    }
}

fn json(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

/// The summary printed for a new organization, by `org create` and by the
/// first start of a server on an empty database.
pub fn organization_summary(org: &NewOrganization) -> Output {
    let human = format!(
        "Organization {name:?} created.\n  \
         Administration API key: {admin}\n  \
         Product API key:        {product}\n\
         The administration key is shown only now: keep it safe.",
        name = org.name,
        admin = org.admin_key,
        product = org.product_key,
    );
    let json = json(CreatedOrganization {
        name: &org.name,
        organization: &org.name,
        admin_key: &org.admin_key,
        product_key: &org.product_key,
        admin_api_key: &org.admin_key,
        product_api_key: &org.product_key,
    });
    Output { human, json }
}

fn product_summary(verb: &str, org: &str, product: &Product) -> Output {
    let mut human = format!(
        "Product {code:?} ({name}) {verb} for {org:?}: {seats} seat{s}, {assigned} assigned, auto-assign {auto}.",
        s = if product.seats == 1 { "" } else { "s" },
        code = product.code,
        name = product.name,
        seats = product.seats,
        assigned = product.assigned,
        auto = if product.auto_assign { "on" } else { "off" },
    );
    match product.valid_until {
        Some(last_day) if product.term_ended(store::now()) => {
            let _ = write!(human, "\nSubscription ended on {last_day}: check-ins are refused; every seat is kept.");
        }
        Some(last_day) => {
            let _ = write!(human, "\nSubscription valid until {last_day} (UTC).");
        }
        None => {}
    }
    if product.over_allocated() {
        let _ = write!(human, "\nOver-allocated: no seat is revoked; no new seat is given until assignments drop below {}.", product.seats);
    }
    Output { human, json: json(ProductOfOrg { organization: org, product }) }
}

fn organizations_summary(orgs: &[OrganizationSummary]) -> Output {
    let mut human = String::new();
    if orgs.is_empty() {
        human.push_str("No organizations yet. Create one with: seatkeeper org create <name>");
    }
    for org in orgs {
        let _ = writeln!(human, "{}\t{} products\t{} devices\tcreated {}", org.name, org.products, org.devices, org.created_at.to_rfc3339());
    }
    Output { human: human.trim_end().to_owned(), json: json(orgs) }
}

/// Runs one operator command against the store; `sealing` seals a new
/// signing key.
pub async fn run(store: &Store, command: Command, sealing: Option<&SealingKey>) -> Result<Output, StoreError> {
    match command {
        Command::Serve => unreachable!("serve is handled by main"),
        Command::Org(OrgCommand::Create { name }) => Ok(organization_summary(&store.create_organization(&name).await?)),
        Command::Org(OrgCommand::List) => Ok(organizations_summary(&store.organizations().await?)),
        Command::Product(ProductCommand::Add { org, code, name, seats, auto_assign }) => {
            let id = store.organization_by_name(&org).await?.id;
            let product = store.add_product(id, &NewProduct { code, name, seats, auto_assign }, Actor::Operator).await?;
            Ok(product_summary("added", &org, &product))
        }
        Command::Product(ProductCommand::SetSeats { org, code, seats }) => {
            let id = store.organization_by_name(&org).await?.id;
            let product = store.set_seats(id, &code, seats, Actor::Operator).await?;
            Ok(product_summary("updated", &org, &product))
        }
        Command::Product(ProductCommand::SetTerm { org, code, valid_until, clear: _ }) => {
            let id = store.organization_by_name(&org).await?.id;
            let product = store.set_term(id, &code, valid_until, Actor::Operator).await?;
            Ok(product_summary("updated", &org, &product))
        }
        Command::SigningKey(SigningKeyCommand::List) => {
            let keys = store.signing_keys().await?;
            let mut human = String::new();
            if keys.is_empty() {
                human.push_str("No signing key yet: the server makes one when it first starts.");
            }
            for key in &keys {
                let state = match key.retired_at {
                    None => "active".to_owned(),
                    Some(at) => format!("retired {}", at.to_rfc3339()),
                };
                let sealed = if store::sealed::is_sealed(&key.secret) { "sealed" } else { "not sealed" };
                let _ = writeln!(human, "{}	created {}	{state}	{sealed}", key.kid, key.created_at.to_rfc3339());
            }
            let json = json(keys.iter().map(SigningKeyInfo::from).collect::<Vec<_>>());
            Ok(Output { human: human.trim_end().to_owned(), json })
        }
        Command::SigningKey(SigningKeyCommand::Rotate) => {
            let key = crate::licensing::rotate(store, sealing).await?;
            let human = format!(
                "New signing key {}: it signs licenses from now on (running servers switch within a second).\n\
                 Earlier keys stay published at /api/v1/public-keys, so licenses they signed still verify.",
                key.kid
            );
            Ok(Output { human, json: json(SigningKeyInfo::from(&key)) })
        }
        Command::Keys(KeysCommand::Rotate(RotateArgs { org, admin, product: _ })) => {
            let id = store.organization_by_name(&org).await?.id;
            let (label, key) = if admin {
                ("Administration API key", store.rotate_admin_key(id, Actor::Operator).await?)
            } else {
                ("Product API key", store.rotate_product_key(id, Actor::Operator).await?)
            };
            let human = format!("New {label} for {org:?}: {key}\nThe old key no longer works.");
            let key = Some(key.as_str());
            let rotated = if admin {
                RotatedKey { organization: &org, admin_key: key, admin_api_key: key, product_key: None, product_api_key: None }
            } else {
                RotatedKey { organization: &org, admin_key: None, admin_api_key: None, product_key: key, product_api_key: key }
            };
            Ok(Output { human, json: json(rotated) })
        }
    }
}

