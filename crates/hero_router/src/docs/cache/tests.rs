//! The cache alone, with renders that record where they ran and wait where a test needs
//! them to: off the caller's thread, once per page, kept within bounds, busy when full.

use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt;

use super::*;

fn key(fingerprint: &str) -> Option<Key> {
    Some(Key {
        kind: Kind::Page(Format::Html),
        fingerprint: fingerprint.to_owned(),
        shown: Shown::default(),
    })
}

fn page(text: &str) -> Page {
    Page {
        text: text.to_owned(),
        refused: None,
    }
}

/// Renders so far, and the threads they ran on.
#[derive(Default)]
struct Seen {
    renders: AtomicUsize,
    threads: Mutex<Vec<String>>,
}

impl Seen {
    /// A render of `text` that records itself.
    fn render(self: &Arc<Self>, text: &'static str) -> impl FnOnce(&Budget) -> Page + Send + use<> {
        let seen = self.clone();
        move |_| {
            seen.renders.fetch_add(1, Ordering::SeqCst);
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            seen.threads.lock().unwrap().push(thread);
            page(text)
        }
    }

    fn renders(&self) -> usize {
        self.renders.load(Ordering::SeqCst)
    }
}

fn renderer(threads: usize, queue: usize) -> Arc<Renderer> {
    Renderer::start(threads, queue, Budget::default(), Keep::default())
}

#[tokio::test]
async fn a_page_renders_once_on_a_render_thread_then_is_a_hit() {
    let r = renderer(1, 4);
    let seen = Arc::new(Seen::default());
    let (first, status) = r.get(key("a"), seen.render("A")).await.unwrap();
    assert_eq!((first.text.as_str(), status), ("A", Status::Miss));
    assert_eq!(*seen.threads.lock().unwrap(), ["hero-render-0"]);
    assert_ne!(std::thread::current().name(), Some("hero-render-0"));
    let (again, status) = r.get(key("a"), seen.render("other")).await.unwrap();
    assert_eq!(status, Status::Hit);
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(seen.renders(), 1);
    // Another document is another page.
    let (b, status) = r.get(key("b"), seen.render("B")).await.unwrap();
    assert_eq!(
        (b.text.as_str(), status, seen.renders()),
        ("B", Status::Miss, 2)
    );
}

