//! Helpers shared by the unit tests.

/// The property tests' case count (`HERO_FUZZ_CASES`, default 20,000; `make fuzz` sets
/// 1,000,000), a seed (`HERO_FUZZ_SEED` to replay one, else fresh; the tests print it on
/// failure) and its generator.
pub(crate) fn fuzz_setup() -> (usize, u64, fastrand::Rng) {
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    let cases = env("HERO_FUZZ_CASES").map_or(20_000, |n: u64| n as usize);
    let seed = env("HERO_FUZZ_SEED").unwrap_or_else(|| fastrand::u64(..));
    (cases, seed, fastrand::Rng::with_seed(seed))
}
