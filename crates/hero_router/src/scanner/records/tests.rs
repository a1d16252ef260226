use super::*;

fn names(set: &BTreeSet<String>) -> Vec<&str> {
    set.iter().map(String::as_str).collect()
}

#[test]
fn each_directory_is_watched_once_and_unwatched_when_its_service_goes() {
    let mut r = Records::default();
    for name in ["a", "b", "c"] {
        r.service_mut(name);
    }
    // `b`'s watch fails: it is tried again next time.
    let added = r.watch_new(|n| n != "b");
    assert_eq!(names(&added), ["a", "c"]);
    let added = r.watch_new(|_| true);
    assert_eq!(names(&added), ["b"]);
    assert!(r.watch_new(|_| panic!("nothing left to watch")).is_empty());

    // A dropped service's watch goes; one dropped and back again keeps its directory
    // watched (it is watched anew).
    r.drop_service("a");
    r.drop_service("c");
    r.service_mut("c");
    assert_eq!(r.take_unwatched(), ["a"]);
    assert!(r.take_unwatched().is_empty());
    assert_eq!(names(&r.watch_new(|_| true)), ["c"]);

    // A service never watched leaves nothing to unwatch.
    r.service_mut("d");
    r.drop_service("d");
    assert!(r.take_unwatched().is_empty());
}

#[test]
fn a_new_watcher_watches_every_directory_again() {
    let mut r = Records::default();
    for name in ["a", "b"] {
        r.service_mut(name);
    }
    r.watch_new(|_| true);
    r.drop_service("b");
    r.forget_watches();
    assert!(
        r.take_unwatched().is_empty(),
        "the old watcher's watches went with it"
    );
    assert_eq!(names(&r.watch_new(|_| true)), ["a"]);
}
