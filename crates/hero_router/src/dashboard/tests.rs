//! Unit tests of the dashboard: the feed's order, lag, resume and heartbeat with a small hub
//! over a registry fed by hand, and the page and detail rendering.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::hub::{Hub, HubConfig};
use crate::registry::events::Event;
use crate::registry::{self, TableWriter};
use crate::shared::Shared;

const DEADLINE: Duration = Duration::from_secs(30);

/// The shared context over a registry that nothing scans: events are sent by hand.
fn shared() -> (Arc<Shared>, TableWriter) {
    let (registry, writer) = registry::channel(PathBuf::from("/run/hero/sockets"));
    (Arc::new(Shared::for_tests(registry)), writer)
}

/// A hub of `buffer` frames over [`shared`].
fn hub(buffer: usize) -> (Hub, TableWriter) {
    let (shared, writer) = shared();
    let config = HubConfig {
        buffer,
        heartbeat: Duration::from_secs(15),
    };
    let token = tokio_util::sync::CancellationToken::new();
    (Hub::start_with(shared, config, token), writer)
}

fn socket_event(i: usize) -> Event {
    Event::SocketChanged {
        service: "svc".into(),
        socket: format!("/run/hero/sockets/svc/s{i}.sock"),
        from: "absent",
        to: "refused",
    }
}

/// One parsed frame: id, event name, data. `None` for frames without data (retry, pings).
fn parse(frame: &Bytes) -> Option<(String, String, Value)> {
    let text = std::str::from_utf8(frame).expect("frames are UTF-8");
    assert!(
        text.ends_with("\n\n"),
        "a frame ends with a blank line: {text:?}"
    );
    let (mut id, mut event, mut data) = (None, None, None);
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            assert!(data.is_none(), "one data line per frame: {text:?}");
            data = Some(serde_json::from_str(v).expect("data is JSON"));
        }
    }
    Some((id?, event?, data?))
}

/// A frame's sequence number and event name, without parsing its data.
fn head(frame: &Bytes) -> Option<(u64, String)> {
    let text = std::str::from_utf8(frame).ok()?;
    let mut lines = text.lines();
    let id = seq(lines.next()?.strip_prefix("id: ")?);
    let event = lines.next()?.strip_prefix("event: ")?.to_owned();
    Some((id, event))
}

fn seq(id: &str) -> u64 {
    id.split_once('-').unwrap().1.parse().unwrap()
}

/// The next frame that carries data.
async fn next(feed: &mut super::hub::Feed) -> (String, String, Value) {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let frame = feed.next().await.expect("the feed ended");
            if let Some(parsed) = parse(&frame) {
                return parsed;
            }
        }
    })
    .await
    .expect("no frame before the deadline")
}

/// Waits until the hub has turned `n` frames out: a page of its own gets frame `n`, as a frame
/// or inside a snapshot.
async fn caught_up(hub: &Hub, n: u64) {
    let mut feed = hub.feed(None);
    tokio::time::timeout(DEADLINE, async {
        loop {
            let frame = feed.next().await.expect("the feed ended");
            if head(&frame).is_some_and(|(id, _)| id >= n) {
                return;
            }
        }
    })
    .await
    .expect("the hub did not catch up");
}

#[tokio::test]
async fn snapshot_first_then_every_event_in_order() {
    let (hub, writer) = hub(64);
    let mut feed = hub.feed(None);
    let (id, event, data) = next(&mut feed).await;
    assert_eq!(event, "snapshot");
    assert_eq!(seq(&id), 0);
    assert!(
        data["services"].is_array() && data["health"].is_object(),
        "{data}"
    );
    for i in 0..10 {
        writer.events.emit(socket_event(i));
    }
    for i in 0..10 {
        let (id, event, data) = next(&mut feed).await;
        assert_eq!((event.as_str(), seq(&id)), ("socket", i as u64 + 1));
        assert_eq!(data["socket"], format!("/run/hero/sockets/svc/s{i}.sock"));
        assert_eq!(
            (&data["kind"], &data["to"]),
            (&json!(format!("s{i}")), &json!("refused"))
        );
    }
}

