use super::*;

fn doc(text: &str) -> Fetched {
    Fetched {
        manifest: ManifestFetch::Info(ManifestInfo::default()),
        spec: SpecFetch::Document(serde_json::from_str(text).unwrap()),
    }
}

const VALID: &str = r#"{"openrpc":"1.3.2","info":{"title":"Demo","version":"1.0.0"},"methods":[{"name":"b","summary":"B","params":[],"result":{"name":"r","schema":{}}},{"name":"a","params":[],"result":{"name":"r","schema":{}}}]}"#;

#[test]
fn a_valid_document_gives_its_methods_info_and_fingerprint() {
    let e = entry(doc(VALID), None, 7);
    assert_eq!(e.spec.state, SpecState::Ok, "{:?}", e.spec.reason);
    assert_eq!(e.spec.openrpc.as_deref(), Some("1.3.2"));
    assert_eq!(e.spec.fetched_unix_ms, Some(7));
    assert_eq!(
        e.spec.fingerprint.as_deref(),
        Some(fingerprint(VALID).as_str())
    );
    assert_eq!(e.info.title.as_deref(), Some("Demo"));
    let names: Vec<_> = e.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["b", "a"]);
    assert_eq!(e.methods[0].summary.as_deref(), Some("B"));
}

/// A method given as a `$ref` counts as the method it points at (the docs, clients and MCP
/// read it so), once however many point at it; one whose chain dangles or loops has no name
/// to count.
#[test]
fn a_method_given_as_a_ref_is_counted_as_its_target() {
    let text = r##"{"openrpc":"1.3.2","info":{"title":"T","version":"1"},
        "methods":[{"name":"a","params":[],"result":{"name":"r","schema":{}}},
                   {"$ref":"#/components/x-methods/alias"},
                   {"$ref":"#/components/x-methods/nowhere"},
                   {"$ref":"#/components/x-methods/viaref"},
                   {"$ref":"#/components/x-methods/loop"}],
        "components":{"x-methods":{
            "alias":{"$ref":"#/components/x-methods/viaref"},
            "viaref":{"name":"viaref","summary":"By reference","params":[],"result":{"name":"r","schema":{}}},
            "loop":{"$ref":"#/components/x-methods/loop"}}}}"##;
    let e = entry(doc(text), None, 1);
    let names: Vec<_> = e.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "viaref"]);
    assert_eq!(e.methods[1].summary.as_deref(), Some("By reference"));
}

#[test]
fn the_same_document_keeps_the_previous_entry_and_a_new_one_replaces_it() {
    let first = entry(doc(VALID), None, 1);
    let again = entry(doc(VALID), Some(&first), 2);
    assert!(Arc::ptr_eq(
        first.document.as_ref().unwrap(),
        again.document.as_ref().unwrap()
    ));
    assert_eq!(again.spec.fetched_unix_ms, Some(2));
    let changed = VALID.replace("\"b\"", "\"c\"");
    let new = entry(doc(&changed), Some(&first), 3);
    assert_ne!(new.spec.fingerprint, first.spec.fingerprint);
    assert_eq!(new.methods[0].name, "c");
}

