//! The allow-list through real TCP (docs/access-and-security.md#allow-list): who is turned away, on
//! which paths, how the answer looks, IPv6 and mapped peers, `X-Forwarded-For` only from trusted
//! proxies, a file edited while the router runs, and `hero_router access`; and
//! (docs/access-and-security.md#access-file) that the list never opens by accident and the file is
//! never written through a symlink.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::{Daemon, exchange, json, serve_config, start_daemon, uds};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_hero_router");

/// Every kind of path the router serves over TCP: a denied client gets 403 on each.
const PATHS: [(&str, &str); 9] = [
    ("POST", "/rpc"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/api/services"),
    ("GET", "/docs/"),
    ("POST", "/mcp"),
    ("GET", "/"),
    ("GET", "/some_service/rpc/x"),
    ("GET", "/hero_router/rpc/x"),
];

async fn connect_from(source: &str, to: SocketAddr) -> TcpStream {
    let source: IpAddr = source.parse().unwrap();
    let socket = match source {
        IpAddr::V4(_) => TcpSocket::new_v4(),
        IpAddr::V6(_) => TcpSocket::new_v6(),
    }
    .unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> http::Request<Full<Bytes>> {
    let body = if method == "POST" {
        r#"{"jsonrpc":"2.0","id":1,"method":"router.health"}"#
    } else {
        ""
    };
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

/// One request from `source` to `to`: status, headers, body.
async fn from(
    source: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let stream = connect_from(source, to).await;
    let (status, h, body) = exchange(stream, req(method, path, headers)).await;
    (
        status.as_u16(),
        h,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

fn assert_forbidden(answer: &(u16, http::HeaderMap, String), address: &str, what: &str) {
    let (status, headers, body) = answer;
    assert_eq!(*status, 403, "{what}: {body}");
    assert_eq!(headers["x-hero-router-error"], "forbidden", "{what}");
    assert_eq!(headers["content-type"], "application/json", "{what}");
    let body = json(body);
    assert_eq!(body["error"], "forbidden", "{what}");
    assert_eq!(body["address"], address, "{what}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("hero_router access add"),
        "{what}: the message says how to get in: {body}"
    );
}

async fn daemon(root: &Path, extra: &[&str]) -> Daemon {
    start_daemon(serve_config(root, extra)).await
}

#[tokio::test]
async fn a_client_outside_the_list_is_refused_on_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), &["--allow", "127.0.0.2/32"]).await;
    for (method, path) in PATHS {
        let answer = from("127.0.0.1", d.tcp, method, path, &[]).await;
        assert_forbidden(&answer, "127.0.0.1", &format!("{method} {path}"));
    }
    // The allowed address gets its answers.
    let (status, _, body) = from("127.0.0.2", d.tcp, "GET", "/health", &[]).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = from("127.0.0.2", d.tcp, "POST", "/rpc", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["result"]["status"], "ok");
    // Unix-socket callers are always allowed.
    let (status, _, _) = uds(&d.admin, req("GET", "/health", &[])).await;
    assert_eq!(status, 200);
    let (status, _, _) = uds(&d.rpc, req("GET", "/health", &[])).await;
    assert_eq!(status, 200);
    d.stop().await;
}

#[tokio::test]
async fn a_network_allows_its_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), &["--allow", "127.0.0.0/8"]).await;
    for source in ["127.0.0.1", "127.0.0.2", "127.1.2.3"] {
        let (status, _, body) = from(source, d.tcp, "GET", "/health", &[]).await;
        assert_eq!(status, 200, "{source}: {body}");
    }
    d.stop().await;
}

#[tokio::test]
async fn a_denied_client_hears_403_first_even_for_a_broken_head_and_is_disconnected() {
    let dir = tempfile::tempdir().unwrap();
    let d = daemon(dir.path(), &["--allow", "127.0.0.2/32"]).await;
    for raw in [
        &b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"[..],
        b"BROKEN\r\n\r\n",
        b"POST /rpc HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
    ] {
        let mut s = connect_from("127.0.0.1", d.tcp).await;
        s.write_all(raw).await.unwrap();
        let mut answer = Vec::new();
        // The router closes after the answer: read to the end.
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer))
            .await
            .expect("the connection is closed after a 403")
            .unwrap();
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 403 "), "{text}");
        assert!(text.contains(r#""error":"forbidden""#), "{text}");
    }
    d.stop().await;
}