#[tokio::test]
async fn a_feed_that_falls_behind_gets_a_fresh_snapshot_not_a_gap() {
    let (hub, writer) = hub(8);
    let mut feed = hub.feed(None);
    assert_eq!(next(&mut feed).await.1, "snapshot");
    // Control: within the buffer nothing is lost.
    for i in 0..8 {
        writer.events.emit(socket_event(i));
    }
    caught_up(&hub, 8).await;
    for want in 1..=8 {
        let (id, event, _) = next(&mut feed).await;
        assert_eq!((event.as_str(), seq(&id)), ("socket", want));
    }
    // Past the buffer: a snapshot that covers everything up to the newest frame.
    for i in 8..40 {
        writer.events.emit(socket_event(i));
    }
    caught_up(&hub, 40).await;
    let (id, event, data) = next(&mut feed).await;
    assert_eq!((event.as_str(), seq(&id)), ("snapshot", 40));
    let recent = data["recent"].as_array().unwrap();
    assert_eq!(recent.last().unwrap()["id"], 40, "{data}");
    writer.events.emit(socket_event(40));
    let (id, event, _) = next(&mut feed).await;
    assert_eq!((event.as_str(), seq(&id)), ("socket", 41));
}

#[tokio::test]
async fn when_the_hub_itself_lags_every_feed_gets_a_snapshot() {
    let (hub, writer) = hub(64);
    let mut feed = hub.feed(None);
    assert_eq!(next(&mut feed).await.1, "snapshot");
    // The hub's task cannot run while this (single-threaded) test sends: the registry's
    // broadcast overflows under it.
    let n = registry::events::EVENT_CAPACITY + 100;
    for i in 0..n {
        writer.events.emit(socket_event(i));
    }
    let mut kinds = Vec::new();
    let mut last = 0;
    loop {
        let (id, event, _) = next(&mut feed).await;
        assert!(seq(&id) > last || event == "snapshot", "ids go forward");
        last = seq(&id);
        let done = event == "socket" && last == hub.last_id();
        kinds.push(event);
        if done || kinds.len() > n {
            break;
        }
    }
    assert!(
        kinds.iter().any(|k| k == "snapshot"),
        "the lost events are covered by a snapshot"
    );
    assert!(!kinds.iter().any(|k| k == "resync"), "resync is never sent");
}

#[tokio::test]
async fn last_event_id_resumes_within_the_buffer_and_snapshots_otherwise() {
    let (hub, writer) = hub(8);
    for i in 0..5 {
        writer.events.emit(socket_event(i));
    }
    caught_up(&hub, 5).await;
    let mut feed = hub.feed(None);
    let (snapshot_id, event, _) = next(&mut feed).await;
    assert_eq!((event.as_str(), seq(&snapshot_id)), ("snapshot", 5));
    let instance = snapshot_id.split_once('-').unwrap().0.to_owned();

    let mut resumed = hub.feed(Some(&format!("{instance}-3")));
    for want in [4, 5] {
        let (id, event, data) = next(&mut resumed).await;
        assert_eq!((event.as_str(), seq(&id)), ("socket", want));
        assert_eq!(data["kind"], format!("s{}", want - 1));
    }
    // Up to date: nothing to replay, and the next event comes next.
    let mut current = hub.feed(Some(&snapshot_id));
    writer.events.emit(socket_event(5));
    let (id, event, _) = next(&mut current).await;
    assert_eq!((event.as_str(), seq(&id)), ("socket", 6));

    // Another instance's id, an id from the future, garbage: a snapshot.
    let other = format!("{:08x}-3", u32::from_str_radix(&instance, 16).unwrap() ^ 1);
    for id in [other.as_str(), &format!("{instance}-99"), "garbage", ""] {
        let mut f = hub.feed(Some(id));
        assert_eq!(next(&mut f).await.1, "snapshot", "Last-Event-ID {id:?}");
    }
    // Trimmed from the buffer: a snapshot.
    for i in 6..20 {
        writer.events.emit(socket_event(i));
    }
    caught_up(&hub, 20).await;
    let mut old = hub.feed(Some(&format!("{instance}-3")));
    assert_eq!(next(&mut old).await.1, "snapshot");
}

