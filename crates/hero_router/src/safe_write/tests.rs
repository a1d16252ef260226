use super::*;
use std::os::unix::fs::symlink;

#[test]
fn a_symlink_at_the_target_is_replaced_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, "keep me\n").unwrap();
    let target = dir.path().join("calc.md");
    symlink(&victim, &target).unwrap();

    write(&target, b"# page\n").unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "keep me\n");
    let meta = fs::symlink_metadata(&target).unwrap();
    assert!(meta.is_file(), "a regular file now: {meta:?}");
    assert_eq!(meta.permissions().mode() & 0o7777, NEW_FILE_MODE);
    assert_eq!(fs::read_to_string(&target).unwrap(), "# page\n");
}

#[test]
fn a_dangling_symlink_at_the_target_creates_nothing_outside() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let nowhere = outside.path().join("created");
    let target = dir.path().join("index.md");
    symlink(&nowhere, &target).unwrap();
    write(&target, b"index\n").unwrap();
    assert!(!nowhere.exists(), "nothing made through the link");
    assert_eq!(fs::read_to_string(&target).unwrap(), "index\n");
}

#[test]
fn the_old_mode_is_kept_and_no_temporary_file_stays() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("access.txt");
    fs::write(&target, "old\n").unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
    write(&target, b"new\n").unwrap();
    let meta = fs::metadata(&target).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(fs::read_to_string(&target).unwrap(), "new\n");
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["access.txt"]);
}

#[test]
fn a_failed_write_leaves_the_target_alone() {
    let dir = tempfile::tempdir().unwrap();
    // A directory at the target name: the rename fails, the temporary file goes.
    let target = dir.path().join("page.md");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("inside"), "x").unwrap();
    assert!(write(&target, b"page\n").is_err());
    assert!(target.join("inside").is_file());
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["page.md"]);
}