#[tokio::test]
async fn ipv6_loopback_is_judged_as_itself() {
    let dir = tempfile::tempdir().unwrap();
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        common::skip_unless_required("HERO_REQUIRE_IPV6", "this machine has no IPv6 loopback");
        return;
    };
    drop(probe);
    let d = daemon(dir.path(), &["--listen", "[::1]:0", "--allow", "::1"]).await;
    let v6 = d.tcp_all[1];
    let (status, _, body) = from("::1", v6, "GET", "/health", &[]).await;
    assert_eq!(status, 200, "{body}");
    let answer = from("127.0.0.1", d.tcp, "GET", "/health", &[]).await;
    assert_forbidden(&answer, "127.0.0.1", "IPv4 client, IPv6-only list");
    d.stop().await;

    // A second router on a root of its own (the first one's instance lock is not waited for).
    let d = daemon(
        &dir.path().join("b"),
        &["--listen", "[::1]:0", "--allow", "127.0.0.1"],
    )
    .await;
    let answer = from("::1", d.tcp_all[1], "GET", "/health", &[]).await;
    assert_forbidden(&answer, "::1", "IPv6 client, IPv4-only list");
    d.stop().await;
}

#[tokio::test]
async fn an_ipv4_mapped_peer_is_judged_as_ipv4() {
    let dir = tempfile::tempdir().unwrap();
    // A dual-stack listener: IPv4 clients arrive as ::ffff:a.b.c.d.
    let Ok(probe) = std::net::TcpListener::bind("[::]:0") else {
        common::skip_unless_required("HERO_REQUIRE_IPV6", "this machine cannot listen on [::]");
        return;
    };
    drop(probe);
    let d = daemon(
        dir.path(),
        &["--listen", "[::]:0", "--allow", "127.0.0.0/8"],
    )
    .await;
    let port = d.tcp_all[1].port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (status, _, body) = from("127.0.0.1", to, "GET", "/health", &[]).await;
    assert_eq!(status, 200, "a mapped 127.0.0.1 is in 127.0.0.0/8: {body}");
    d.stop().await;

    let d = daemon(
        &dir.path().join("b"),
        &["--listen", "[::]:0", "--allow", "127.0.0.2"],
    )
    .await;
    let port = d.tcp_all[1].port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let answer = from("127.0.0.1", to, "GET", "/health", &[]).await;
    assert_forbidden(&answer, "127.0.0.1", "mapped address named as IPv4");
    d.stop().await;
}

#[tokio::test]
async fn forwarded_for_counts_only_from_a_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let xff = [("x-forwarded-for", "192.0.2.5")];
    // Untrusted peer: a spoofed header changes nothing.
    let d = daemon(dir.path(), &["--allow", "192.0.2.0/24"]).await;
    let answer = from("127.0.0.1", d.tcp, "GET", "/health", &xff).await;
    assert_forbidden(&answer, "127.0.0.1", "spoofed X-Forwarded-For");
    d.stop().await;

    // A trusted proxy: the client it names is judged.
    let d = daemon(
        &dir.path().join("b"),
        &["--allow", "192.0.2.0/24", "--trusted-proxy", "127.0.0.1"],
    )
    .await;
    let (status, _, body) = from("127.0.0.1", d.tcp, "GET", "/health", &xff).await;
    assert_eq!(status, 200, "{body}");
    let other = [("x-forwarded-for", "192.0.2.5, 198.51.100.9")];
    let answer = from("127.0.0.1", d.tcp, "GET", "/health", &other).await;
    assert_forbidden(&answer, "198.51.100.9", "right-most untrusted entry");
    // Another peer is not the trusted proxy: its header is ignored.
    let answer = from("127.0.0.2", d.tcp, "GET", "/health", &xff).await;
    assert_forbidden(&answer, "127.0.0.2", "untrusted peer");
    d.stop().await;
}

fn access_cmd(file: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("access")
        .arg("--access-file")
        .arg(file)
        .args(args)
        .env("HOME", file.parent().unwrap())
        .output()
        .unwrap()
}

/// Polls until a request from `source` gets `want`, or the deadline passes.
async fn until_status(source: &str, to: SocketAddr, want: u16) -> u16 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _, _) = from(source, to, "GET", "/health", &[]).await;
        if status == want || tokio::time::Instant::now() > deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // poll interval, bounded by the deadline
    }
}