#[tokio::test(start_paused = true)]
async fn an_idle_feed_gets_a_comment_every_heartbeat() {
    let (hub, _writer) = hub(8);
    let mut feed = hub.feed(None);
    assert_eq!(next(&mut feed).await.1, "snapshot");
    let start = tokio::time::Instant::now();
    let frame = feed.next().await.unwrap();
    assert_eq!(&frame[..], b": ping\n\n");
    assert_eq!(start.elapsed(), Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_feeds_and_ten_thousand_events_none_silently_stale() {
    const FEEDS: usize = 500;
    const EVENTS: usize = 10_000;
    // Pages that read nothing while the events go by: ten thousand frames overrun a ring of
    // DEFAULT_BUFFER, so these fall behind for certain, whatever the readers' scheduling.
    const PARKED: usize = 8;
    const _: () = assert!(EVENTS > super::hub::DEFAULT_BUFFER);
    let (hub, writer) = hub(super::hub::DEFAULT_BUFFER);
    let mut parked = Vec::new();
    for _ in 0..PARKED {
        let mut feed = hub.feed(None);
        let (id, event, _) = next(&mut feed).await;
        assert_eq!((event.as_str(), seq(&id)), ("snapshot", 0));
        parked.push(feed);
    }
    let (target_tx, target_rx) = tokio::sync::watch::channel(u64::MAX);
    let mut readers = Vec::new();
    for _ in 0..FEEDS {
        let mut feed = hub.feed(None);
        let mut target = target_rx.clone();
        readers.push(tokio::spawn(async move {
            let (mut last, mut snapshots, mut frames) = (None::<u64>, 0u32, 0u32);
            loop {
                if last.is_some_and(|l| l >= *target.borrow()) {
                    return (snapshots, frames);
                }
                tokio::select! {
                    frame = feed.next() => {
                        let Some((id, event)) = head(&frame.unwrap()) else { continue };
                        if event == "snapshot" {
                            snapshots += 1;
                            assert!(last.is_none_or(|l| id >= l), "a snapshot never goes back");
                        } else {
                            // Anything but the very next frame would be a silent gap.
                            assert_eq!(Some(id), last.map(|l| l + 1), "gap before {event} {id}");
                            frames += 1;
                        }
                        last = Some(id);
                    }
                    _ = target.changed() => {}
                }
            }
        }));
    }
    // In bursts of 256, each turned into frames before the next: the hub keeps up with the
    // registry, the feeds fall behind the hub as they may.
    for i in 0..EVENTS {
        writer.events.emit(socket_event(i));
        if i % 256 == 255 {
            caught_up(&hub, i as u64 + 1).await;
        }
    }
    caught_up(&hub, EVENTS as u64).await;
    let target = hub.last_id();
    assert_eq!(target, EVENTS as u64, "one frame per event");
    target_tx.send(target).unwrap();
    let (mut snapshots, mut frames) = (0, 0);
    for r in readers {
        // Each reader checked every frame as it came (no gap, no snapshot going back) and
        // returned only once it had frame `target`, as a frame or inside a snapshot.
        let (s, f) = tokio::time::timeout(DEADLINE, r).await.unwrap().unwrap();
        snapshots += s;
        frames += f;
    }
    println!(
        "{FEEDS} feeds: {frames} frames and {snapshots} snapshots delivered, up to frame {target}"
    );
    // A parked page lost frames from the ring: it gets exactly one fresh snapshot, covering
    // every event so far, and then the next event as a frame. Not the frames still in the ring
    // (a silent gap), not a second snapshot, nothing stale.
    let mut got = vec![Vec::new(); PARKED];
    for (feed, got) in parked.iter_mut().zip(&mut got) {
        let (id, event, _) = next(feed).await;
        got.push((event, seq(&id)));
    }
    writer.events.emit(socket_event(EVENTS));
    for (feed, got) in parked.iter_mut().zip(&mut got) {
        let (id, event, _) = next(feed).await;
        got.push((event, seq(&id)));
    }
    let want = vec![
        ("snapshot".to_owned(), target),
        ("socket".to_owned(), target + 1),
    ];
    assert_eq!(got, vec![want; PARKED], "what the parked feeds got");
}

#[test]
fn the_page_escapes_what_services_say_and_inlines_its_assets() {
    let services = json!([{
        "name": "calc", "status": "healthy", "title": "<script>alert(1)</script>",
        "version": "1\"2", "methods_count": 3,
        "sockets": [{"kind": "rpc", "state": "live", "since_unix_ms": 0}],
    }, {
        "name": "down", "status": "unhealthy", "title": null, "version": null,
        "methods_count": null, "sockets": [],
    }]);
    let context = json!({
        "services": services,
        "counts": {"healthy": 1, "degraded": 0, "unhealthy": 1, "non_rpc": 0},
        "health": {"status": "ok", "ready": true},
        "root": "/run/hero/sockets",
        "version": "0.1.0",
    });
    let html = super::environment()
        .get_template("page.html")
        .unwrap()
        .render(minijinja::Value::from(minijinja::value::Serde(context)))
        .unwrap();
    assert!(!html.contains("<script>alert(1)"), "title escaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"));
    assert!(html.contains(r#"<tr data-name="calc" data-status="healthy">"#));
    assert!(html.contains(r##"href="#service=down""##));
    assert!(
        html.contains("Thu, 01 Jan 1970 00:00:00 GMT"),
        "since, readable"
    );
    assert!(
        html.contains("new EventSource('/api/events')"),
        "the script is inline"
    );
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!html.contains(external), "no external asset: {external}");
    }
}

#[test]
fn methods_list_their_params_with_refs_expanded_and_example_params() {
    let doc = json!({
        "openrpc": "1.3.2",
        "info": {"title": "t", "version": "1"},
        "methods": [
            {"name": "add", "summary": "Adds", "params": [
                {"name": "a", "required": true, "schema": {"$ref": "#/components/schemas/N"}},
                {"name": "b", "schema": {"type": "integer"}}],
             "result": {"name": "sum", "schema": {"type": "integer"}},
             "examples": [{"name": "e", "params": [{"name": "a", "value": 2}, {"name": "b", "value": 3}],
                           "result": {"name": "r", "value": 5}}]},
            {"name": "named", "paramStructure": "by-name", "params": [
                {"name": "ms", "schema": {"type": "integer"}}], "result": {"name": "r", "schema": {}}},
            {"summary": "no name: skipped"},
        ],
        "components": {"schemas": {"N": {"type": "number"}}},
    });
    let methods = super::detail::methods(&crate::docs::deref::dereference(&doc));
    assert_eq!(methods.len(), 2);
    assert_eq!(methods[0]["name"], "add");
    // A named type keeps its name, as the docs show it.
    assert_eq!(methods[0]["params"][0]["type"], "N");
    assert_eq!(methods[0]["params"][1]["type"], "integer");
    assert_eq!(methods[0]["params"][0]["required"], true);
    assert_eq!(methods[0]["params"][1]["required"], false);
    assert_eq!(methods[0]["example_params"], json!([2, 3]));
    assert!(methods[1]["example_params"].is_object(), "{}", methods[1]);
    assert!(methods[1]["example_params"]["ms"].is_number());
}

#[tokio::test]
async fn pages_that_connect_together_share_one_snapshot_until_a_frame_comes() {
    let (hub, writer) = hub(8);
    let first = |mut feed: super::hub::Feed| async move {
        loop {
            let frame = feed.next().await.unwrap();
            if frame.starts_with(b"id: ") {
                return frame;
            }
        }
    };
    let a = first(hub.feed(None)).await;
    let b = first(hub.feed(None)).await;
    assert_eq!(a.as_ptr(), b.as_ptr(), "the same bytes, built once");
    writer.events.emit(socket_event(0));
    caught_up(&hub, 1).await;
    let c = first(hub.feed(None)).await;
    assert_eq!(parse(&c).unwrap().0.split_once('-').unwrap().1, "1");
    assert!(
        std::str::from_utf8(&c).unwrap().contains("s0.sock"),
        "the new frame is in it"
    );
}

/// The hub's pump holds the registry (through the shared context), so the registry's
/// channels alone never end it: the router's shutdown token does.
#[tokio::test]
async fn the_pump_stops_at_shutdown() {
    let (shared, _writer) = shared();
    let token = tokio_util::sync::CancellationToken::new();
    let config = HubConfig {
        buffer: 4,
        heartbeat: Duration::from_secs(15),
    };
    drop(Hub::start_with(shared.clone(), config, token.clone()));
    tokio::task::yield_now().await;
    assert!(Arc::strong_count(&shared) > 1, "the pump holds the context");
    token.cancel();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while Arc::strong_count(&shared) > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the pump still runs after shutdown"
        );
        tokio::task::yield_now().await;
    }
}

#[test]
fn a_refusal_streak_alone_is_no_change_on_the_page() {
    use crate::registry::state::SocketState;
    use crate::registry::table::{Service, ServiceStatus, Socket};
    let socket = |state, streak| Socket {
        kind: "rpc".into(),
        path: Arc::from(std::path::Path::new("/run/hero/sockets/svc/rpc.sock")),
        state,
        since_unix_ms: 1,
        detail: "ECONNREFUSED".into(),
        refused_streak: streak,
        reap_skipped: None,
        identity: None,
    };
    let service = |sockets| Service {
        name: "svc".into(),
        status: ServiceStatus::Unhealthy,
        sockets,
        error: None,
    };
    let same = super::hub::same_on_the_page;
    let base = service(vec![socket(SocketState::Refused, 1)]);
    assert!(same(&base, &service(vec![socket(SocketState::Refused, 7)])));
    assert!(!same(&base, &service(vec![socket(SocketState::Live, 1)])));
    let mut moved = socket(SocketState::Refused, 1);
    moved.since_unix_ms = 2;
    assert!(!same(&base, &service(vec![moved])));
    let mut why = socket(SocketState::Refused, 1);
    why.detail = "ENOENT".into();
    assert!(!same(&base, &service(vec![why])));
    let two = vec![
        socket(SocketState::Refused, 1),
        socket(SocketState::Refused, 1),
    ];
    assert!(!same(&base, &service(two)));
    let mut broken = service(vec![socket(SocketState::Refused, 1)]);
    broken.error = Some("EACCES".into());
    assert!(!same(&base, &broken));
    let mut up = service(vec![socket(SocketState::Refused, 1)]);
    up.status = ServiceStatus::Healthy;
    assert!(!same(&base, &up));
}

/// The log is bounded by bytes as well as frames: a burst of frames (a large root's first scan,
/// a catalog filling in) is not kept whole; a page that far behind gets a snapshot.
#[tokio::test]
async fn the_log_keeps_at_most_its_bytes() {
    let (hub, writer) = hub(1 << 16);
    let n = 4000;
    for i in 0..n {
        writer.events.emit(socket_event(i));
    }
    caught_up(&hub, n as u64).await;
    let kept = hub.log_bytes();
    assert!(kept <= super::hub::LOG_BYTES, "{kept} bytes kept");
    assert!(kept > super::hub::LOG_BYTES / 2, "{kept} bytes kept");
    let mut feed = hub.feed(None);
    let (snapshot_id, _, _) = next(&mut feed).await;
    let instance = snapshot_id.split_once('-').unwrap().0.to_owned();
    // Far behind (trimmed by bytes though within the frame count): a snapshot.
    let mut old = hub.feed(Some(&format!("{instance}-1")));
    assert_eq!(next(&mut old).await.1, "snapshot");
    // Just behind: exactly the frames missed.
    let mut recent = hub.feed(Some(&format!("{instance}-{}", n - 2)));
    for want in [n - 1, n] {
        let (id, event, _) = next(&mut recent).await;
        assert_eq!((event.as_str(), seq(&id)), ("socket", want as u64));
    }
}

/// The dashboard's paths, as the one routing decision asks for them: each endpoint with its
/// methods, a service name percent-decoded, and nothing else.
#[test]
fn pages_are_found_by_path() {
    use super::Page;
    let read = "GET, HEAD";
    assert_eq!(Page::at("/"), Some((Page::Home, read)));
    assert_eq!(Page::at("/api/events"), Some((Page::Events, read)));
    assert_eq!(Page::at("/api/scan"), Some((Page::Scan, "POST")));
    assert_eq!(
        Page::at("/api/dashboard/service/calc"),
        Some((Page::Service("calc".into()), read))
    );
    assert_eq!(
        Page::at("/api/dashboard/service/c%61lc"),
        Some((Page::Service("calc".into()), read))
    );
    // Not a service name: looked up as it is, and not found.
    assert_eq!(
        Page::at("/api/dashboard/service/.."),
        Some((Page::Service("..".into()), read))
    );
    for path in [
        "/api",
        "/api/",
        "/api/nosuch",
        "/api/events/",
        "/api/dashboard/service/",
        "/api/dashboard/service/a/b",
        "/index.html",
    ] {
        assert_eq!(Page::at(path), None, "{path}");
    }
    assert!(Page::allows(read, "GET") && Page::allows(read, "HEAD"));
    assert!(!Page::allows(read, "POST") && !Page::allows("POST", "GET"));
    assert!(Page::allows("POST", "POST"));
}

/// A `service` frame written straight from its struct is, byte for byte, the JSON the page
/// was built against (the tree the hub used to build first).
#[test]
fn a_service_frame_is_the_json_it_was_as_a_tree() {
    use super::hub::ServiceFrame;
    use crate::registry::catalog::Catalog;
    use crate::registry::state::SocketState;
    use crate::registry::table::{Service, ServiceStatus, Socket};
    let service = Service {
        name: "svc".into(),
        status: ServiceStatus::Healthy,
        sockets: vec![Socket {
            kind: "rpc".into(),
            path: Arc::from(std::path::Path::new("/r/svc/rpc.sock")),
            state: SocketState::Live,
            since_unix_ms: 1,
            detail: "connect ok".into(),
            refused_streak: 0,
            reap_skipped: None,
            identity: None,
        }],
        error: Some("a \"quoted\" <error>".into()),
    };
    let catalog = Catalog::default();
    let frame = ServiceFrame {
        view: Some(catalog.view(&service)),
        ..ServiceFrame::bare(&service.name, 7)
    };
    let tree = json!({"service": "svc", "name": "svc",
        "view": serde_json::to_value(catalog.view(&service)).unwrap(), "at_unix_ms": 7});
    assert_eq!(serde_json::to_string(&frame).unwrap(), tree.to_string());
    let gone = ServiceFrame {
        removed: Some(true),
        ..ServiceFrame::bare("svc", 7)
    };
    let tree = json!({"service": "svc", "name": "svc", "view": null, "removed": true,
        "at_unix_ms": 7});
    assert_eq!(serde_json::to_string(&gone).unwrap(), tree.to_string());
}

/// Every registry event's frame, written straight from its struct, is byte for byte the JSON
/// tree the hub used to build for it (the shape the page reads), for every variant.
#[test]
fn every_event_frame_is_the_json_it_was_as_a_tree() {
    use super::hub::{Kind, event_frame};
    use crate::registry::catalog::Catalog;
    use crate::registry::events::Stamped;
    use crate::registry::state::{SkipReason, SocketState};
    use crate::registry::table::{Service, ServiceStatus, Table};
    let service = Service {
        name: "svc".into(),
        status: ServiceStatus::Healthy,
        sockets: vec![],
        error: None,
    };
    let table = Table {
        services: vec![Arc::new(service.clone())],
        ..Table::default()
    };
    let catalog = Catalog::default();
    let view = serde_json::to_value(catalog.view(&service)).unwrap();
    let at = 42;
    let cases: Vec<(Event, Kind, Value, bool)> = vec![
        (
            Event::SocketChanged {
                service: "svc".into(),
                socket: "/r/svc/web_ui.sock".into(),
                from: "absent",
                to: SocketState::Live.as_str(),
            },
            Kind::Socket,
            json!({"service": "svc", "socket": "/r/svc/web_ui.sock", "kind": "web_ui",
                "from": "absent", "to": "live", "at_unix_ms": at}),
            true,
        ),
        (
            Event::Reaped {
                service: "svc".into(),
                socket: "/r/svc/rpc.sock".into(),
                reason: "stale",
            },
            Kind::Reap,
            json!({"service": "svc", "socket": "/r/svc/rpc.sock", "reason": "stale",
                "skipped": false, "at_unix_ms": at}),
            true,
        ),
        (
            Event::ReapSkipped {
                service: "svc".into(),
                socket: "/r/svc/rpc.sock".into(),
                reason: SkipReason::OwnerLocked,
                detail: "pid \"7\" <b>".into(),
            },
            Kind::Reap,
            json!({"service": "svc", "socket": "/r/svc/rpc.sock",
                "reason": "owner_locked", "detail": "pid \"7\" <b>", "skipped": true,
                "at_unix_ms": at}),
            true,
        ),
        (
            Event::CatalogChanged {
                service: "svc".into(),
                fingerprint: Some("sha256:ab".into()),
                state: "invalid",
                reason: Some("bad".into()),
            },
            Kind::Service,
            json!({"service": "svc", "name": "svc", "view": view,
                "catalog": {"state": "invalid", "fingerprint": "sha256:ab", "reason": "bad"},
                "at_unix_ms": at}),
            true,
        ),
        (
            // A service the table no longer has: no view.
            Event::CatalogChanged {
                service: "gone".into(),
                fingerprint: None,
                state: "absent",
                reason: None,
            },
            Kind::Service,
            json!({"service": "gone", "name": "gone", "view": null,
                "catalog": {"state": "absent", "fingerprint": null, "reason": null},
                "at_unix_ms": at}),
            true,
        ),
        (
            Event::ServiceDropped {
                service: "svc".into(),
                empty_for: std::time::Duration::from_millis(1500),
            },
            Kind::Service,
            json!({"service": "svc", "name": "svc", "view": null, "removed": true,
                "empty_for_ms": 1500, "at_unix_ms": at}),
            true,
        ),
        (
            Event::ScanCompleted {
                full: true,
                periodic: false,
                sockets: 3,
                generation: 9,
            },
            Kind::Scan,
            json!({"full": true, "periodic": false, "sockets": 3, "generation": 9,
                "services": 1, "at_unix_ms": at}),
            true,
        ),
        (
            Event::ScanCompleted {
                full: true,
                periodic: true,
                sockets: 0,
                generation: 10,
            },
            Kind::Scan,
            json!({"full": true, "periodic": true, "sockets": 0, "generation": 10,
                "services": 1, "at_unix_ms": at}),
            false,
        ),
        (
            Event::RootReplaced {
                root: "/r".into(),
                recreated: true,
            },
            Kind::Scan,
            json!({"root_replaced": true, "root": "/r", "recreated": true,
                "at_unix_ms": at}),
            true,
        ),
    ];
    for (event, kind, tree, recent) in cases {
        let stamped = Stamped {
            event,
            at_unix_ms: at,
        };
        let (k, data, r) = event_frame(&stamped, &table, &catalog);
        assert_eq!((k, r), (kind, recent), "{:?}", stamped.event);
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            tree.to_string(),
            "{:?}",
            stamped.event
        );
    }
}

