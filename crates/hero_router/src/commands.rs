//! The `hero_router` commands behind the binary: parse the flags ([`crate::cli`]), set up
//! logging, and run the subcommand: `serve` ([`crate::serve`]), a one-shot `scan`, the
//! commands that ask the running router over its `rpc.sock`, `access` (the allow-list file)
//! and `completions`. The binary (`main.rs`) only calls [`main`].

use std::io::{self, IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::access::file::{self as access_file, Edited, Emptying, FileError};
use crate::cli::{
    AccessAction, Cli, ClientLanguage, Command, DocsArgs, terminal_safe, terminal_safe_json,
    terminal_safe_lines,
};
use crate::clients::Lang;
use crate::config::{Config, ProcessEnv, resolve_root};
use crate::docs::IndexEntry;
use crate::docs::pages::{self, Format};
use crate::registry::catalog::SpecState;
use crate::upstream;
use crate::{json, scan_cmd, serve, telemetry};

/// The whole `hero_router` command: parse the flags, set up logging, dispatch; the exit
/// status (0 ok, 1 runtime error, 2 usage error).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.command, Command::Serve(_)) {
        // `serve`'s connections run on its shards (one thread per core, `serve::listener`);
        // this runtime is the control plane: the scanner, the catalog fetcher, the dashboard's
        // hub, the accept loops. One worker keeps what they allocate in one allocator heap:
        // with a worker per core, the same tasks hopping between threads left partly used pages
        // in each (10,000 services: 57.9 -> 51.8 MiB, BENCHMARKS.md "Round 4").
        builder.worker_threads(1);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            complain(format_args!("cannot start the runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            complain(format_args!("{e:#}"));
            ExitCode::from(1)
        }
    };
    // A blocking call still running (a scan stuck on a hung file system) must not hold the
    // exit: `serve` has already said it stopped.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    code
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Answered before the root is resolved: completions need no root, no HOME, no logging.
    if let Command::Completions { shell } = cli.command {
        return completions(shell);
    }
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    match telemetry::init(cli.log_format, cli.log_level.as_deref(), default_level) {
        Ok(()) => {}
        // A filter that does not parse is a bad flag value: a usage error.
        Err(e @ telemetry::InitError::Filter(_)) => {
            complain(format_args!("{e}"));
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    }
    // `access` edits the file it is given: no socket root, no running router (under a
    // supervisor without HOME, `--access-file` is all it needs).
    if let Command::Access { file, action } = &cli.command {
        return access(file.path.clone(), action.clone());
    }
    let root = resolve_root(cli.socket_dir.clone(), &ProcessEnv)?;
    let rpc_sock = root.join("hero_router").join("rpc.sock");
    match cli.command {
        Command::Serve(args) => {
            let cfg = Config::resolve(Some(root), &args, &ProcessEnv)?;
            // The handlers are in place before any socket is: a signal that comes as soon as
            // the router answers is a graceful shutdown, never the default's abrupt exit.
            let signals = ShutdownSignals::install();
            let listeners = serve::Listeners::bind(&cfg).await?;
            let token = CancellationToken::new();
            tokio::spawn(shutdown_on_signal(signals, token.clone()));
            serve::run(cfg, listeners, token).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Scan(args) => {
            let report = scan_cmd::run(root, &args).await?;
            if args.json {
                out_json(&pretty(&report)?)?;
            } else {
                out(&scan_cmd::render_text(&report))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::List { json } => {
            let services = call(&rpc_sock, "router.services", Value::Null).await?;
            if json {
                out_json(&pretty(&services)?)?;
            } else {
                let mut text = String::new();
                for s in services.as_array().into_iter().flatten() {
                    let field = |v: &Value, none: &'static str| {
                        terminal_safe(v.as_str().unwrap_or(none)).into_owned()
                    };
                    let socks: Vec<String> = s["sockets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|k| format!("{}={}", field(&k["kind"], "?"), field(&k["state"], "?")))
                        .collect();
                    let methods = match s["methods_count"].as_u64() {
                        Some(n) => format!("{n} methods"),
                        None => "-".into(),
                    };
                    text.push_str(&format!(
                        "{:<24} {:<10} {:<10} {:<11} spec={:<8} {:<30} {}\n",
                        field(&s["name"], "?"),
                        field(&s["status"], "?"),
                        field(&s["version"], "-"),
                        methods,
                        field(&s["spec"]["state"], "?"),
                        field(&s["title"], "-"),
                        socks.join(" ")
                    ));
                }
                out(&text)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Call {
            service,
            method,
            params,
            timeout,
        } => {
            let method = format!("{service}.{method}");
            if crate::rpc::is_own_method(&method) {
                complain(format_args!(
                    "{method} is the router's own method, not {service}'s: a service named {service} cannot be called by method name through the router (see docs/json-rpc.md#reserved-names); call it on its own socket, or through the MCP gateway"
                ));
                return Ok(ExitCode::from(2));
            }
            let result = call_raw(&rpc_sock, &method, params.as_deref(), timeout).await?;
            out_json(&(json::pretty(&result) + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Health => {
            let health = call(&rpc_sock, "router.health", Value::Null).await?;
            out_json(&pretty(&health)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Spec { service } => {
            // As the service served it: every number as written.
            let params = json::raw(&json!({"name": service}));
            let spec = call_raw(&rpc_sock, "router.spec", Some(&params), CLI_TIMEOUT).await?;
            out_json(&(json::pretty(&spec) + "\n"))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Markdown(args) => docs(&rpc_sock, &args, Format::Markdown).await,
        Command::Html(args) => docs(&rpc_sock, &args, Format::Html).await,
        Command::Access { file, action } => access(file.path, action),
        Command::McpConfig { service, url } => {
            let url = match url {
                Some(url) => url,
                None => {
                    let health = call(&rpc_sock, "router.health", Value::Null).await?;
                    match health["listeners"]["service"][0].as_str() {
                        Some(addr) => format!("http://{addr}"),
                        None => anyhow::bail!(
                            "the router has no TCP service listener (--no-tcp); give the URL an agent reaches it by with --url"
                        ),
                    }
                }
            };
            let services = call(&rpc_sock, "router.services", Value::Null).await?;
            let (config, note) =
                crate::mcp::client_config::render(&services, service.as_deref(), &url)
                    .map_err(anyhow::Error::msg)?;
            out_json(&pretty(&config)?)?;
            if let Some(note) = note {
                eprintln!("hero_router: note: {}", crate::cli::terminal_safe(&note));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Client {
            language,
            service,
            out: dir,
        } => client(&rpc_sock, language, &service, dir.as_deref()).await,
        Command::Completions { shell } => completions(shell),
    }
}

/// `hero_router client python|typescript SERVICE`: the client module from the running
/// router's cached spec, to stdout or `DIR/` ([`Lang::file_name`]).
async fn client(
    sock: &std::path::Path,
    language: ClientLanguage,
    service: &str,
    dir: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let lang = match language {
        ClientLanguage::Python => Lang::Python,
        ClientLanguage::Typescript => Lang::TypeScript,
    };
    // The document's own text: the client lists members in the spec's order.
    let params = json::raw(&json!({"name": service}));
    let spec = call_raw(sock, "router.spec", Some(&params), CLI_TIMEOUT).await?;
    let text = crate::clients::generate(lang, service, spec.get());
    match dir {
        Some(dir) => {
            if !crate::registry::names::valid_service_name(service) {
                anyhow::bail!("{service:?} is not a service name a file can be named after");
            }
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let path = write_file(&dir.join(lang.file_name(service)), &text)?;
            out(&format!("{}\n", path.display()))?;
        }
        None => out_document(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `hero_router completions SHELL`: the completion script for SHELL on stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hero_router", &mut script);
    out(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

/// `hero_router markdown|html`: pages from the running router's catalog, to stdout or one
/// file per service plus an index in `--out`.
async fn docs(sock: &std::path::Path, args: &DocsArgs, format: Format) -> anyhow::Result<ExitCode> {
    let services = call(sock, "router.services", Value::Null).await?;
    let all: Vec<IndexEntry> = services
        .as_array()
        .into_iter()
        .flatten()
        .map(pages::index_entry_of_json)
        .collect();
    let chosen: Vec<&IndexEntry> = if args.services.is_empty() {
        all.iter()
            .filter(|e| SpecState::has_document(&e.spec_state))
            .collect()
    } else {
        let mut chosen = Vec::new();
        for name in &args.services {
            match all.iter().find(|e| &e.name == name) {
                // A service named twice is written once.
                Some(e) if chosen.iter().any(|c: &&IndexEntry| c.name == e.name) => {}
                Some(e) => chosen.push(e),
                None => anyhow::bail!(
                    "no such service: {name} (`hero_router list` shows the services there are)"
                ),
            }
        }
        chosen
    };
    let ext = match format {
        Format::Markdown => "md",
        Format::Html => "html",
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut written = Vec::new();
    for entry in &chosen {
        let spec = call(sock, "router.spec", json!({"name": entry.name})).await?;
        let invalid = services
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == entry.name.as_str())
            .and_then(pages::invalid_reason_of_json);
        let page = pages::service_page(entry, &spec, invalid, format);
        if let Some(why) = &page.refused {
            // The page is still written (as the router serves it), so an index links it.
            complain(format_args!(
                "warning: the {name} docs are too large or complex to render ({why}); wrote a short page that says so instead; `hero_router spec {name}` prints the document",
                name = entry.name
            ));
        }
        match &args.out {
            Some(dir) => written.push(write_file(
                &dir.join(pages::page_file(&entry.name, ext)),
                &page.text,
            )?),
            None => out_document(&page.text)?,
        }
    }
    if let Some(dir) = &args.out {
        let index: Vec<IndexEntry> = chosen.into_iter().cloned().collect();
        let text = match format {
            Format::Markdown => crate::docs::index_markdown(&index),
            Format::Html => crate::docs::index_html(&index, &|name| pages::page_file(name, "html")),
        };
        written.push(write_file(&dir.join(format!("index.{ext}")), &text)?);
        out(&written
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect::<String>())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes one `--out` file through [`crate::safe_write`]: a symlink at its name is
/// replaced, never written through.
fn write_file(path: &std::path::Path, text: &str) -> anyhow::Result<std::path::PathBuf> {
    crate::safe_write::write(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path.to_path_buf())
}

/// How long a command waits for the router's answer (`call --timeout` sets its own).
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// One JSON-RPC call to the running router; a JSON-RPC error is an `Err` that says whose it
/// is (the router's, or the service's the router passed on).
async fn call(sock: &std::path::Path, method: &str, params: Value) -> anyhow::Result<Value> {
    let params = (!params.is_null()).then(|| json::raw(&params));
    let result = call_raw(sock, method, params.as_deref(), CLI_TIMEOUT).await?;
    Ok(serde_json::from_str(result.get())?)
}

/// [`call`], the params and the result as written.
async fn call_raw(
    sock: &std::path::Path,
    method: &str,
    params: Option<&RawValue>,
    timeout: Duration,
) -> anyhow::Result<Box<RawValue>> {
    let how = upstream::CallOptions {
        timeout,
        limit: usize::MAX,
        headers: &[],
        close: true,
        idempotent: false,
    };
    let answer = match upstream::send_once(sock, method, params, &how).await {
        Ok(answer) => answer,
        Err(e) => anyhow::bail!("{}", unanswered(&e, sock, timeout)),
    };
    if let Some(why) = refusal(&answer) {
        anyhow::bail!("the router at {} refused the call: {why}", sock.display());
    }
    match upstream::reply(&answer, "hero_router") {
        Ok(result) => Ok(result),
        Err(upstream::CallError::Service { error, .. }) => {
            // Whoever made it, the message is shown as it came: a routed call's error is the
            // service's own (the router passes it on unchanged), the rest are the router's.
            let data = error
                .data
                .map(|d| format!(" data: {d}"))
                .unwrap_or_default();
            anyhow::bail!("{} (code {}){data}", error.message, error.code)
        }
        Err(e) => Err(e.into()),
    }
}

/// Why the router's socket gave no answer, in the CLI's words: it talks to the router, and
/// its own deadline is not the router's `--upstream-timeout`.
fn unanswered(e: &upstream::SendError, sock: &std::path::Path, timeout: Duration) -> String {
    use upstream::SendError;
    let (at, waited) = (sock.display(), humantime::format_duration(timeout));
    match e {
        SendError::Down {
            kind: io::ErrorKind::PermissionDenied,
            detail,
        } => format!(
            "cannot connect to the router at {at}: {detail}; run as a user who may write to that socket (its owner or its group)"
        ),
        // A router that holds its socket's lock but does not accept is stopping or starting.
        SendError::Down { detail, .. }
            if matches!(
                hero_socket::OwnerLock::try_existing(sock),
                Ok(hero_socket::TryLock::Held)
            ) =>
        {
            format!(
                "the router at {at} is not accepting calls ({detail}) but still holds its socket: it is shutting down or starting; try again shortly"
            )
        }
        SendError::Down { detail, .. } => format!("no router running at {at} ({detail})"),
        SendError::Busy | SendError::Saturated => format!(
            "the router at {at} is running but stayed busy (its socket's backlog full) for {waited}"
        ),
        SendError::Timeout => format!(
            "no answer from the router at {at} within {waited}; the call may still be running (call --timeout waits longer)"
        ),
        SendError::Closed { .. } => format!(
            "the router at {at} closed the connection without answering (it may be shutting down or restarting: see its log)"
        ),
        SendError::TooLarge { limit } => {
            format!("the router at {at} answered more than {limit} bytes")
        }
        SendError::Broken(detail) => format!("the router at {at} broke off the call: {detail}"),
    }
}

/// The router's own refusal of a request (a limit, the allow-list): an HTTP error whose body
/// is its error object, in its own words.
fn refusal(answer: &upstream::Answer) -> Option<String> {
    if answer.status < 400 {
        return None;
    }
    let body: Value = serde_json::from_slice(&answer.body).ok()?;
    let why = body
        .get("message")
        .or_else(|| body.get("error"))?
        .as_str()?;
    Some(format!("{why} (HTTP {})", answer.status))
}

/// `hero_router access …`: shows or edits the access file. A bad entry, and an unconfirmed
/// edit that would leave no entry (every client allowed), are usage errors (exit 2).
fn access(path: Option<std::path::PathBuf>, action: AccessAction) -> anyhow::Result<ExitCode> {
    let Some(path) = path.or_else(|| access_file::default_path(&ProcessEnv)) else {
        anyhow::bail!("no --access-file given and $HOME is not set");
    };
    let shown = path.display();
    let emptying = |yes| {
        if yes {
            Emptying::Confirmed
        } else {
            Emptying::Refuse
        }
    };
    let done = match &action {
        AccessAction::List => access_file::list(&path).map(|entries| {
            if entries.is_empty() {
                complain(format_args!(
                    "{shown} has no entries: every client is allowed (unless serve has --allow)"
                ));
            }
            entries.iter().map(|e| format!("{e}\n")).collect::<String>()
        }),
        AccessAction::Add { entry } => access_file::add(&path, entry).map(|edited| match edited {
            Edited::AlreadyPresent => format!("{} is already allowed by {shown}\n", entry.trim()),
            _ => format!("added {} to {shown}\n", entry.trim()),
        }),
        AccessAction::Remove { entry, yes } => access_file::remove(&path, entry, emptying(*yes))
            .map(|_| format!("removed {} from {shown}\n", entry.trim())),
        AccessAction::Clear { yes } => access_file::clear(&path, emptying(*yes)).map(|edited| {
            let n = match edited {
                Edited::Removed(n) => n,
                _ => 0,
            };
            let entries = if n == 1 { "entry" } else { "entries" };
            format!(
                "removed {n} {entries} from {shown}: every client is allowed (unless serve has --allow)\n"
            )
        }),
    };
    match done {
        Ok(text) => {
            out(&text)?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ FileError::BadEntry(_)) => {
            complain(format_args!("{e}"));
            Ok(ExitCode::from(2))
        }
        Err(e @ FileError::WouldOpen { .. }) => {
            complain(format_args!(
                "warning: {e}; nothing changed: run it again with --yes to confirm"
            ));
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes a command's output to stdout. A reader that went away (`hero_router list --json |
/// head -1`) is not an error: the command did its work, so it ends quietly with the status it
/// would have had, as ripgrep does. Any other write error is one.
fn out(text: &str) -> anyhow::Result<()> {
    let mut stdout = io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

/// JSON on stdout: a string's DEL, C1 controls, separators and direction controls as
/// `\uXXXX` escapes (the same value), so that a service's text cannot drive the terminal
/// or the pager it is read in.
fn out_json(text: &str) -> anyhow::Result<()> {
    out(&terminal_safe_json(text))
}

/// A page (Markdown or HTML) on stdout: as written to a file or a pipe, with its control
/// characters escaped ([`terminal_safe_lines`]) on a terminal, where a service's text could
/// otherwise drive it.
fn out_document(text: &str) -> anyhow::Result<()> {
    if io::stdout().is_terminal() {
        out(&terminal_safe_lines(text))
    } else {
        out(text)
    }
}

/// `value` as pretty JSON, with a final newline.
fn pretty(value: &impl serde::Serialize) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)? + "\n")
}

/// The one error line on stderr. `eprintln!` would panic (exit 101) if stderr is closed; the
/// exit status already says what happened.
fn complain(msg: std::fmt::Arguments<'_>) {
    // What a service said is part of it: one line, nothing that drives the terminal.
    let msg = msg.to_string();
    let _ = writeln!(io::stderr(), "hero_router: {}", terminal_safe(&msg));
}

/// The signals that stop `serve`, registered at once (tokio installs the handler when a
/// stream is made); `None` if they could not be.
struct ShutdownSignals(Option<[tokio::signal::unix::Signal; 3]>);

impl ShutdownSignals {
    fn install() -> ShutdownSignals {
        use tokio::signal::unix::{SignalKind, signal};
        let made = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        );
        match made {
            (Ok(term), Ok(int), Ok(hup)) => ShutdownSignals(Some([term, int, hup])),
            _ => {
                tracing::warn!("cannot install signal handlers");
                ShutdownSignals(None)
            }
        }
    }
}

/// Cancels `token` on SIGTERM, SIGINT or SIGHUP (a closed terminal, for `make run`): a
/// graceful shutdown. A second such signal while it drains stops the process at once, exit
/// status 1, without waiting for in-flight requests (own sockets are left for the next start
/// to clean up, as after a crash).
async fn shutdown_on_signal(signals: ShutdownSignals, token: CancellationToken) {
    let Some([mut term, mut int, mut hup]) = signals.0 else {
        return;
    };
    let mut next = async || {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        }
    };
    let name = next().await;
    // Cancel before logging: stopping must never depend on the log line getting out.
    token.cancel();
    tracing::info!(signal = name, "shutdown requested");
    let again = next().await;
    tracing::warn!(
        signal = again,
        "second signal while draining: stopping now, without waiting for in-flight requests"
    );
    std::process::exit(1);
}
