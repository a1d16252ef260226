//! `hero_example_service`: runs the example Hero service until SIGINT or SIGTERM.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use clap::Parser;
use hero_example_service::{ServiceConfig, Spec, spawn};
use hero_socket::BindOptions;
use hero_socket::root::{ProcessEnv, resolve_root};
use tokio::signal::unix::{SignalKind, signal};

/// A small Hero service for tests, the demo and the benchmarks.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The Hero socket directory; the socket is <DIR>/<NAME>/<KIND>.sock. Default: the
    /// router's root: $HERO_SOCKET_DIR, else $PATH_SOCKET, else $HOME/hero/var/sockets.
    #[arg(long, value_name = "DIR")]
    socket_dir: Option<PathBuf>,
    /// The service name.
    #[arg(long, default_value = "example")]
    name: String,
    /// The socket kind.
    #[arg(long, default_value = "rpc")]
    kind: String,
    /// The listen(2) backlog.
    #[arg(long, default_value_t = 1024)]
    backlog: i32,
    /// The OpenRPC document it serves: rich (its own), invalid (deliberately broken), none.
    #[arg(long, default_value = "rich", value_name = "rich|invalid|none")]
    spec: Spec,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let socket_dir = resolve_root(args.socket_dir, &ProcessEnv)?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let cfg = ServiceConfig {
        socket_dir,
        name: args.name,
        kind: args.kind,
        bind: BindOptions {
            backlog: args.backlog,
            ..BindOptions::default()
        },
        spec: args.spec,
    };
    let service = spawn(cfg).await?;
    tokio::select! {
        _ = sigint.recv() => tracing::info!("SIGINT received, shutting down"),
        _ = sigterm.recv() => tracing::info!("SIGTERM received, shutting down"),
    }
    service.shutdown().await;
    Ok(())
}