/// A catalog publish makes a `service` frame for exactly the services in the table whose
/// entry changed, appeared or went: not for an entry the fetcher left alone, not for an entry
/// of a service the table does not have.
#[tokio::test]
async fn a_catalog_publish_frames_exactly_the_changed_services() {
    use crate::registry::catalog::{Catalog, CatalogEntry, ManifestInfo, SpecInfo, SpecState};
    use crate::registry::table::{Service, ServiceStatus, Table};
    let (shared, writer) = shared();
    let catalogs = shared.registry.claim_catalog_writer().expect("unclaimed");
    let services = ["a", "b", "c", "d"].map(|name| {
        Arc::new(Service {
            name: name.into(),
            status: ServiceStatus::Healthy,
            sockets: vec![],
            error: None,
        })
    });
    writer.table.send_replace(Arc::new(Table {
        services: services.to_vec(),
        generation: 1,
        ..Table::default()
    }));
    let entry = |title: &str| -> Arc<CatalogEntry> {
        Arc::new(CatalogEntry {
            manifest: ManifestInfo {
                title: Some(title.into()),
                ..ManifestInfo::default()
            },
            manifest_error: None,
            spec: SpecInfo {
                state: SpecState::Absent,
                reason: None,
                fingerprint: None,
                openrpc: None,
                fetched_unix_ms: Some(1),
            },
            info: ManifestInfo::default(),
            document: None,
            methods: Arc::new([]),
        })
    };
    let catalog = |entries: Vec<(&str, Arc<CatalogEntry>)>| {
        Arc::new(Catalog {
            entries: entries.into_iter().map(|(n, e)| (n.into(), e)).collect(),
        })
    };
    let hub = Hub::start_with(
        shared,
        HubConfig {
            buffer: 64,
            heartbeat: Duration::from_secs(15),
        },
        tokio_util::sync::CancellationToken::new(),
    );
    let mut feed = hub.feed(None);
    assert_eq!(next(&mut feed).await.1, "snapshot");

    let (a, b, c) = (entry("a1"), entry("b1"), entry("c1"));
    catalogs.catalog.send_replace(catalog(vec![
        ("a", a.clone()),
        ("b", b),
        ("c", c),
        ("x", entry("x1")),
    ]));
    let mut first = Vec::new();
    for _ in 0..3 {
        let (_, event, data) = next(&mut feed).await;
        assert_eq!(event, "service");
        first.push((data["name"].clone(), data["view"]["title"].clone()));
    }
    assert_eq!(
        first,
        [("a", "a1"), ("b", "b1"), ("c", "c1")].map(|(n, t)| (json!(n), json!(t)))
    );

    // `a` untouched, `b` changed, `c` gone from the catalog, `d` new, `x` changed but not in
    // the table.
    catalogs.catalog.send_replace(catalog(vec![
        ("a", a),
        ("b", entry("b2")),
        ("d", entry("d1")),
        ("x", entry("x2")),
    ]));
    let mut second = Vec::new();
    for _ in 0..3 {
        let (_, event, data) = next(&mut feed).await;
        assert_eq!(event, "service");
        second.push((data["name"].clone(), data["view"]["title"].clone()));
    }
    assert_eq!(
        second,
        [("b", json!("b2")), ("c", Value::Null), ("d", json!("d1"))].map(|(n, t)| (json!(n), t))
    );
    // Nothing more: a marker event comes next, not a frame for `a` or `x`.
    writer.events.emit(socket_event(0));
    assert_eq!(next(&mut feed).await.1, "socket");
}