#[tokio::test]
async fn an_edited_file_is_picked_up_while_running() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg");
    let file = cfg.join("access.txt");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(&file, "# test\n127.0.0.2\n").unwrap();
    let root = dir.path().join("root");
    let file_arg = file.to_str().unwrap();
    let d = daemon(&root, &["--access-file", file_arg]).await;
    let answer = from("127.0.0.1", d.tcp, "GET", "/health", &[]).await;
    assert_forbidden(&answer, "127.0.0.1", "before the edit");

    let out = access_cmd(&file, &["add", "127.0.0.1"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(until_status("127.0.0.1", d.tcp, 200).await, 200);

    let out = access_cmd(&file, &["remove", "127.0.0.1/32"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(until_status("127.0.0.1", d.tcp, 403).await, 403);

    // A bad edit keeps the last good list in force.
    std::fs::write(&file, "127.0.0.1\nnot-an-address\n").unwrap();
    let out = access_cmd(&file, &["add", "127.0.0.3"]);
    assert_eq!(out.status.code(), Some(1), "a bad file is not edited");
    let (status, _, _) = from("127.0.0.2", d.tcp, "GET", "/health", &[]).await;
    assert_eq!(status, 200, "127.0.0.2 still allowed by the last good list");

    // Clearing the file opens the router to everyone (after the grace for an emptied file).
    std::fs::write(&file, "127.0.0.2\n").unwrap();
    let out = access_cmd(&file, &["clear", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(until_status("127.0.0.1", d.tcp, 200).await, 200);
    d.stop().await;
}

#[test]
fn access_edits_files_and_refuses_bad_entries_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hero/cfg/hero_router/access.txt");
    let out = access_cmd(&file, &["add", "10.0.0.0/33"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"10.0.0.0/33\" is not an IP address"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!file.exists(), "nothing written");

    for entry in ["10.0.0.0/8", "mycelium", "::1"] {
        let out = access_cmd(&file, &["add", entry]);
        assert!(out.status.success(), "{out:?}");
    }
    let out = access_cmd(&file, &["add", "10.9.9.9/8"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("already allowed"));
    let out = access_cmd(&file, &["list"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "10.0.0.0/8\nmycelium\n::1\n"
    );
    let out = access_cmd(&file, &["remove", "400::/7"]);
    assert!(out.status.success(), "{out:?}");
    let out = access_cmd(&file, &["remove", "192.0.2.1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = access_cmd(&file, &["remove", "bogus"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = access_cmd(&file, &["list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "10.0.0.0/8\n::1\n");
    let out = access_cmd(&file, &["clear", "--yes"]);
    assert!(out.status.success());
    let out = access_cmd(&file, &["list"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
}

#[test]
fn serve_refuses_a_bad_access_file_and_a_missing_mycelium_address() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.txt");
    std::fs::write(&file, "127.0.0.1\n300.1.1.1\n").unwrap();
    let out = common::serve_command(&dir.path().join("root"))
        .arg("--access-file")
        .arg(&file)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("300.1.1.1"), "{err}");

    let out = Command::new(BIN)
        .args(["serve", "--listen", "mycelium:9988", "--socket-dir"])
        .arg(dir.path().join("root"))
        .env("HOME", dir.path())
        .env_remove("HERO_MYCELIUM_IP")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HERO_MYCELIUM_IP"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test]
async fn listen_mycelium_binds_the_node_address() {
    // The loopback stands in for the node's mycelium address, from either source.
    let dir = tempfile::tempdir().unwrap();
    let cfg_dir = dir.path().join("hero/cfg");
    std::fs::create_dir_all(&cfg_dir).unwrap();
    std::fs::write(
        cfg_dir.join("hero_cfg.toml"),
        "[mycelium]\nipv6_address = \"127.0.0.1\"\n",
    )
    .unwrap();
    let home = dir.path().to_str().unwrap().to_owned();
    let args = |listen: &str| {
        use clap::Parser;
        let cli =
            hero_router::cli::Cli::try_parse_from(["hero_router", "serve", "--listen", listen])
                .unwrap();
        let hero_router::cli::Command::Serve(s) = cli.command else {
            unreachable!()
        };
        s
    };
    let env: std::collections::HashMap<String, String> = [("HOME".to_owned(), home.clone())].into();
    let cfg =
        hero_router::Config::resolve(Some(dir.path().join("root")), &args("mycelium:0"), &env)
            .unwrap();
    assert_eq!(cfg.listen, vec!["127.0.0.1:0".parse().unwrap()]);
    let d = start_daemon(cfg).await;
    let (status, _, _) = from("127.0.0.1", d.tcp, "GET", "/health", &[]).await;
    assert_eq!(status, 200);
    d.stop().await;

    // $HERO_MYCELIUM_IP wins over the file.
    let env: std::collections::HashMap<String, String> = [
        ("HOME".to_owned(), home),
        ("HERO_MYCELIUM_IP".to_owned(), "::1".to_owned()),
    ]
    .into();
    let cfg =
        hero_router::Config::resolve(Some(dir.path().join("root")), &args("mycelium:9988"), &env)
            .unwrap();
    assert_eq!(cfg.listen, vec!["[::1]:9988".parse().unwrap()]);
    // A bad value is named.
    let env: std::collections::HashMap<String, String> =
        [("HERO_MYCELIUM_IP".to_owned(), "nope".to_owned())].into();
    let e = hero_router::Config::resolve(Some(dir.path().into()), &args("mycelium:1"), &env)
        .unwrap_err();
    assert!(e.to_string().contains("\"nope\""), "{e}");
}

#[test]
fn removing_the_last_entry_or_clearing_needs_yes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.txt");
    std::fs::write(&file, "# peers\n10.0.0.1\n10.0.0.2\n").unwrap();
    let refused = |out: &std::process::Output, what: &str| {
        assert_eq!(out.status.code(), Some(2), "{what}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("allow every client") && err.contains("--yes"),
            "{what}: the warning says what would happen and how to confirm: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{what}: one line: {err}");
        assert!(out.stdout.is_empty(), "{what}");
    };

    let out = access_cmd(&file, &["clear"]);
    refused(&out, "clear of a non-empty list");
    let out = access_cmd(&file, &["remove", "10.0.0.1"]);
    assert!(out.status.success(), "not the last entry: {out:?}");
    let out = access_cmd(&file, &["remove", "10.0.0.2"]);
    refused(&out, "remove of the last entry");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# peers\n10.0.0.2\n",
        "nothing written"
    );

    let out = access_cmd(&file, &["remove", "10.0.0.2", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed 10.0.0.2"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# peers\n");

    std::fs::write(&file, "10.0.0.3\n").unwrap();
    let out = access_cmd(&file, &["clear", "--yes"]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("removed 1 entry from") && said.contains("every client is allowed"),
        "{said}"
    );
    // An empty list has nothing to lose: no confirmation needed.
    let out = access_cmd(&file, &["clear"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn access_add_never_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "# not yours\n").unwrap();
    let cfg = dir.path().join("cfg");
    std::fs::create_dir(&cfg).unwrap();
    let file = cfg.join("access.txt");
    // At the file's own name, and at names a temporary file might have.
    std::os::unix::fs::symlink(&victim, &file).unwrap();
    for name in [".access.txt.tmp", "access.txt.tmp", ".access.txt.1.tmp"] {
        std::os::unix::fs::symlink(&victim, cfg.join(name)).unwrap();
    }
    let out = access_cmd(&file, &["add", "10.0.0.1"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "# not yours\n");
    assert!(
        std::fs::symlink_metadata(&file).unwrap().is_file(),
        "the link is replaced by the file"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# not yours\n10.0.0.1\n"
    );

    // At the lock's name (the first edit left a lock file there): the edit fails (exit 1),
    // and nothing is made through the link.
    let lock = cfg.join(".access.txt.lock");
    std::fs::remove_file(&lock).unwrap();
    let made = outside.path().join("made-by-the-lock");
    std::os::unix::fs::symlink(&made, &lock).unwrap();
    let out = access_cmd(&file, &["add", "10.0.0.2"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(".access.txt.lock is a symbolic link") && err.contains("remove the link"),
        "{err}"
    );
    assert!(!made.exists(), "nothing created outside");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "# not yours\n10.0.0.1\n"
    );
}

/// A router on `file` whose watcher is known to be running: an edit made after start-up has been
/// seen (127.0.0.3 let in).
async fn watched(root: &Path, file: &Path) -> Daemon {
    std::fs::write(file, "127.0.0.2\n").unwrap();
    let d = daemon(root, &["--access-file", file.to_str().unwrap()]).await;
    std::fs::write(file, "127.0.0.2\n127.0.0.3\n").unwrap();
    assert_eq!(until_status("127.0.0.3", d.tcp, 200).await, 200);
    d
}

#[tokio::test]
async fn an_editors_truncate_then_write_never_opens_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.txt");
    let d = watched(&dir.path().join("root"), &file).await;

    // As an editor saves: open with O_TRUNC (the file is empty now), then write; no pause.
    let path = file.clone();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        for _ in 0..1000 {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            f.write_all(b"127.0.0.2\n127.0.0.3\n").unwrap();
        }
    });
    // 127.0.0.1 is in neither list: only an open list would let it in.
    let mut probes = 0;
    loop {
        let done = writer.is_finished();
        let (status, _, body) = from("127.0.0.1", d.tcp, "GET", "/health", &[]).await;
        probes += 1;
        assert_eq!(status, 403, "probe {probes} was let in: {body}");
        if done {
            break;
        }
    }
    writer.join().unwrap();
    let (status, _, _) = from("127.0.0.3", d.tcp, "GET", "/health", &[]).await;
    assert_eq!(status, 200, "the file's entries are in force");
    eprintln!("{probes} probes while the file was rewritten");
    d.stop().await;
}

#[tokio::test]
async fn a_file_gone_for_the_grace_period_opens_the_router() {
    let grace = hero_router::test_hooks::EMPTY_GRACE;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.txt");
    let d = watched(&dir.path().join("root"), &file).await;

    let gone_at = tokio::time::Instant::now();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(until_status("127.0.0.1", d.tcp, 200).await, 200);
    let after = gone_at.elapsed();
    assert!(after >= grace, "opened {after:?} after the file went");
    d.stop().await;
}

/// An allow-list change reaches connections already open: a client it now denies loses its
/// live feed (a stream that would otherwise run for as long as its connection lives), while
/// a client it still allows keeps its own.
#[tokio::test]
async fn a_revoked_client_loses_its_open_streams() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.txt");
    std::fs::write(&file, "127.0.0.1\n127.0.0.2\n").unwrap();
    let root = dir.path().join("root");
    let d = daemon(&root, &["--access-file", file.to_str().unwrap()]).await;
    let admin = d.admin_tcp.expect("the admin listener is on");
    let open_feed = |source: &'static str| async move {
        let mut s = connect_from(source, admin).await;
        s.write_all(
            format!(
                "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
                admin.port()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        // The head and the first frame: the stream is open.
        let mut got = Vec::new();
        let mut b = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("event: snapshot") {
            let n = s.read(&mut b).await.unwrap();
            assert!(
                n > 0,
                "{source}: the feed ended at once: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&b[..n]);
        }
        assert!(
            got.starts_with(b"HTTP/1.1 200 "),
            "{}",
            String::from_utf8_lossy(&got)
        );
        s
    };
    let mut revoked = open_feed("127.0.0.1").await;
    let kept = open_feed("127.0.0.2").await;
    // A file written in pieces (here, its first line, then the rest 100 ms later) is judged
    // as it ends: the first piece alone would deny 127.0.0.2.
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&file).unwrap();
        f.write_all(b"127.0.0.1\n").unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await; // the writer's pause: the clock is the point
        f.write_all(b"127.0.0.2\n").unwrap();
    }
    // Past the settling time (1 s): nothing was cut.
    tokio::time::sleep(Duration::from_secs(2)).await; // the clock is the point: a cut would have come by now
    let mut b = [0u8; 1];
    assert!(
        !matches!(kept.try_read(&mut b), Ok(0)),
        "a half-written file cut 127.0.0.2"
    );
    let out = access_cmd(&file, &["remove", "127.0.0.1/32"]);
    assert!(out.status.success(), "{out:?}");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), revoked.read_to_end(&mut rest))
        .await
        .expect("the denied client's stream went on")
        .ok();
    // The allowed client's feed is still open: it has not ended (a read finds nothing yet,
    // or a frame), and a request of its own is answered.
    let mut b = [0u8; 1];
    assert!(
        !matches!(kept.try_read(&mut b), Ok(0)),
        "the allowed client's stream ended"
    );
    let (status, _, _) = from("127.0.0.2", d.tcp, "GET", "/health", &[]).await;
    assert_eq!(status, 200);
    d.stop().await;
}

/// `access` edits the file it is given and needs nothing else: no socket root, no HOME (a
/// supervisor's unit may have neither).
#[test]
fn access_needs_no_root_and_no_home() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.txt");
    let out = Command::new(BIN)
        .args(["access", "--access-file"])
        .arg(&file)
        .args(["add", "10.0.0.1"])
        .env_remove("HOME")
        .env_remove("HERO_SOCKET_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "10.0.0.1\n");
}

/// An edit that finds the lock held by another says so on stderr while it waits, then edits
/// once the lock is free (it waited silently, like a hang).
#[test]
fn access_add_says_what_it_waits_for() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.txt");
    std::fs::write(&file, "10.0.0.1\n").unwrap();
    let lock = std::fs::File::create(dir.path().join(".access.txt.lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    let mut child = Command::new(BIN)
        .arg("access")
        .arg("--access-file")
        .arg(&file)
        .args(["add", "10.0.0.2"])
        .env("HOME", dir.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let rx = common::stderr_lines(&mut child);
    let first = rx.recv_timeout(Duration::from_secs(20));
    let first = first.expect("no line on stderr while the lock is held");
    assert!(
        first.contains(".access.txt.lock") && first.contains("another edit of"),
        "{first}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "10.0.0.1\n");
    drop(lock);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "10.0.0.1\n10.0.0.2\n"
    );
}
