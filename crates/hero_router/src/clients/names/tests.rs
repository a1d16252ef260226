use super::*;

const PY: &[&[&str]] = &[PYTHON_KEYWORDS, PYTHON_USED];
const TS: &[&[&str]] = &[TS_KEYWORDS, TS_USED, OBJECT_MEMBERS];

#[test]
fn words_split_at_case_changes_separators_and_non_ascii() {
    assert_eq!(words("getHTTPResponse"), ["get", "http", "response"]);
    assert_eq!(words("rpc.discover"), ["rpc", "discover"]);
    assert_eq!(words("sleep_ms"), ["sleep", "ms"]);
    assert_eq!(words("v2X"), ["v2", "x"]);
    assert_eq!(words("größe"), ["gr", "u00f6", "u00df", "e"]);
    assert_eq!(words("__"), Vec::<String>::new());
}

#[test]
fn conversions_per_case() {
    assert_eq!(convert("rpc.discover", Case::Snake, "m"), "rpc_discover");
    assert_eq!(convert("rpc.discover", Case::Camel, "m"), "rpcDiscover");
    assert_eq!(convert("rpc.discover", Case::Pascal, "m"), "RpcDiscover");
    assert_eq!(convert("2fa", Case::Snake, "m"), "n_2fa");
    assert_eq!(convert("2fa", Case::Camel, "m"), "n2fa");
    assert_eq!(convert("2fa", Case::Pascal, "m"), "T2fa");
    assert_eq!(convert("", Case::Snake, "method"), "method");
    assert_eq!(convert("...", Case::Pascal, "Type"), "Type");
}

#[test]
fn keywords_and_used_names_get_an_underscore() {
    let mut py = Scope::new(Case::Snake, "param", PY);
    assert_eq!(py.name("class"), "class_");
    assert_eq!(py.name("match"), "match_");
    assert_eq!(py.name("self"), "self_");
    assert_eq!(py.name("cast"), "cast_");
    let mut py_types = Scope::new(Case::Pascal, "Type", PY);
    assert_eq!(py_types.name("none"), "None_");
    assert_eq!(py_types.name("Client"), "Client_");
    let mut ts = Scope::new(Case::Camel, "method", TS);
    assert_eq!(ts.name("delete"), "delete_");
    assert_eq!(ts.name("constructor"), "constructor_");
    let mut ts_types = Scope::new(Case::Pascal, "Type", TS);
    assert_eq!(ts_types.name("Number"), "Number_");
    assert_eq!(ts_types.name("Promise"), "Promise_");
}

#[test]
fn duplicates_after_conversion_get_numbered_suffixes_in_order() {
    let mut s = Scope::new(Case::Snake, "method", PY);
    assert_eq!(s.name("getItem"), "get_item");
    assert_eq!(s.name("get_item"), "get_item_2");
    assert_eq!(s.name("GetItem"), "get_item_3");
    assert_eq!(s.name("get item"), "get_item_4");
    // A name that is already a suffixed one does not take another's place.
    assert_eq!(s.name("get_item_2"), "get_item_2_2");
    let mut t = Scope::new(Case::Pascal, "Type", TS);
    assert_eq!(t.name("Item"), "Item");
    assert_eq!(t.name("item"), "Item_2");
    assert_eq!(t.name("ITEM"), "Item_3");
}

/// Random names (ASCII punctuation, digits, keywords, non-ASCII, empty) in random scopes:
/// every generated name is a safe identifier of its language, unique in its scope, and the
/// same names always map the same way.
#[test]
fn every_generated_name_is_safe_unique_and_deterministic() {
    let (cases, seed, mut rng) = crate::test_util::fuzz_setup();
    let pieces: Vec<&str> = PYTHON_KEYWORDS
        .iter()
        .chain(TS_KEYWORDS)
        .chain(PYTHON_USED)
        .chain(TS_USED)
        .chain(OBJECT_MEMBERS)
        .copied()
        .chain([
            "a", "B", "x1", "1", "_", ".", "-", " ", "ß", "名", "é", "HTTP", "Get", "",
        ])
        .collect();
    let scopes: [(Case, &[&[&str]]); 5] = [
        (Case::Snake, PY),
        (Case::Pascal, PY),
        (Case::Camel, TS),
        (Case::Pascal, TS),
        (Case::Snake, &[]),
    ];
    for _ in 0..(cases / 100).max(100) {
        let n = rng.usize(1..12);
        let names: Vec<String> = (0..n)
            .map(|_| {
                (0..rng.usize(0..4))
                    .map(|_| pieces[rng.usize(..pieces.len())])
                    .collect()
            })
            .collect();
        for (case, reserved) in scopes {
            let run = || {
                let mut scope = Scope::new(case, "name", reserved);
                names.iter().map(|n| scope.name(n)).collect::<Vec<_>>()
            };
            let out = run();
            assert_eq!(out, run(), "seed {seed}: deterministic for {names:?}");
            let unique: HashSet<&String> = out.iter().collect();
            assert_eq!(
                unique.len(),
                out.len(),
                "seed {seed}: unique: {names:?} -> {out:?}"
            );
            for name in &out {
                assert!(
                    is_safe(name, reserved),
                    "seed {seed}: {name:?} (from {names:?}) is not a safe {case:?} name"
                );
            }
        }
    }
}
