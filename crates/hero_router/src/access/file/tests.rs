use super::*;
use std::os::unix::fs::symlink;

#[test]
fn edits_keep_comments_and_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg/hero_router/access.txt");
    assert_eq!(list(&path).unwrap(), Vec::<String>::new());
    assert_eq!(add(&path, "10.0.0.0/8").unwrap(), Edited::Added);
    assert_eq!(add(&path, "10.1.0.0/8").unwrap(), Edited::AlreadyPresent);
    assert_eq!(add(&path, " mycelium ").unwrap(), Edited::Added);
    assert!(matches!(
        add(&path, "10.0.0.300"),
        Err(FileError::BadEntry(_))
    ));
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, format!("# the node's peers\n{text}")).unwrap();
    assert_eq!(list(&path).unwrap(), ["10.0.0.0/8", "mycelium"]);
    assert_eq!(
        remove(&path, "400::/7", Emptying::Refuse).unwrap(),
        Edited::Removed(1)
    );
    assert!(matches!(
        remove(&path, "192.0.2.1", Emptying::Refuse),
        Err(FileError::NotPresent { .. })
    ));
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "# the node's peers\n10.0.0.0/8\n"
    );
    assert_eq!(
        clear(&path, Emptying::Confirmed).unwrap(),
        Edited::Removed(1)
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "# the node's peers\n");
    // No temporary file is left behind: the file and its edit lock.
    let mut names: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, [".access.txt.lock", "access.txt"]);
}

#[test]
fn editors_at_the_same_instant_all_get_their_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cfg/access.txt");
    let start = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for t in 0..8 {
            let (path, start) = (&path, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..10 {
                    assert_eq!(add(path, &format!("10.0.{t}.{i}")).unwrap(), Edited::Added);
                }
                assert_eq!(
                    remove(path, &format!("10.0.{t}.0"), Emptying::Refuse).unwrap(),
                    Edited::Removed(1)
                );
            });
        }
    });
    let entries = list(&path).unwrap();
    assert_eq!(entries.len(), 8 * 9, "{entries:?}");
    for t in 0..8 {
        for i in 1..10 {
            assert!(
                entries.contains(&format!("10.0.{t}.{i}")),
                "10.0.{t}.{i} lost"
            );
        }
    }
}

#[test]
fn removing_from_a_missing_directory_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("none/access.txt");
    assert_eq!(clear(&path, Emptying::Refuse).unwrap(), Edited::Removed(0));
    assert!(matches!(
        remove(&path, "10.0.0.1", Emptying::Refuse),
        Err(FileError::NotPresent { .. })
    ));
    assert!(!dir.path().join("none").exists());
}

#[test]
fn a_bad_file_is_not_edited() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.txt");
    fs::write(&path, "10.0.0.1\nbogus\n").unwrap();
    let e = add(&path, "10.0.0.2").unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "10.0.0.1\nbogus\n");
    assert!(load(&path).is_err());
}

