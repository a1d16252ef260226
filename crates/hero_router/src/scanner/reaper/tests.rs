//! Every removal step, raced on purpose through the [`ReapHook`] seam.

use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Mutex;

use hero_socket::{BindOptions, OwnedSocket, lock_path, stat_nofollow};
use rustix::net::{
    AddressFamily, SocketAddrUnix, SocketFlags, SocketType, bind, listen, socket_with,
};

use super::*;

/// Leaves a dead socket file at `path` (bound, listened, closed) and returns its identity.
fn dead_socket(path: &Path) -> Identity {
    drop(UnixListener::bind(path).unwrap());
    assert_eq!(connect_probe(path), ConnectOutcome::Refused);
    stat_nofollow(path).unwrap().identity
}

/// A socket that is bound but not listening yet: a service in its start-up window.
fn bound_not_listening(path: &Path) -> OwnedFd {
    let fd = socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .unwrap();
    bind(&fd, &SocketAddrUnix::new(path).unwrap()).unwrap();
    fd
}

/// Asserts a live listener answers at `path` and that it is `listener` that accepts.
fn assert_serves(path: &Path, listener: &UnixListener) {
    assert_eq!(
        connect_probe(path),
        ConnectOutcome::Connected,
        "{} must stay reachable",
        path.display()
    );
    let _client = UnixStream::connect(path).unwrap();
    listener.set_nonblocking(false).unwrap();
    listener
        .accept()
        .expect("the re-bound listener itself accepts the connection");
}

fn no_debris(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".reap-"))
        .collect();
    assert!(left.is_empty(), "staged files left behind: {left:?}");
}

/// A hook that, at `at`, unlinks the path and binds a fresh listening socket there.
fn rebind_at(at: ReapStep, slot: Arc<Mutex<Option<UnixListener>>>) -> ReapHook {
    Arc::new(move |step, path, _staged| {
        if step == at {
            let _ = std::fs::remove_file(path);
            *slot.lock().unwrap() = Some(UnixListener::bind(path).unwrap());
        }
    })
}

#[test]
fn reaps_a_dead_socket_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    std::fs::write(lock_path(&path), b"").unwrap();
    assert_eq!(reap(&path, id, None), ReapOutcome::Reaped);
    assert!(!path.exists());
    assert!(lock_path(&path).exists(), "the lock file is never deleted");
    no_debris(dir.path());
}

#[test]
fn rule_4_owner_lock_alone_prevents_reap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    // The owner holds its lock (e.g. between its own unlink and bind): never reap.
    let lock = OwnerLock::acquire(&path, std::time::Duration::ZERO).unwrap();
    assert_eq!(
        reap(&path, id, None),
        ReapOutcome::Skipped(SkipReason::OwnerLocked)
    );
    assert_eq!(stat_nofollow(&path).unwrap().identity, id);
    // Control: the same file with the lock released is reaped.
    drop(lock);
    assert_eq!(reap(&path, id, None), ReapOutcome::Reaped);
}

#[test]
fn rule_5_reprobe_alone_prevents_reap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    // Refused while bound but not listening, then the service calls listen(): same file, live.
    let fd = bound_not_listening(&path);
    assert_eq!(connect_probe(&path), ConnectOutcome::Refused);
    let id = stat_nofollow(&path).unwrap().identity;
    listen(&fd, 16).unwrap();
    assert_eq!(
        reap(&path, id, None),
        ReapOutcome::Skipped(SkipReason::Reprobe)
    );
    assert_eq!(connect_probe(&path), ConnectOutcome::Connected);
}

#[test]
fn a_socket_between_bind_and_listen_is_never_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    // The router judged this very file: refused, same identity, old enough. Only the kernel's
    // socket table knows that its owner is alive and about to listen.
    let fd = bound_not_listening(&path);
    assert_eq!(connect_probe(&path), ConnectOutcome::Refused);
    let id = stat_nofollow(&path).unwrap().identity;
    assert_eq!(
        reap(&path, id, None),
        ReapOutcome::Skipped(SkipReason::Bound)
    );
    listen(&fd, 16).unwrap();
    assert_eq!(connect_probe(&path), ConnectOutcome::Connected);
    // Control: once its owner has closed it, the same file is reaped.
    drop(fd);
    assert_eq!(reap(&path, id, None), ReapOutcome::Reaped);
}

#[test]
fn rule_3_identity_alone_prevents_reap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let old = dead_socket(&path);
    std::fs::remove_file(&path).unwrap();
    let new = dead_socket(&path);
    assert_ne!(old, new);
    assert_eq!(
        reap(&path, old, None),
        ReapOutcome::Skipped(SkipReason::IdentityChanged)
    );
    assert_eq!(stat_nofollow(&path).unwrap().identity, new);
}

