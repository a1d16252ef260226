//! Safe names for generated code (docs/clients.md#names): whatever a spec calls a method,
//! a param or a schema, the generated name is an ASCII identifier of the target language,
//! in its case style, that is not a keyword or a name the generated code itself uses, and
//! that no other name of the same scope maps to.
//!
//! Deterministic: the same names in the same order always map the same way. Words are split
//! at anything that is not an ASCII letter or digit and at case changes (`getHTTPResponse` →
//! `get`, `http`, `response`); a non-ASCII character is a word of its own, `u` and its code
//! point (`größe` → `gr_u00f6_u00df_e`); a name that starts with a digit gets a prefix
//! (`n_`, `n`, `T`); an empty one becomes the scope's fallback (`method`, `param`…); a
//! keyword or reserved name gets `_` appended; and a name already taken in the scope gets
//! `_2`, `_3`… (the first taker keeps the plain name).

use std::collections::HashSet;

/// Python's keywords (`keyword.kwlist`) and soft keywords (`keyword.softkwlist`).
pub(crate) const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield", "_", "case", "match", "type",
];

/// Names the generated Python module uses itself: a method, param or type of the same name
/// would shadow them where the generated code reads them (the builtins in annotations, the
/// typing names, the module's own classes and the client's own methods).
pub(crate) const PYTHON_USED: &[&str] = &[
    "self",
    "cls",
    "cast",
    "int",
    "float",
    "str",
    "bool",
    "list",
    "dict",
    "object",
    "bytes",
    "Any",
    "Literal",
    "NoReturn",
    "Optional",
    "TypeAlias",
    "TypedDict",
    "Callable",
    "Exception",
    "OSError",
    "ValueError",
    "itertools",
    "asyncio",
    "json",
    "socket",
    "http",
    "urllib",
    "Client",
    "AsyncClient",
    "RpcError",
    "TransportError",
    "tcp",
    "unix",
    "close",
    "timeout",
    "base_url",
    "path",
];

/// TypeScript's reserved words (ECMAScript's, strict mode's and TypeScript's own type
/// keywords).
pub(crate) const TS_KEYWORDS: &[&str] = &[
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "implements",
    "interface",
    "let",
    "package",
    "private",
    "protected",
    "public",
    "static",
    "yield",
    "await",
    "async",
    "any",
    "unknown",
    "never",
    "boolean",
    "number",
    "string",
    "symbol",
    "bigint",
    "object",
    "undefined",
    "type",
    "declare",
    "namespace",
    "module",
    "as",
    "is",
    "keyof",
    "readonly",
    "infer",
    "of",
    "get",
    "set",
    "constructor",
    "arguments",
    "eval",
];

/// Names the generated TypeScript module uses itself: the global types and values it
/// names, its own classes, and the client's own members.
pub(crate) const TS_USED: &[&str] = &[
    "Array",
    "Record",
    "Promise",
    "Error",
    "Object",
    "JSON",
    "String",
    "Number",
    "Boolean",
    "Symbol",
    "Date",
    "Map",
    "Set",
    "Function",
    "Response",
    "fetch",
    "Client",
    "RpcError",
    "TransportError",
    "baseUrl",
    "params",
    "call",
    "own",
    "named",
    "positional",
    // A method of this name would make the client a thenable: `await` on it never ends.
    "then",
];

/// What every JavaScript object has (`Object.prototype`'s members). A client method of such
/// a name would break the object (its conversion to a string, say); a params object cannot
/// take such a key as written (`{ toString?: string }` refuses `{ valueOf: "x" }` under
/// `tsc --strict`, and `{ __proto__: "x" }` sets a prototype), so a param gets `_` appended.
pub(crate) const OBJECT_MEMBERS: &[&str] = &[
    "constructor",
    "toString",
    "toLocaleString",
    "valueOf",
    "hasOwnProperty",
    "isPrototypeOf",
    "propertyIsEnumerable",
    "__proto__",
    "__defineGetter__",
    "__defineSetter__",
    "__lookupGetter__",
    "__lookupSetter__",
];

/// A case style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Case {
    /// `snake_case` (Python methods and params).
    Snake,
    /// `camelCase` (TypeScript methods).
    Camel,
    /// `PascalCase` (types in both languages).
    Pascal,
}

/// One scope of names: every name it hands out is unique in it.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    case: Case,
    fallback: &'static str,
    reserved: HashSet<String>,
    taken: HashSet<String>,
}

