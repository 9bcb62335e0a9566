//! `seatkeeper`: serves (the default) or runs an operator command.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use seatkeeper::cli::{self, Cli, Command, LogFormat};
use seatkeeper::{AppState, serve};
use store::prelude::*;
use store::Store;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        // Each line names the request it belongs to (its `request` span).
        LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
    }

    match cli.command.take() {
        None | Some(Command::Serve) => match run_server(&cli).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        Some(command) => run_operator(&cli, command).await,
    }
}

async fn run_server(cli: &Cli) -> anyhow::Result<()> {
    let sealing = cli.secrets_key()?;
    let destinations = store::webhooks::Destinations { allow_private: cli.allow_private_webhooks };
    let store =
        Store::open(&cli.database_url).await.context("opening the store")?.with_webhooks(destinations, sealing.clone());
    store.lock_for_serving()?;
    if let Some(org) = store.bootstrap().await.context("creating the default organization")? {
        println!("First start on an empty database.\n{}\n", cli::organization_summary(&org).human);
    }
    let shutdown = shutdown_signal().context("installing the signal handlers")?;
    let listener =
        tokio::net::TcpListener::bind(cli.addr).await.with_context(|| format!("listening on {}", cli.addr))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let state = AppState::new(store.clone(), addr)
        .with_limits(cli.limits())
        .with_metrics_token(cli.metrics_token.clone())
        .with_secrets_key(sealing);
    let mut metrics_bound = None;
    if let Some(metrics_addr) = cli.metrics_addr {
        let metrics = tokio::net::TcpListener::bind(metrics_addr)
            .await
            .with_context(|| format!("listening for /metrics on {metrics_addr}"))?;
        let bound = metrics.local_addr().context("reading the metrics address")?;
        metrics_bound = Some(bound);
        let router = seatkeeper::metrics_router(state.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(metrics, router).await {
                tracing::error!(%error, "the metrics listener stopped");
            }
        });
    }
    state.licenser.load().await.context("loading the license signing keys")?;
    seatkeeper::housekeeping::spawn_usage_snapshots(store.clone());
    seatkeeper::webhooks::spawn(store.clone(), std::time::Duration::from_secs(cli.webhook_timeout));
    seatkeeper::housekeeping::spawn_reclaim(store.clone(), std::time::Duration::from_secs(cli.reclaim_interval.max(1)));
    if cli.activity_retention_days > 0 {
        let days = u64::from(cli.activity_retention_days);
        seatkeeper::housekeeping::spawn_activity_retention(store.clone(), std::time::Duration::from_secs(days * 86_400));
    }
    // Said once everything is ready (the signing keys above all), so that
    // an operator, a supervisor or a test reading it can rely on it.
    tracing::info!(%addr, backend = store.backend_name(), "Seatkeeper is serving on http://{addr}");
    if let Some(bound) = metrics_bound {
        tracing::info!(%bound, "metrics on http://{bound}/metrics");
    }
    serve(listener, state, shutdown).await.context("serving")?;
    store.flush().await.context("writing the last-seen times")?;
    tracing::info!("stopped");
    Ok(())
}

async fn run_operator(cli: &Cli, command: Command) -> ExitCode {
    let json = cli.json;
    let result = match (Store::open(&cli.database_url).await, cli.secrets_key()) {
        (Ok(store), Ok(sealing)) => cli::run(&store, command, sealing.as_ref()).await,
        (Err(error), _) | (_, Err(error)) => Err(error),
    };
    match result {
        Ok(output) if json => {
            println!("{}", serde_json::to_string_pretty(&output.json).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(output) => {
            println!("{}", output.human);
            ExitCode::SUCCESS
        }
        Err(error) => {
            if json {
                let body = serde_json::json!({"error": {"code": error.code().as_str(), "message": error.to_string()}});
                println!("{body}");
            }
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves at SIGINT or SIGTERM. The handlers are installed when this is
/// called, before the server announces itself, so a signal sent the moment
/// it is up still stops it gracefully.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let (mut terminate, mut interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?)
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing requests in flight");
    })
}
