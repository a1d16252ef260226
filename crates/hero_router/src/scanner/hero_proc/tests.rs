use serde_json::json;

use super::*;

fn set(names: &[&str]) -> Option<BTreeSet<String>> {
    Some(names.iter().map(|s| s.to_string()).collect())
}

#[test]
fn accepts_every_plausible_shape() {
    let array = json!([{"name": "a", "state": "running"}, {"name": "b", "status": "Stopped"}, {"service": "c", "status": "starting"}]);
    assert_eq!(parse_running(&array), set(&["a", "c"]));
    let map = json!({"a": "running", "b": "exited", "c": {"status": "failed"}, "d": {"state": "degraded"}});
    assert_eq!(parse_running(&map), set(&["a", "d"]));
    assert_eq!(parse_running(&json!({"services": array})), set(&["a", "c"]));
    // A wrapper with more members (a count, a version) is still a wrapper.
    assert_eq!(
        parse_running(&json!({"services": array, "count": 3, "v": "1"})),
        set(&["a", "c"])
    );
    assert_eq!(
        parse_running(&json!({"services": map, "count": 4})),
        set(&["a", "d"])
    );
    // A service named `services`, in a map of names, is one service.
    assert_eq!(
        parse_running(&json!({"services": {"state": "running"}, "x": "stopped"})),
        set(&["services"])
    );
    assert_eq!(parse_running(&json!(["x", "y"])), set(&["x", "y"]));
    assert_eq!(parse_running(&json!([])), set(&[]));
}

#[test]
fn unknown_states_count_as_running() {
    assert_eq!(
        parse_running(&json!({"a": "weird_new_state", "b": {}})),
        set(&["a", "b"])
    );
}

#[test]
fn unusable_shapes_are_none() {
    assert_eq!(parse_running(&json!(42)), None);
    assert_eq!(parse_running(&json!("running")), None);
    assert_eq!(parse_running(&json!([{"state": "running"}])), None);
    assert_eq!(parse_running(&json!([1, 2])), None);
}

#[tokio::test]
async fn absent_hero_proc_is_unknown() {
    let root = tempfile::tempdir().unwrap();
    let r = running_services(root.path(), "service.list", Duration::from_millis(100)).await;
    assert!(matches!(r, Running::Unknown(_)));
}

/// A hero_proc that does not answer in time is unknown, in the guard's own words and limit
/// (not `--upstream-timeout`, which does not apply to it).
#[tokio::test]
async fn a_hero_proc_that_does_not_answer_names_the_guards_limit() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("hero_proc")).unwrap();
    // Listening, never answering.
    let _hung =
        std::os::unix::net::UnixListener::bind(root.path().join("hero_proc/rpc.sock")).unwrap();
    let r = running_services(root.path(), "service.list", Duration::from_millis(100)).await;
    assert_eq!(
        r,
        Running::Unknown(
            "hero_proc did not answer service.list within 100ms (the guard's limit)".into()
        )
    );
}
