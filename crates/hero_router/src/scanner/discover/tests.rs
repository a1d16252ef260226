use super::*;
use std::os::unix::ffi::OsStrExt;

#[test]
fn service_names() {
    for ok in ["a", "hero_proc", "A-1", "x".repeat(64).as_str(), "9lives"] {
        assert!(valid_service_name(ok), "{ok}");
    }
    for bad in [
        "",
        "_x",
        "-x",
        ".hidden",
        "a b",
        "a.b",
        "é",
        "x".repeat(65).as_str(),
        "..",
    ] {
        assert!(!valid_service_name(bad), "{bad}");
    }
}

#[test]
fn walk_classifies_entries() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir(r.join("svc")).unwrap();
    fs::write(r.join("svc/rpc.sock"), b"").unwrap();
    fs::write(r.join("svc/rpc.sock.lock"), b"").unwrap();
    fs::write(r.join("svc/.rpc.sock.reap-1-0"), b"").unwrap();
    fs::write(r.join("svc/.sock"), b"").unwrap();
    fs::write(r.join("svc/notes.txt"), b"").unwrap();
    fs::create_dir(r.join("svc/web_docs.sock")).unwrap();
    fs::create_dir(r.join("bad name")).unwrap();
    fs::write(r.join("plain"), b"").unwrap();
    std::os::unix::fs::symlink("/", r.join("link")).unwrap();
    let odd = r.join(std::ffi::OsStr::from_bytes(b"svc/\xffrpc.sock"));
    fs::write(&odd, b"").unwrap();

    let d = discover(r, None).unwrap();
    let kinds: Vec<_> = d.services["svc"].iter().map(String::as_str).collect();
    assert_eq!(kinds, ["rpc", "web_docs"]);
    assert_eq!(d.services.len(), 1);
    let reasons: Vec<_> = d.ignored.iter().map(|i| i.reason.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "invalid service name",
            "symlink (never followed)",
            "not a directory",
            "socket name is not UTF-8: never probed or reaped (rename it)",
        ]
    );
    // The odd byte written so that it can be typed back, not as U+FFFD.
    assert_eq!(
        d.ignored[3].path,
        format!("{}/svc/\\xFFrpc.sock", r.display())
    );
    assert_eq!(discover_service(r, "link").unwrap(), None);
    assert_eq!(discover_service(r, "gone").unwrap(), None);
}

#[test]
fn a_directory_that_vanishes_or_changes_mid_walk_costs_only_itself() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_path_buf();
    for name in ["a", "b", "c", "d"] {
        fs::create_dir(r.join(name)).unwrap();
        fs::write(r.join(name).join("rpc.sock"), b"").unwrap();
    }
    // Between reading the root and listing them: b vanishes, c becomes a file.
    let hook: ListHook = Arc::new(
        |dir: &Path| match dir.file_name().and_then(|n| n.to_str()) {
            Some("b") => fs::remove_dir_all(dir).unwrap(),
            Some("c") => {
                fs::remove_dir_all(dir).unwrap();
                fs::write(dir, b"").unwrap();
            }
            _ => {}
        },
    );
    let d = discover(&r, Some(&hook)).unwrap();
    let names: Vec<_> = d.services.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "d"]);
    assert_eq!(d.ignored.len(), 1);
    assert_eq!(d.ignored[0].reason, "not a directory");
    assert!(d.unlisted.is_empty());
}

#[test]
fn a_socket_path_is_what_a_walk_of_its_directory_names() {
    let mut buf = PathBuf::new();
    for root in ["/run/hero/sockets", "/run/hero/sockets/", "/", "rel/root"] {
        for (service, kind) in [("calc", "rpc"), ("a", "web_docs.v2"), ("hero_proc", "x")] {
            // One buffer for every path: a longer one written before must not leak into it.
            socket_path(&mut buf, Path::new(root), service, kind);
            let want = Path::new(root).join(service).join(format!("{kind}.sock"));
            assert_eq!(buf, want, "{root} {service} {kind}");
        }
    }
    // And what `read_dir` gives for the same file.
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("svc")).unwrap();
    fs::write(root.path().join("svc/web_x.sock"), b"").unwrap();
    let entry = fs::read_dir(root.path().join("svc"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    socket_path(&mut buf, root.path(), "svc", "web_x");
    assert_eq!(buf, entry.path());
}