#[test]
fn an_invalid_document_is_kept_with_its_reason() {
    let e = entry(doc(r#"{"openrpc":"1.3.2","methods":{}}"#), None, 1);
    assert_eq!(e.spec.state, SpecState::Invalid);
    assert!(e.document.is_some(), "kept, so a person can read it");
    assert!(e.spec.reason.is_some());
}

#[test]
fn a_dangling_ref_makes_a_valid_looking_document_invalid() {
    let text = VALID.replace(
        r#""schema":{}}},{"name":"a""#,
        r##""schema":{"$ref":"#/components/schemas/Nope"}}},{"name":"a""##,
    );
    let e = entry(doc(&text), None, 1);
    assert_eq!(e.spec.state, SpecState::Invalid);
    assert!(
        e.spec
            .reason
            .as_deref()
            .unwrap()
            .contains("#/components/schemas/Nope"),
        "{:?}",
        e.spec.reason
    );
}

#[test]
fn absent_and_failed_specs_say_why() {
    let absent = entry(
        Fetched {
            manifest: ManifestFetch::Unusable("the manifest is not a JSON object".into()),
            spec: SpecFetch::Absent("none".into()),
        },
        None,
        1,
    );
    assert_eq!(absent.spec.state, SpecState::Absent);
    assert_eq!(absent.spec.reason.as_deref(), Some("none"));
    assert_eq!(
        absent.manifest_error.as_deref(),
        Some("the manifest is not a JSON object")
    );
    let failed = entry(
        Fetched {
            manifest: ManifestFetch::Info(ManifestInfo::default()),
            spec: SpecFetch::Error("x".repeat(10_000)),
        },
        None,
        1,
    );
    assert_eq!(failed.spec.state, SpecState::Error);
    assert!(
        failed.spec.reason.unwrap().len() <= MAX_REASON + 3,
        "bounded"
    );
}

#[test]
fn a_failed_fetch_keeps_the_last_good_document_as_stale() {
    let good = entry(doc(VALID), None, 1);
    let failed = |prev: &CatalogEntry, at| {
        entry(
            Fetched {
                manifest: ManifestFetch::Failed("GET /.well-known/heroservice.json: no".into()),
                spec: SpecFetch::Error("GET /openrpc.json: closed".into()),
            },
            Some(prev),
            at,
        )
    };
    let stale = failed(&good, 2);
    assert_eq!(stale.spec.state, SpecState::Stale);
    assert_eq!(
        stale.spec.reason.as_deref(),
        Some("GET /openrpc.json: closed")
    );
    assert_eq!(stale.spec.fetched_unix_ms, Some(1), "the last success");
    assert_eq!(stale.spec.fingerprint, good.spec.fingerprint);
    assert!(Arc::ptr_eq(
        good.document.as_ref().unwrap(),
        stale.document.as_ref().unwrap()
    ));
    assert_eq!(stale.methods, good.methods);
    assert_eq!(stale.info, good.info);
    // Failing again keeps it, still dated by the last success.
    let still = failed(&stale, 3);
    assert_eq!(still.spec.state, SpecState::Stale);
    assert_eq!(still.spec.fetched_unix_ms, Some(1));
    // The same document again: fresh, and valid as before.
    let back = entry(doc(VALID), Some(&still), 4);
    assert_eq!(back.spec.state, SpecState::Ok, "{:?}", back.spec.reason);
    assert_eq!(back.spec.reason, None);
    assert_eq!(back.spec.fetched_unix_ms, Some(4));
    // An invalid document that goes stale and comes back is invalid again.
    let bad = entry(doc(r#"{"openrpc":"1.3.2","methods":{}}"#), None, 5);
    let back = entry(
        doc(r#"{"openrpc":"1.3.2","methods":{}}"#),
        Some(&failed(&bad, 6)),
        7,
    );
    assert_eq!(back.spec.state, SpecState::Invalid);
    assert!(back.spec.reason.is_some());
    // Without an earlier document a failure is an error; an answer saying "no spec" is
    // believed at once.
    let errored = entry(
        Fetched {
            manifest: ManifestFetch::Info(ManifestInfo::default()),
            spec: SpecFetch::Error("refused".into()),
        },
        None,
        1,
    );
    let none = failed(&errored, 2);
    assert_eq!(none.spec.state, SpecState::Error);
    assert!(none.document.is_none());
    assert_eq!(none.spec.fetched_unix_ms, Some(2));
    let absent = entry(
        Fetched {
            manifest: ManifestFetch::Info(ManifestInfo::default()),
            spec: SpecFetch::Absent("none".into()),
        },
        Some(&good),
        8,
    );
    assert_eq!(absent.spec.state, SpecState::Absent);
    assert!(absent.document.is_none());
}

#[test]
fn a_manifest_that_cannot_be_fetched_keeps_the_last_one() {
    let mut first = entry(doc(VALID), None, 1);
    first.manifest.title = Some("Shown".into());
    let again = entry(
        Fetched {
            manifest: ManifestFetch::Failed("timeout".into()),
            spec: SpecFetch::Document(serde_json::from_str(VALID).unwrap()),
        },
        Some(&first),
        2,
    );
    assert_eq!(again.manifest.title.as_deref(), Some("Shown"));
    assert_eq!(again.manifest_error.as_deref(), Some("timeout"));
    let unusable = entry(
        Fetched {
            manifest: ManifestFetch::Unusable("answered 404".into()),
            spec: SpecFetch::Document(serde_json::from_str(VALID).unwrap()),
        },
        Some(&first),
        3,
    );
    assert_eq!(unusable.manifest.title, None, "an answer is believed");
}

#[test]
fn the_own_entry_is_what_fetching_and_validating_a_valid_document_gives() {
    let manifest = serde_json::json!({"title": "Own", "version": "1"});
    let own = own_entry(VALID, &manifest, 5);
    let fetched = entry(
        Fetched {
            manifest: ManifestFetch::Info(info_of(&manifest)),
            spec: SpecFetch::Document(RawValue::from_string(VALID.to_owned()).unwrap()),
        },
        None,
        5,
    );
    assert_eq!(
        fetched.spec.state,
        SpecState::Ok,
        "{:?}",
        fetched.spec.reason
    );
    assert_eq!(own.spec, fetched.spec);
    assert_eq!(own.methods, fetched.methods);
    assert_eq!(
        (&own.manifest, &own.info),
        (&fetched.manifest, &fetched.info)
    );
    assert_eq!(own.methods.len(), 2);
}

#[test]
fn fingerprints_are_sha256_hex() {
    assert_eq!(
        fingerprint(""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

/// "Not JSON" says where the parser stopped, and what the bytes look like when that explains
/// it: a byte-order mark, or gzip the router did not ask for; a number past a float's range
/// is not called "not JSON".
#[test]
fn not_json_says_where_and_names_a_bom_or_gzip() {
    let reason = |body: &[u8]| {
        let e = serde_json::from_slice::<Value>(body).unwrap_err();
        not_json("GET /openrpc.json", body, &e)
    };
    let plain = reason(b"{\"openrpc\":\n 1.3.2}");
    assert!(
        plain.starts_with("GET /openrpc.json answered something that is not JSON: ")
            && plain.ends_with(" at line 2 column 5"),
        "{plain}"
    );
    assert!(
        reason(b"\xEF\xBB\xBF{}")
            .ends_with("(it starts with a UTF-8 byte-order mark, which JSON does not allow)")
    );
    assert!(
        reason(&[0x1f, 0x8b, 8, 0])
            .ends_with("(it is gzip-compressed, which the router did not ask for)")
    );
    // Valid JSON with a number no float holds is not called "not JSON".
    let huge = reason(b"{\"x\": 1e400}");
    assert!(
        huge.starts_with("GET /openrpc.json answered JSON with a number the router cannot hold"),
        "{huge}"
    );
}

/// A document is kept up to `validate::MAX_DEPTH` levels; a deeper one is a failed fetch that
/// names the request.
#[test]
fn documents_deeper_than_the_limit_are_a_failed_fetch() {
    let nested = |levels: usize| {
        let text = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
        serde_json::value::RawValue::from_string(text).unwrap()
    };
    assert!(matches!(
        document("rpc.discover", nested(validate::MAX_DEPTH)),
        SpecFetch::Document(_)
    ));
    match document("rpc.discover", nested(validate::MAX_DEPTH + 1)) {
        SpecFetch::Error(why) => assert_eq!(
            why,
            format!(
                "rpc.discover answered a document nested deeper than {} levels",
                validate::MAX_DEPTH
            )
        ),
        other => panic!("{other:?}"),
    }
}

/// A document serde_json cannot hold (a number out of range) says so, and keeps the last good
/// document like any failed fetch (it used to say "nested too deeply" and drop it).
#[test]
fn an_unreadable_document_says_why_and_keeps_the_last_good_one() {
    let huge = VALID.replacen(r#""schema":{}"#, r#""schema":{"enum":[1e400]}"#, 1);
    assert_ne!(huge, VALID);
    let alone = entry(doc(&huge), None, 1);
    assert_eq!(alone.spec.state, SpecState::Error);
    let why = alone.spec.reason.as_deref().unwrap();
    assert!(
        why.starts_with("the document cannot be read: number out of range"),
        "{why}"
    );
    let good = entry(doc(VALID), None, 1);
    let kept = entry(doc(&huge), Some(&good), 2);
    assert_eq!(kept.spec.state, SpecState::Stale);
    assert_eq!(kept.spec.fingerprint, good.spec.fingerprint);
    assert!(kept.document.is_some());
}

/// A blank `title` (or version, description) in a manifest is no title: the spec's shows
/// instead, in `list` as in the docs.
#[test]
fn a_blank_manifest_field_is_none() {
    let info =
        info_of(&serde_json::json!({"title": " \u{7}\t", "version": "", "description": "d"}));
    assert_eq!(info.title, None);
    assert_eq!(info.version, None);
    assert_eq!(info.description.as_deref(), Some("d"));
}
