use super::*;

#[test]
fn a_second_lock_on_the_same_root_is_refused_whatever_path_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&root, &link).unwrap();
    let held = instance_lock(&root).unwrap();
    assert!(matches!(
        instance_lock(&link),
        Err(ServeError::AlreadyRunning { .. })
    ));
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let _other = instance_lock(&other).unwrap();
    drop(held);
    let _again = instance_lock(&root).unwrap();
}
