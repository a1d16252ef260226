use super::*;

/// A directory gone since it was listed is no failure (a churning root gave 76 warnings
/// in half a second, each blaming inotify limits); the other failures say what to fix.
#[test]
fn a_vanished_directory_is_no_watch_failure_and_others_say_why() {
    let io = |code| notify::Error::io(std::io::Error::from_raw_os_error(code));
    assert!(watch_target_gone(&notify::Error::path_not_found()));
    assert!(watch_target_gone(&io(2))); // ENOENT
    assert!(watch_target_gone(&io(20))); // ENOTDIR
    for e in [
        io(28),
        io(13),
        notify::Error::new(notify::ErrorKind::MaxFilesWatch),
    ] {
        assert!(!watch_target_gone(&e), "{e}");
    }
    assert!(why_unwatched(&io(28)).contains("max_user_watches")); // ENOSPC
    assert!(
        why_unwatched(&notify::Error::new(notify::ErrorKind::MaxFilesWatch))
            .contains("max_user_watches")
    );
    assert_eq!(why_unwatched(&io(13)), "permission denied"); // EACCES
}