#[test]
fn the_last_entry_goes_only_when_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.txt");
    let text = "# peers\n10.0.0.1\n10.0.0.1/32 # twice\n10.0.0.2\n";
    fs::write(&path, text).unwrap();
    assert_eq!(
        remove(&path, "10.0.0.2", Emptying::Refuse).unwrap(),
        Edited::Removed(1)
    );
    // Both lines of 10.0.0.1 are the last entries.
    let e = remove(&path, "10.0.0.1", Emptying::Refuse).unwrap_err();
    assert!(
        matches!(e, FileError::WouldOpen { removed: 2, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("allow every client"), "{e}");
    let e = clear(&path, Emptying::Refuse).unwrap_err();
    assert!(
        matches!(e, FileError::WouldOpen { removed: 2, .. }),
        "{e:?}"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "# peers\n10.0.0.1\n10.0.0.1/32 # twice\n",
        "nothing written"
    );
    assert_eq!(
        remove(&path, "10.0.0.1", Emptying::Confirmed).unwrap(),
        Edited::Removed(2)
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "# peers\n");
    // Nothing left to remove: clearing needs no confirmation.
    assert_eq!(clear(&path, Emptying::Refuse).unwrap(), Edited::Removed(0));
    fs::write(&path, "10.0.0.3\n").unwrap();
    assert_eq!(
        clear(&path, Emptying::Confirmed).unwrap(),
        Edited::Removed(1)
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "");
}

/// A file outside the access file's directory that a planted symlink points at.
struct Victim {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

const VICTIM_TEXT: &str = "# not yours\n";

fn victim() -> Victim {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("victim");
    fs::write(&path, VICTIM_TEXT).unwrap();
    Victim { _dir: dir, path }
}

#[test]
fn edits_never_write_through_a_planted_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.txt");
    fs::write(&path, "10.0.0.1\n").unwrap();
    let victim = victim();
    // The temporary names a writer might use: the old predictable one (this process's id, as
    // `hero_router access` had), and a few more.
    let planted = [
        format!(".access.txt.{}.tmp", std::process::id()),
        ".access.txt.tmp".to_owned(),
        "access.txt.tmp".to_owned(),
        "access.txt~".to_owned(),
    ];
    for name in &planted {
        symlink(&victim.path, dir.path().join(name)).unwrap();
    }
    assert_eq!(add(&path, "10.0.0.2").unwrap(), Edited::Added);
    assert_eq!(
        remove(&path, "10.0.0.1", Emptying::Refuse).unwrap(),
        Edited::Removed(1)
    );
    assert_eq!(fs::read_to_string(&victim.path).unwrap(), VICTIM_TEXT);
    assert!(fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(fs::read_to_string(&path).unwrap(), "10.0.0.2\n");
    for name in &planted {
        let link = fs::read_link(dir.path().join(name)).unwrap();
        assert_eq!(link, victim.path, "{name} left alone");
    }

    // A symlink at the file's own name is read (a valid file), then replaced by a regular
    // file, not written through.
    let linked = dir.path().join("linked.txt");
    symlink(&victim.path, &linked).unwrap();
    assert_eq!(add(&linked, "10.0.0.3").unwrap(), Edited::Added);
    assert_eq!(fs::read_to_string(&victim.path).unwrap(), VICTIM_TEXT);
    assert!(fs::symlink_metadata(&linked).unwrap().is_file());
    assert_eq!(
        fs::read_to_string(&linked).unwrap(),
        format!("{VICTIM_TEXT}10.0.0.3\n")
    );
}

#[test]
fn a_symlink_at_the_lock_name_fails_the_edit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.txt");
    fs::write(&path, "10.0.0.1\n").unwrap();
    let victim = victim();
    let lock = dir.path().join(".access.txt.lock");
    // Dangling: opening it with O_CREAT through the link would create this file.
    let nowhere = victim.path.with_file_name("created-by-the-lock");
    symlink(&nowhere, &lock).unwrap();
    let e = add(&path, "10.0.0.2").unwrap_err();
    assert!(matches!(&e, FileError::LockIsSymlink { .. }), "{e:?}");
    assert!(
        e.to_string().contains("is a symbolic link") && e.to_string().contains("remove the link"),
        "{e}"
    );
    assert!(!nowhere.exists(), "nothing created through the lock's link");
    // Pointing at an existing file: not locked, not changed; the edit is refused.
    fs::remove_file(&lock).unwrap();
    symlink(&victim.path, &lock).unwrap();
    assert!(add(&path, "10.0.0.2").is_err());
    assert!(clear(&path, Emptying::Confirmed).is_err());
    assert_eq!(fs::read_to_string(&victim.path).unwrap(), VICTIM_TEXT);
    assert_eq!(fs::read_to_string(&path).unwrap(), "10.0.0.1\n");
}

/// Polls `cond` every few milliseconds until it holds or `within` passes.
async fn eventually(within: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await; // poll interval, bounded by the deadline
    }
    cond()
}

#[tokio::test]
async fn the_watcher_holds_an_emptied_file_for_the_grace_then_applies_it() {
    const GRACE: Duration = Duration::from_millis(300);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.txt");
    fs::write(&path, "10.0.0.1\n").unwrap();
    let access = Arc::new(Access::new(vec![], load(&path).unwrap(), vec![]));
    let token = CancellationToken::new();
    let task = tokio::spawn(watch_with_grace(
        path.clone(),
        access.clone(),
        token.clone(),
        GRACE,
    ));
    let closed = || access.check("10.0.0.2".parse().unwrap(), &[]).is_err();
    let allows = |ip: &str| access.check(ip.parse().unwrap(), &[]).is_ok();
    // The watch is set up once the task runs: write until an edit is seen. An entry that lets
    // someone in applies once the file has been still for the grace, so the writes are spaced.
    let mut seen = false;
    for _ in 0..10 {
        fs::write(&path, "10.0.0.4\n").unwrap();
        if eventually(GRACE * 3, || allows("10.0.0.4")).await {
            seen = true;
            break;
        }
    }
    assert!(seen, "the watcher picks up an edit");

    // Emptied, then filled again before the grace ends: never open, and the new entries apply.
    fs::write(&path, "# nothing\n").unwrap();
    fs::write(&path, "10.0.0.3\n").unwrap();
    assert!(eventually(Duration::from_secs(10), || allows("10.0.0.3")).await);
    assert!(closed());

    // Gone for good: the list stays until the file has been gone for the grace, then opens.
    let gone_at = Instant::now();
    fs::remove_file(&path).unwrap();
    assert!(eventually(Duration::from_secs(10), || !closed()).await);
    assert!(
        gone_at.elapsed() >= GRACE,
        "opened {:?} after the file went",
        gone_at.elapsed()
    );
    // Back again: closed at once.
    fs::write(&path, "10.0.0.1\n").unwrap();
    assert!(eventually(Duration::from_secs(10), closed).await);
    token.cancel();
    task.await.unwrap();
}

