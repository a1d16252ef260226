//! The registry's channel: what a new one holds, readiness, publishing tables, catalogs and
//! events, and the requests a reader may make of the scanner and the catalog fetcher.

use std::path::PathBuf;
use std::sync::Arc;

use futures_util::poll;

use super::table::{LastScan, Table};
use super::{ScanSummary, channel};
use crate::registry::events::{self, Event};

fn root() -> PathBuf {
    PathBuf::from("/run/hero/sockets")
}

/// A table for `root()` with `last_scan` set (a full scan finished) or not.
fn table(scanned: bool, generation: u64) -> Arc<Table> {
    Arc::new(Table {
        root: root(),
        last_scan: scanned.then(|| LastScan {
            at_unix_ms: 1,
            duration_ms: 0,
            ok: false,
            error: Some("cannot read the socket root".into()),
        }),
        generation,
        ..Table::default()
    })
}

#[test]
fn a_new_registry_holds_an_empty_unscanned_table_for_its_root() {
    let (registry, _writer) = channel(root());
    let t = registry.table();
    assert_eq!(t.root, root());
    assert!(t.services.is_empty() && !t.ready && !t.scanned());
    assert_eq!(t.generation, 0);
    assert!(registry.catalog().get("anything").is_none());
    assert!(registry.failure().is_none());
}

/// Ready means a full scan was published, whether or not it could read the root; a table
/// published by a partial scan before it does not count.
#[tokio::test]
async fn ready_waits_for_the_first_full_scan_whatever_it_found() {
    let (registry, writer) = channel(root());
    let ready = registry.ready();
    tokio::pin!(ready);
    assert!(poll!(&mut ready).is_pending());
    writer.table.send_replace(table(false, 1));
    assert!(poll!(&mut ready).is_pending(), "no full scan yet");
    writer.table.send_replace(table(true, 2));
    assert!(poll!(&mut ready).is_ready());
    // From then on at once.
    let again = registry.ready();
    tokio::pin!(again);
    assert!(poll!(&mut again).is_ready());
}

#[tokio::test]
async fn every_reader_sees_what_the_writer_publishes() {
    let (registry, writer) = channel(root());
    let clone = registry.clone();
    let mut tables = registry.tables();
    let mut events = clone.subscribe();
    let next = table(true, 7);
    writer.table.send_replace(next.clone());
    tables.changed().await.unwrap();
    assert!(Arc::ptr_eq(&tables.borrow_and_update(), &next));
    assert!(
        Arc::ptr_eq(&clone.table(), &next),
        "the same table, not a copy"
    );
    let before = events::unix_ms();
    writer.events.emit(Event::ServiceDropped {
        service: "svc".into(),
        empty_for: std::time::Duration::ZERO,
    });
    let after = events::unix_ms();
    let ev = events.recv().await.unwrap();
    // Stamped by the writer as it emitted, not by the subscriber as it received.
    assert!(
        (before..=after).contains(&ev.at_unix_ms),
        "stamp {} not within the emit ({before}..={after})",
        ev.at_unix_ms
    );
    assert!(matches!(ev.event, Event::ServiceDropped { service, .. } if service == "svc"));
    // A subscriber sees only what comes after it subscribed.
    let mut late = registry.subscribe();
    assert!(late.try_recv().is_err());
}

#[tokio::test]
async fn a_scan_request_reaches_the_scanner_and_returns_its_summary() {
    let (registry, mut writer) = channel(root());
    let summary = ScanSummary {
        services: 2,
        sockets: 3,
        ..ScanSummary::default()
    };
    let answer = summary.clone();
    let scanner = tokio::spawn(async move {
        let req = writer.requests.recv().await.unwrap();
        req.reply.send(Ok(answer)).unwrap();
        writer
    });
    assert_eq!(registry.scan_now().await, Ok(summary));
    // A scanner that has stopped answers no more.
    drop(scanner.await.unwrap());
    assert_eq!(
        registry.scan_now().await,
        Err(crate::registry::ScanError::Stopped)
    );
}

#[tokio::test]
async fn the_catalog_writer_is_claimed_once_and_answers_refresh_requests() {
    let (registry, _writer) = channel(root());
    let mut fetcher = registry.claim_catalog_writer().expect("unclaimed");
    assert!(registry.claim_catalog_writer().is_none(), "one fetcher");
    let refreshed = tokio::spawn({
        let registry = registry.clone();
        async move { registry.refresh_catalog("svc").await }
    });
    let req = fetcher.requests.recv().await.unwrap();
    assert_eq!(req.service.as_deref(), Some("svc"));
    req.reply.unwrap().send(()).unwrap();
    assert!(refreshed.await.unwrap());
    registry.refresh_catalog_all();
    let all = fetcher.requests.recv().await.unwrap();
    assert!(all.service.is_none() && all.reply.is_none());
    // No fetcher: a refresh says so instead of waiting.
    drop(fetcher);
    assert!(!registry.refresh_catalog("svc").await);
}

#[test]
fn the_first_failure_recorded_wins() {
    let (registry, _writer) = channel(root());
    registry.mark_failed("the scanner panicked".into());
    registry.clone().mark_failed("later".into());
    assert_eq!(registry.failure(), Some("the scanner panicked"));
}

/// A catalog entry is held per service (8,000 failing services held 2.4 MB of them): its
/// texts are boxed `str`s, and the whole entry stays within 216 bytes on a 64-bit target.
#[test]
#[cfg(target_pointer_width = "64")]
fn a_catalog_entry_stays_small() {
    let size = std::mem::size_of::<crate::registry::catalog::CatalogEntry>();
    assert!(size <= 216, "CatalogEntry is {size} bytes");
}

/// The skip reasons the code knows are the ones docs/sockets-and-reaping.md lists, in its
/// order, each with its own code (the table's `reap_skipped` and the log's `reason`).
#[test]
fn skip_reasons_match_the_docs() {
    use crate::registry::state::SkipReason;
    let doc = include_str!("../../../../docs/sockets-and-reaping.md");
    let table = doc
        .split("## Skip reasons")
        .nth(1)
        .expect("a Skip reasons section");
    let documented: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let known: Vec<&str> = SkipReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(known, documented);
    for r in SkipReason::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        assert!(!r.explain().is_empty());
    }
}
