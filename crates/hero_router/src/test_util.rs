//! Helpers shared by the unit tests.

/// The property tests' case count (`HERO_FUZZ_CASES`, default 20,000; `make fuzz` sets
/// 1,000,000), a fresh seed (printed by the tests on failure) and its generator.
pub(crate) fn fuzz_setup() -> (usize, u64, fastrand::Rng) {
    let cases = std::env::var("HERO_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let seed = fastrand::u64(..);
    (cases, seed, fastrand::Rng::with_seed(seed))
}
