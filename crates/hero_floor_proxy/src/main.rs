//! The floor of `scripts/bench_proxy.sh`: a proxy with hero_router's shape and none of its
//! work, to tell what a proxy built this way costs from what the router's own code adds.
//!
//! Like the router it runs one single-threaded tokio runtime per core, hands each accepted TCP
//! connection to the next one, and gives each connection one upstream Unix-socket connection
//! of its own. Per request it makes the same four system calls (a read and a write on each
//! side) and parses nothing: whatever one read brings is written upstream, and whatever one
//! read of the answer brings goes back. That is only right for what the benchmark sends (one
//! small request at a time, one small answer that comes in one read): this is a measuring
//! stick, not a proxy.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UnixStream};

/// The command line.
#[derive(Debug, Parser)]
#[command(about = "The proxy benchmark's floor: the router's threads and system calls, no parsing")]
struct Args {
    /// TCP address to listen on (`127.0.0.1:0` picks a port; the port is printed).
    #[arg(long)]
    listen: String,
    /// The Unix socket every connection is forwarded to.
    #[arg(long)]
    upstream: PathBuf,
    /// Connection threads (default: one per core, as the router).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let mut shards = Vec::new();
    for i in 0..threads.max(1) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        shards.push(rt.handle().clone());
        std::thread::Builder::new()
            .name(format!("floor-{i}"))
            .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        println!("{}", listener.local_addr()?);
        for next in 0.. {
            let (client, _) = listener.accept().await?;
            let client = client.into_std()?;
            let upstream = args.upstream.clone();
            shards[next % shards.len()].spawn(async move {
                let Ok(client) = TcpStream::from_std(client) else {
                    return;
                };
                let Ok(service) = UnixStream::connect(&upstream).await else {
                    return;
                };
                relay(client, service).await;
            });
        }
        Ok(())
    })
}

/// One read of a request, written upstream; one read of the answer, written back; until
/// either side closes.
async fn relay(mut client: TcpStream, mut service: UnixStream) {
    let mut request = vec![0u8; 16 * 1024];
    let mut answer = vec![0u8; 16 * 1024];
    loop {
        let n = match client.read(&mut request).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if service.write_all(&request[..n]).await.is_err() {
            return;
        }
        let n = match service.read(&mut answer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if client.write_all(&answer[..n]).await.is_err() {
            return;
        }
    }
}
