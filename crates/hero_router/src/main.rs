//! The `hero_router` binary: the library's [`hero_router::commands::main`] does the work.

use std::process::ExitCode;

/// mimalloc: a proxied request makes a few dozen small allocations; glibc malloc showed up as
/// ~10 % of the router's CPU under load, mimalloc's thread-local free lists cut most of that.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    hero_router::commands::main()
}
