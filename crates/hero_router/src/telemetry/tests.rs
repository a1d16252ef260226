use std::fs::File;
use std::io::Write as _;

use rustix::pipe::pipe;

use super::*;

/// A pipe whose reading end is already closed: every write is EPIPE.
fn broken_pipe() -> File {
    let (reader, writer) = pipe().unwrap();
    drop(reader);
    File::from(writer)
}

#[test]
fn a_line_to_a_broken_pipe_is_dropped_and_counted() {
    let dropped = AtomicU64::new(0);
    let mut w = LineWriter::new(broken_pipe(), &dropped);
    w.write_all(b"one line\n").unwrap();
    w.flush().unwrap();
    assert_eq!(dropped.load(Ordering::Relaxed), 1);

    let (reader, writer) = pipe().unwrap();
    let (mut reader, writer) = (File::from(reader), File::from(writer));
    let mut w = LineWriter::new(writer, &dropped);
    w.write_all(b"kept\n").unwrap();
    drop(w);
    let mut got = String::new();
    io::Read::read_to_string(&mut reader, &mut got).unwrap();
    assert_eq!(got, "kept\n");
    assert_eq!(
        dropped.load(Ordering::Relaxed),
        1,
        "a written line is not counted"
    );
}

#[test]
fn the_formatter_survives_a_broken_pipe() {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let pipe = broken_pipe();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || LineWriter::new(pipe.try_clone().unwrap(), &COUNT))
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("first");
        tracing::warn!(field = 1, "second");
    });
    assert_eq!(COUNT.load(Ordering::Relaxed), 2);
}

#[test]
fn rmcp_is_held_to_warnings_unless_asked_for() {
    assert_eq!(quiet_rmcp("info"), "info,rmcp=warn,rmcp::service=off");
    assert_eq!(quiet_rmcp("warn"), "warn,rmcp=warn,rmcp::service=off");
    assert_eq!(
        quiet_rmcp("hero_router=debug"),
        "hero_router=debug,rmcp=warn,rmcp::service=off"
    );
    assert_eq!(quiet_rmcp(""), "rmcp=warn,rmcp::service=off");
    // Everything at debug, or rmcp named: as given.
    assert_eq!(quiet_rmcp("debug"), "debug");
    assert_eq!(quiet_rmcp(" TRACE "), " TRACE ");
    assert_eq!(quiet_rmcp("info,rmcp=info"), "info,rmcp=info");
    // Every result still parses as a filter.
    for f in ["info", "warn", "hero_router=debug", "", "debug"] {
        EnvFilter::try_new(quiet_rmcp(f)).unwrap();
    }
}

#[test]
fn a_rate_limit_allows_the_first_event_then_counts_what_it_holds_back() {
    let limit = RateLimit::new();
    assert_eq!(limit.should_log(), Some(0));
    assert_eq!(limit.should_log(), None);
    assert_eq!(limit.should_log(), None);
}

#[test]
fn colour_only_on_a_terminal_without_no_color() {
    use super::colour;
    assert!(colour(true, None));
    assert!(
        colour(true, Some("".into())),
        "an empty NO_COLOR counts as unset"
    );
    assert!(!colour(true, Some("1".into())));
    assert!(!colour(false, None));
}