/// The words of `name`: ASCII letters and digits, split at everything else and at case
/// changes; a non-ASCII character is the word `u{hex code point}`. Lowercase.
pub(crate) fn words(name: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let chars: Vec<char> = name.chars().collect();
    let flush = |word: &mut String, words: &mut Vec<String>| {
        if !word.is_empty() {
            words.push(std::mem::take(word).to_ascii_lowercase());
        }
    };
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii() {
            flush(&mut word, &mut words);
            words.push(format!("u{:04x}", c as u32));
            continue;
        }
        if !c.is_ascii_alphanumeric() {
            flush(&mut word, &mut words);
            continue;
        }
        if c.is_ascii_uppercase() && !word.is_empty() {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            // `fooBar` splits before `B`; `HTTPServer` before `S` (the last capital of a run
            // that a lowercase letter follows); `v2X` before `X`.
            if prev.is_ascii_lowercase()
                || prev.is_ascii_digit()
                || (prev.is_ascii_uppercase() && next_lower)
            {
                flush(&mut word, &mut words);
            }
        }
        word.push(c);
    }
    flush(&mut word, &mut words);
    words
}

/// `name` in `case`, before keywords and duplicates are considered; `fallback` when it has
/// no words.
pub(crate) fn convert(name: &str, case: Case, fallback: &str) -> String {
    let words = words(name);
    if words.is_empty() {
        return fallback.to_owned();
    }
    let capital = |w: &str| {
        let mut c = w.chars();
        match c.next() {
            Some(first) => first.to_ascii_uppercase().to_string() + c.as_str(),
            None => String::new(),
        }
    };
    let out = match case {
        Case::Snake => words.join("_"),
        Case::Camel => {
            let mut out = words[0].clone();
            for w in &words[1..] {
                out.push_str(&capital(w));
            }
            out
        }
        Case::Pascal => words.iter().map(|w| capital(w)).collect(),
    };
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        let prefix = match case {
            Case::Snake => "n_",
            Case::Camel => "n",
            Case::Pascal => "T",
        };
        return format!("{prefix}{out}");
    }
    out
}

// === impl Scope ===

impl Scope {
    /// A scope whose names are in `case`, never one of `reserved` (those get `_` appended),
    /// and `fallback` for a name without letters or digits.
    pub(crate) fn new(case: Case, fallback: &'static str, reserved: &[&[&str]]) -> Scope {
        Scope {
            case,
            fallback,
            reserved: reserved
                .iter()
                .flat_map(|r| r.iter())
                .map(|s| (*s).to_owned())
                .collect(),
            taken: HashSet::new(),
        }
    }

    /// A fresh safe name for `name`.
    pub(crate) fn name(&mut self, name: &str) -> String {
        let mut base = convert(name, self.case, self.fallback);
        if self.reserved.contains(&base) {
            base.push('_');
        }
        let mut candidate = base.clone();
        let mut n = 2;
        while self.taken.contains(&candidate) || self.reserved.contains(&candidate) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(candidate.clone());
        candidate
    }
}

/// True if `name` is safe in a scope with `reserved` names: an ASCII identifier that does
/// not start with a digit and is not reserved. What every generated name is.
#[cfg(test)]
pub(crate) fn is_safe(name: &str, reserved: &[&[&str]]) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !reserved.iter().any(|r| r.contains(&name))
}