#[test]
fn seed_race_rebind_before_rename_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    let slot = Arc::new(Mutex::new(None));
    let hook = rebind_at(ReapStep::BeforeRename, slot.clone());
    assert_eq!(
        reap(&path, id, Some(&hook)),
        ReapOutcome::Skipped(SkipReason::Restored)
    );
    assert_serves(&path, slot.lock().unwrap().as_ref().unwrap());
    no_debris(dir.path());
}

#[test]
fn seed_race_bind_without_listen_before_rename_is_restored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    let slot: Arc<Mutex<Option<OwnedFd>>> = Arc::new(Mutex::new(None));
    let s = slot.clone();
    let hook: ReapHook = Arc::new(move |step, path, _| {
        if step == ReapStep::BeforeRename {
            std::fs::remove_file(path).unwrap();
            *s.lock().unwrap() = Some(bound_not_listening(path));
        }
    });
    // The new socket refuses like the dead one did, and on ext4 often has its inode number:
    // only birth time tells them apart.
    assert_eq!(
        reap(&path, id, Some(&hook)),
        ReapOutcome::Skipped(SkipReason::Restored)
    );
    let fd = slot.lock().unwrap().take().unwrap();
    listen(&fd, 16).unwrap();
    assert_eq!(connect_probe(&path), ConnectOutcome::Connected);
    no_debris(dir.path());
}

/// A socket bound at the path while the checks ran (the socket table of a busy host takes
/// milliseconds) is seen by the last look at the path and never moved: not even out of sight
/// for the microseconds of a rename aside and back.
#[test]
fn seed_race_rebind_during_the_checks_is_never_moved() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    let slot = Arc::new(Mutex::new(None));
    let rebind = rebind_at(ReapStep::Checked, slot.clone());
    let renamed = Arc::new(Mutex::new(false));
    let seen = renamed.clone();
    let hook: ReapHook = Arc::new(move |step, path, staged| {
        rebind(step, path, staged);
        if step == ReapStep::AfterRename {
            *seen.lock().unwrap() = true;
        }
    });
    assert_eq!(
        reap(&path, id, Some(&hook)),
        ReapOutcome::Skipped(SkipReason::IdentityChanged)
    );
    assert!(!*renamed.lock().unwrap(), "nothing was moved aside");
    assert_serves(&path, slot.lock().unwrap().as_ref().unwrap());
    no_debris(dir.path());
}

#[test]
fn seed_race_rebind_after_rename_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    let slot = Arc::new(Mutex::new(None));
    let hook = rebind_at(ReapStep::AfterRename, slot.clone());
    // The dead file was already aside: it is reaped, and the new socket is untouched.
    assert_eq!(reap(&path, id, Some(&hook)), ReapOutcome::Reaped);
    assert_serves(&path, slot.lock().unwrap().as_ref().unwrap());
    no_debris(dir.path());
}

#[test]
fn seed_race_rebind_before_unlink_survives() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    let slot = Arc::new(Mutex::new(None));
    let hook = rebind_at(ReapStep::BeforeUnlink, slot.clone());
    assert_eq!(reap(&path, id, Some(&hook)), ReapOutcome::Reaped);
    assert_serves(&path, slot.lock().unwrap().as_ref().unwrap());
    no_debris(dir.path());
}

#[test]
fn seed_race_cooperative_owner_cannot_bind_while_we_hold_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    std::fs::write(lock_path(&path), b"").unwrap();
    let result = Arc::new(Mutex::new(None));
    let r = result.clone();
    let hook: ReapHook = Arc::new(move |step, path, _| {
        if step == ReapStep::BeforeRename {
            let opts = BindOptions {
                lock_wait: std::time::Duration::ZERO,
                ..BindOptions::default()
            };
            *r.lock().unwrap() = Some(
                OwnedSocket::bind(path, &opts)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
            );
        }
    });
    assert_eq!(reap(&path, id, Some(&hook)), ReapOutcome::Reaped);
    let bind = result.lock().unwrap().take().unwrap();
    assert!(
        bind.unwrap_err().contains("owned by another"),
        "the owner waits for our lock"
    );
    // Once we are done the owner binds normally.
    let owned = OwnedSocket::bind(&path, &BindOptions::default()).unwrap();
    assert_eq!(connect_probe(owned.path()), ConnectOutcome::Connected);
}

#[test]
fn enoent_at_every_step_is_success_not_warning() {
    for at in [
        ReapStep::Checked,
        ReapStep::BeforeRename,
        ReapStep::AfterRename,
        ReapStep::BeforeUnlink,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rpc.sock");
        let id = dead_socket(&path);
        let hook: ReapHook = Arc::new(move |step, path, staged| {
            if step == at {
                let victim = if matches!(step, ReapStep::Checked | ReapStep::BeforeRename) {
                    path
                } else {
                    staged
                };
                std::fs::remove_file(victim).unwrap();
            }
        });
        let outcome = reap(&path, id, Some(&hook));
        assert_eq!(outcome, ReapOutcome::AlreadyGone, "{at:?}");
        no_debris(dir.path());
    }
}