/// A service that leaves the table is announced once: its `ServiceDropped` event's frame (with
/// `empty_for_ms`), not a second removal frame from the table that drops it. Back and gone
/// again, it is announced again.
#[tokio::test]
async fn a_dropped_service_is_announced_once() {
    use crate::registry::table::{Service, ServiceStatus, Table};
    let (hub, writer) = hub(64);
    let mut feed = hub.feed(None);
    assert_eq!(next(&mut feed).await.1, "snapshot");
    let table = |names: &[&str], generation| {
        Arc::new(Table {
            services: names
                .iter()
                .map(|n| {
                    Arc::new(Service {
                        name: (*n).into(),
                        status: ServiceStatus::Healthy,
                        sockets: vec![],
                        error: None,
                    })
                })
                .collect(),
            generation,
            ..Table::default()
        })
    };
    let scan = |generation| Event::ScanCompleted {
        full: true,
        periodic: true,
        sockets: 0,
        generation,
    };
    for round in 0..2u64 {
        writer.table.send_replace(table(&["a"], 2 * round + 1));
        writer.events.emit(scan(2 * round + 1));
        let (_, event, data) = next(&mut feed).await;
        assert_eq!(
            (event.as_str(), &data["name"]),
            ("service", &json!("a")),
            "{data}"
        );
        assert!(data["view"].is_object(), "{data}");
        assert_eq!(next(&mut feed).await.1, "scan");

        writer.events.emit(Event::ServiceDropped {
            service: "a".into(),
            empty_for: Duration::from_secs(2),
        });
        writer.table.send_replace(table(&[], 2 * round + 2));
        writer.events.emit(scan(2 * round + 2));
        let (_, event, data) = next(&mut feed).await;
        assert_eq!(event, "service", "{data}");
        assert_eq!(
            (&data["removed"], &data["empty_for_ms"]),
            (&json!(true), &json!(2000))
        );
        let (_, event, data) = next(&mut feed).await;
        assert_eq!(event, "scan", "one removal frame, then the scan: {data}");
    }
}
