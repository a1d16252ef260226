use std::collections::HashMap;

use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn no_tcp_drops_every_listener() {
    let cli = Cli::try_parse_from([
        "hero_router",
        "serve",
        "--listen",
        "127.0.0.1:1",
        "--no-tcp",
        "--no-reap",
    ])
    .unwrap();
    let Command::Serve(args) = cli.command else {
        panic!()
    };
    let cfg = Config::resolve(Some("/r".into()), &args, &env(&[])).unwrap();
    assert!(cfg.listen.is_empty());
    assert!(cfg.admin_listen.is_empty(), "the admin listener is TCP too");
    assert!(!cfg.scanner.reap.enabled);
}