#[test]
fn vanished_before_the_checks_is_success() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(reap(&path, id, None), ReapOutcome::AlreadyGone);
    assert_eq!(
        reap(&dir.path().join("gone/rpc.sock"), id, None),
        ReapOutcome::AlreadyGone
    );
}

#[test]
fn never_touches_files_symlinks_or_their_targets() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("live.sock");
    let _live = UnixListener::bind(&target).unwrap();
    let file = dir.path().join("x.sock");
    std::fs::write(&file, b"data").unwrap();
    let link = dir.path().join("link.sock");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    for p in [&file, &link] {
        let id = stat_nofollow(p).unwrap().identity;
        assert_eq!(
            reap(p, id, None),
            ReapOutcome::Skipped(SkipReason::IdentityChanged)
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"data");
    assert!(stat_nofollow(&link).is_ok());
    assert_eq!(connect_probe(&target), ConnectOutcome::Connected);
}

#[test]
fn lock_file_that_is_a_symlink_blocks_reaping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    std::os::unix::fs::symlink("/dev/null", lock_path(&path)).unwrap();
    assert!(
        matches!(reap(&path, id, None), ReapOutcome::LockFailed(why) if why.contains("symbolic links"))
    );
    assert!(stat_nofollow(&path).is_ok());
}

/// A name no running reaper has: pid 4194304 is above Linux's pid_max limit.
fn orphan_name(name: &str) -> String {
    format!(".{name}.reap-4194304-7")
}

#[test]
fn half_done_reaps_are_finished_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    // A dead socket left aside: removed.
    let dead = dir.path().join("admin.sock");
    dead_socket(&dead);
    let dead_staged = dir.path().join(orphan_name("admin.sock"));
    std::fs::rename(&dead, &dead_staged).unwrap();
    // A live socket left aside (the crash hit before the restore): put back, still serving.
    let live = dir.path().join("rpc.sock");
    let listener = UnixListener::bind(&live).unwrap();
    std::fs::rename(&live, dir.path().join(orphan_name("rpc.sock"))).unwrap();
    // A socket between bind and listen left aside: put back.
    let starting = dir.path().join("web_a.sock");
    let fd = bound_not_listening(&starting);
    std::fs::rename(&starting, dir.path().join(orphan_name("web_a.sock"))).unwrap();
    // Not ours to judge: a regular file with a staged-looking name, and a running reaper's file.
    let file = dir.path().join(orphan_name("x.sock"));
    std::fs::write(&file, b"keep").unwrap();
    let busy_reaper = dir.path().join(format!(
        ".y.sock.reap-{}-1",
        std::os::unix::process::parent_id()
    ));
    dead_socket(&busy_reaper);

    let mut got = recover_staged(dir.path());
    got.sort_by_key(|r| format!("{r:?}"));
    assert!(
        got.contains(&Recovered::Removed(dead_staged.clone())),
        "{got:?}"
    );
    assert!(got.contains(&Recovered::Restored(live.clone())), "{got:?}");
    assert!(
        got.contains(&Recovered::Restored(starting.clone())),
        "{got:?}"
    );
    assert!(
        got.contains(&Recovered::Kept(file.clone(), "not a socket")),
        "{got:?}"
    );
    assert!(
        got.contains(&Recovered::Kept(
            busy_reaper.clone(),
            "reaper still running"
        )),
        "{got:?}"
    );
    assert!(!dead_staged.exists());
    assert_serves(&live, &listener);
    listen(&fd, 4).unwrap();
    assert_eq!(connect_probe(&starting), ConnectOutcome::Connected);
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
}

#[test]
fn staged_names() {
    assert_eq!(
        parse_staged(".rpc.sock.reap-12-0"),
        Some(("rpc.sock".into(), 12))
    );
    assert_eq!(
        parse_staged(".a.b.sock.reap-1-22"),
        Some(("a.b.sock".into(), 1))
    );
    for bad in [
        "rpc.sock.reap-1-0",
        ".rpc.sock.reap-x-0",
        ".rpc.sock.reap-1-",
        ".rpc.reap-1-0",
        ".rpc.sock.reap-1-0a",
        ".rpc.sock",
    ] {
        assert_eq!(parse_staged(bad), None, "{bad}");
    }
}

/// A lock file that cannot be opened (a directory, a symlink out of the root) keeps the socket
/// and says why: the operator sees the lock's path and the error, not an empty detail.
#[test]
fn an_unusable_lock_keeps_the_socket_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rpc.sock");
    let id = dead_socket(&path);
    std::fs::create_dir(lock_path(&path)).unwrap();
    match reap(&path, id, None) {
        ReapOutcome::LockFailed(why) => {
            assert!(why.contains("rpc.sock.lock"), "{why}");
            assert!(
                why.len() > "lock ".len() + lock_path(&path).as_os_str().len() + 2,
                "{why}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(stat_nofollow(&path).unwrap().identity, id);
}
