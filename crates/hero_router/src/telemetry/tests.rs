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