/// Only a regular file is read, and only so much of it: a FIFO at the path would block the
/// reader (the control plane's one worker) until a writer came, `/dev/zero` would never end.
#[tokio::test]
async fn a_fifo_or_an_endless_file_is_an_error_not_a_wait() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.txt");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let zero = dir.path().join("zero.txt");
    symlink("/dev/zero", &zero).unwrap();
    for (path, why) in [(fifo, "not a regular file"), (zero, "not a regular file")] {
        let loaded = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::task::spawn_blocking(move || load(&path)),
        )
        .await
        .expect("load returns without a writer")
        .unwrap();
        let e = loaded.unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    // A regular file past the limit is refused whole, and a bad line is shown by its start.
    let big = dir.path().join("big.txt");
    fs::File::create(&big)
        .unwrap()
        .set_len(MAX_FILE + 1)
        .unwrap();
    let e = load(&big).unwrap_err().to_string();
    assert!(e.contains("larger than 64 MiB"), "{e}");
    let long = dir.path().join("long.txt");
    fs::write(&long, "x".repeat(1 << 20)).unwrap();
    let e = load(&long).unwrap_err().to_string();
    assert!(
        e.len() < 600 && e.contains("line 1"),
        "{} bytes: {e:.300}",
        e.len()
    );
}

/// A change that leaves the size and the modification time as they were (a `chmod` or `chown`
/// that makes the file readable, a rewrite whose mtime is set back) is still a new version of
/// the file for the watcher: it moves the ctime.
#[test]
fn a_change_that_keeps_size_and_mtime_is_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.txt");
    fs::write(&path, "10.0.0.4\n").unwrap();
    let before = identity(&path);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    // The ctime has a clock tick's resolution: wait until a change is sure to move it.
    let ctime = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.ctime(), m.ctime_nsec())
    };
    let probe = dir.path().join("probe");
    fs::write(&probe, "").unwrap();
    let first = ctime(&probe);
    while ctime(&probe) == first {
        fs::write(&probe, "x").unwrap(); // a poll for the clock to tick, microseconds each
    }
    fs::write(&path, "10.0.0.5\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let after = fs::metadata(&path).unwrap();
    assert_eq!(after.modified().unwrap(), mtime, "the same mtime");
    assert_ne!(identity(&path), before);
    // And a chmod alone.
    let before = identity(&path);
    let first = ctime(&probe);
    while ctime(&probe) == first {
        fs::write(&probe, "x").unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    assert_ne!(identity(&path), before);
}

/// A change that would let someone in waits until the file has been still for the grace; one
/// that only shuts clients out, or adds what the list already allows, applies at once.
#[test]
fn a_widening_waits_for_the_file_to_be_still_a_narrowing_does_not() {
    use super::super::AllowList;
    let nets = |list: &[&str]| -> Vec<IpNet> { list.iter().map(|e| e.parse().unwrap()).collect() };
    let current = AllowList::new(nets(&["10.0.0.0/24", "192.0.2.7/32"]));
    let grace = Duration::from_secs(2);
    let changed = Instant::now();
    let soon = changed + Duration::from_millis(10);
    // A piece that ends mid-line: `127.0.0.0/3` of `127.0.0.0/30` (96.0.0.0/3 once truncated).
    let half = nets(&["10.0.0.0/24", "96.0.0.0/3"]);
    assert_eq!(
        settles_at(&current, &half, changed, soon, grace),
        Some(changed + grace)
    );
    assert_eq!(
        settles_at(&current, &half, changed, changed + grace, grace),
        None
    );
    // Removing an entry, or narrowing one, applies at once; so does an entry already covered.
    for now_in_force in [
        nets(&["10.0.0.0/24"]),
        nets(&["10.0.0.0/25", "192.0.2.7/32"]),
        nets(&["10.0.0.0/24", "10.0.0.9/32", "192.0.2.7/32"]),
    ] {
        assert_eq!(
            settles_at(&current, &now_in_force, changed, soon, grace),
            None
        );
    }
    // Everyone allowed now (no entries): any list shuts some out.
    let open = AllowList::new(Vec::new());
    assert_eq!(settles_at(&open, &half, changed, soon, grace), None);
}