#[cfg(test)]
mod tests;
/// Every top-level module of CPython's standard library, 3.10 to 3.14 (`sys.stdlib_module_names`
/// of 3.11, plus what 3.12–3.14 added). A client module of one of these names would shadow it for
/// everything the client imports, directly or not (`http.client` loads `email`), so its file
/// gets `_client` appended. `tests/clients.rs` checks the list against the Python it runs.
pub(crate) const PYTHON_STDLIB: &[&str] = &[
    "__future__",
    "_abc",
    "_aix_support",
    "_android_support",
    "_apple_support",
    "_ast",
    "_asyncio",
    "_bisect",
    "_blake2",
    "_bootsubprocess",
    "_bz2",
    "_codecs",
    "_codecs_cn",
    "_codecs_hk",
    "_codecs_iso2022",
    "_codecs_jp",
    "_codecs_kr",
    "_codecs_tw",
    "_collections",
    "_collections_abc",
    "_colorize",
    "_compat_pickle",
    "_compression",
    "_contextvars",
    "_crypt",
    "_csv",
    "_ctypes",
    "_curses",
    "_curses_panel",
    "_datetime",
    "_dbm",
    "_decimal",
    "_elementtree",
    "_frozen_importlib",
    "_frozen_importlib_external",
    "_functools",
    "_gdbm",
    "_hashlib",
    "_heapq",
    "_hmac",
    "_imp",
    "_interpchannels",
    "_interpqueues",
    "_interpreters",
    "_io",
    "_ios_support",
    "_json",
    "_locale",
    "_lsprof",
    "_lzma",
    "_markupbase",
    "_md5",
    "_msi",
    "_multibytecodec",
    "_multiprocessing",
    "_opcode",
    "_opcode_metadata",
    "_operator",
    "_osx_support",
    "_overlapped",
    "_pickle",
    "_posixshmem",
    "_posixsubprocess",
    "_py_abc",
    "_pydecimal",
    "_pyio",
    "_pylong",
    "_pyrepl",
    "_queue",
    "_random",
    "_remote_debugging",
    "_scproxy",
    "_sha1",
    "_sha2",
    "_sha256",
    "_sha3",
    "_sha512",
    "_signal",
    "_sitebuiltins",
    "_socket",
    "_sqlite3",
    "_sre",
    "_ssl",
    "_stat",
    "_statistics",
    "_string",
    "_strptime",
    "_struct",
    "_suggestions",
    "_symtable",
    "_sysconfig",
    "_thread",
    "_threading_local",
    "_tkinter",
    "_tokenize",
    "_tracemalloc",
    "_types",
    "_typing",
    "_uuid",
    "_warnings",
    "_weakref",
    "_weakrefset",
    "_winapi",
    "_wmi",
    "_zoneinfo",
    "_zstd",
    "abc",
    "aifc",
    "annotationlib",
    "antigravity",
    "argparse",
    "array",
    "ast",
    "asynchat",
    "asyncio",
    "asyncore",
    "atexit",
    "audioop",
    "base64",
    "bdb",
    "binascii",
    "bisect",
    "builtins",
    "bz2",
    "cProfile",
    "calendar",
    "cgi",
    "cgitb",
    "chunk",
    "cmath",
    "cmd",
    "code",
    "codecs",
    "codeop",
    "collections",
    "colorsys",
    "compileall",
    "compression",
    "concurrent",
    "configparser",
    "contextlib",
    "contextvars",
    "copy",
    "copyreg",
    "crypt",
    "csv",
    "ctypes",
    "curses",
    "dataclasses",
    "datetime",
    "dbm",
    "decimal",
    "difflib",
    "dis",
    "distutils",
    "doctest",
    "email",
    "encodings",
    "ensurepip",
    "enum",
    "errno",
    "faulthandler",
    "fcntl",
    "filecmp",
    "fileinput",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gc",
    "genericpath",
    "getopt",
    "getpass",
    "gettext",
    "glob",
    "graphlib",
    "grp",
    "gzip",
    "hashlib",
    "heapq",
    "hmac",
    "html",
    "http",
    "idlelib",
    "imaplib",
    "imghdr",
    "imp",
    "importlib",
    "inspect",
    "io",
    "ipaddress",
    "itertools",
    "json",
    "keyword",
    "lib2to3",
    "linecache",
    "locale",
    "logging",
    "lzma",
    "mailbox",
    "mailcap",
    "marshal",
    "math",
    "mimetypes",
    "mmap",
    "modulefinder",
    "msilib",
    "msvcrt",
    "multiprocessing",
    "netrc",
    "nis",
    "nntplib",
    "nt",
    "ntpath",
    "nturl2path",
    "numbers",
    "opcode",
    "operator",
    "optparse",
    "os",
    "ossaudiodev",
    "pathlib",
    "pdb",
    "pickle",
    "pickletools",
    "pipes",
    "pkgutil",
    "platform",
    "plistlib",
    "poplib",
    "posix",
    "posixpath",
    "pprint",
    "profile",
    "pstats",
    "pty",
    "pwd",
    "py_compile",
    "pyclbr",
    "pydoc",
    "pydoc_data",
    "pyexpat",
    "queue",
    "quopri",
    "random",
    "re",
    "readline",
    "reprlib",
    "resource",
    "rlcompleter",
    "runpy",
    "sched",
    "secrets",
    "select",
    "selectors",
    "shelve",
    "shlex",
    "shutil",
    "signal",
    "site",
    "smtpd",
    "smtplib",
    "sndhdr",
    "socket",
    "socketserver",
    "spwd",
    "sqlite3",
    "sre_compile",
    "sre_constants",
    "sre_parse",
    "ssl",
    "stat",
    "statistics",
    "string",
    "stringprep",
    "struct",
    "subprocess",
    "sunau",
    "symtable",
    "sys",
    "sysconfig",
    "syslog",
    "tabnanny",
    "tarfile",
    "telnetlib",
    "tempfile",
    "termios",
    "textwrap",
    "this",
    "threading",
    "time",
    "timeit",
    "tkinter",
    "token",
    "tokenize",
    "tomllib",
    "trace",
    "traceback",
    "tracemalloc",
    "tty",
    "turtle",
    "turtledemo",
    "types",
    "typing",
    "unicodedata",
    "unittest",
    "urllib",
    "uu",
    "uuid",
    "venv",
    "warnings",
    "wave",
    "weakref",
    "webbrowser",
    "winreg",
    "winsound",
    "wsgiref",
    "xdrlib",
    "xml",
    "xmlrpc",
    "zipapp",
    "zipfile",
    "zipimport",
    "zlib",
    "zoneinfo",
];