#[tokio::test]
async fn sixteen_requests_at_once_share_one_render() {
    let r = renderer(2, 4);
    let seen = Arc::new(Seen::default());
    let (open, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let render = seen.render("A");
    let slow = move |b: &Budget| {
        // Held until every request has asked.
        let _ = gate.lock().unwrap().recv();
        render(b)
    };
    let mut slow = Some(slow);
    let gets = (0..16).map(|_| match slow.take() {
        Some(slow) => r.get(key("a"), slow).boxed(),
        None => r.get(key("a"), seen.render("never")).boxed(),
    });
    // `join` polls every request once before the gate opens.
    let (answers, ()) = futures_util::future::join(futures_util::future::join_all(gets), async {
        open.send(()).unwrap()
    })
    .await;
    let answers: Vec<_> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(seen.renders(), 1);
    assert_eq!(answers[0].1, Status::Miss);
    assert!(answers[1..].iter().all(|(_, s)| *s == Status::Collapsed));
    assert!(answers.iter().all(|(p, _)| Arc::ptr_eq(p, &answers[0].0)));
}

#[tokio::test]
async fn a_render_runs_on_when_its_requester_is_gone_and_is_kept() {
    let r = renderer(1, 4);
    let seen = Arc::new(Seen::default());
    let (open, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let render = seen.render("A");
    let asked = r.get(key("a"), move |b: &Budget| {
        let _ = gate.lock().unwrap().recv();
        render(b)
    });
    assert!(asked.now_or_never().is_none(), "still rendering");
    open.send(()).unwrap();
    let (page, status) = r.get(key("a"), seen.render("never")).await.unwrap();
    assert_eq!(page.text, "A");
    assert!(
        matches!(status, Status::Collapsed | Status::Hit),
        "{status:?}"
    );
    assert_eq!(seen.renders(), 1);
}

#[tokio::test]
async fn the_least_recently_used_page_goes_first() {
    let keep = Keep {
        entries: 2,
        bytes: 10,
    };
    let r = Renderer::start(1, 4, Budget::default(), keep);
    let seen = Arc::new(Seen::default());
    for k in ["a", "b", "a", "c"] {
        r.get(key(k), seen.render("12")).await.unwrap();
    }
    assert_eq!(seen.renders(), 3, "a was a hit");
    assert_eq!(
        r.get(key("a"), seen.render("12")).await.unwrap().1,
        Status::Hit
    );
    assert_eq!(
        r.get(key("c"), seen.render("12")).await.unwrap().1,
        Status::Hit
    );
    assert_eq!(
        r.get(key("b"), seen.render("12")).await.unwrap().1,
        Status::Miss
    );
    // Bytes: a page of 9 pushes out all but itself; one over the limit is never kept.
    r.get(key("big"), seen.render("123456789")).await.unwrap();
    assert_eq!(
        r.get(key("big"), seen.render("")).await.unwrap().1,
        Status::Hit
    );
    assert_eq!(
        r.get(key("b"), seen.render("12")).await.unwrap().1,
        Status::Miss
    );
    r.get(key("huge"), seen.render("12345678901"))
        .await
        .unwrap();
    assert_eq!(
        r.get(key("huge"), seen.render("x")).await.unwrap().1,
        Status::Miss
    );
    let state = r.lock();
    assert!(
        state.kept <= 2 && state.bytes <= 10,
        "{} {}",
        state.kept,
        state.bytes
    );
}

#[tokio::test]
async fn a_full_queue_is_busy_at_once() {
    let r = renderer(1, 1);
    let seen = Arc::new(Seen::default());
    let (open, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let (started, running) = tokio::sync::oneshot::channel();
    let render = seen.render("A");
    let first = tokio::spawn({
        let r = r.clone();
        async move {
            r.get(key("a"), move |b: &Budget| {
                let _ = started.send(());
                let _ = gate.lock().unwrap().recv();
                render(b)
            })
            .await
        }
    });
    running.await.unwrap();
    // The thread is busy with `a`: `b` fills the queue, `c` finds it full.
    assert!(r.get(key("b"), seen.render("B")).now_or_never().is_none());
    assert_eq!(
        r.get(key("c"), seen.render("C")).now_or_never(),
        Some(Err(Busy))
    );
    open.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().0.text, "A");
    let (b, _) = r.get(key("b"), seen.render("never")).await.unwrap();
    assert_eq!(b.text, "B");
}

#[tokio::test]
async fn a_render_that_panics_is_answered_and_not_kept() {
    let r = renderer(1, 4);
    let (page, _) = r
        .get(key("a"), |_: &Budget| -> Page { panic!("boom") })
        .await
        .unwrap();
    assert_eq!(page.text, "hero_router docs: rendering failed: boom\n");
    let seen = Arc::new(Seen::default());
    let (page, status) = r.get(key("a"), seen.render("A")).await.unwrap();
    assert_eq!((page.text.as_str(), status), ("A", Status::Miss));
    // The thread survived the panic.
    assert_eq!(*seen.threads.lock().unwrap(), ["hero-render-0"]);
}

#[tokio::test]
async fn a_page_without_a_fingerprint_is_rendered_off_the_thread_and_not_kept() {
    let r = renderer(1, 4);
    let seen = Arc::new(Seen::default());
    for _ in 0..2 {
        let (page, status) = r.get(None, seen.render("A")).await.unwrap();
        assert_eq!((page.text.as_str(), status), ("A", Status::Miss));
    }
    assert_eq!(seen.renders(), 2);
    assert_eq!(seen.threads.lock().unwrap()[1], "hero-render-0");
}
