//! Whether the local provider can run here, and one stack at a time.

/// Why the local provider cannot run here, if it cannot.
pub fn cannot_run() -> Option<String> {
    if let Some(why) = kyvtel::provider::local::confine::probe() {
        return Some(why);
    }
    let pins = kyvtel::scenario::pins::Pins::builtin();
    let env = match kyvtel::provider::local::build::GoEnv::detect(None) {
        Ok(e) => e,
        Err(e) => return Some(e),
    };
    let cold: Vec<String> = kyvtel::provider::local::build::targets(&pins)
        .into_iter()
        .filter(|t| !kyvtel::provider::local::build::is_warm(t, &env, &super::root()))
        .map(|t| t.name)
        .collect();
    (!cold.is_empty()).then(|| format!("components not built: {} (run `kyvtel tools build`)", cold.join(", ")))
}

/// One stack at a time: 2 cores, and timings that stay meaningful.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn skip_or_fail(test: &str) -> bool {
    let Some(why) = cannot_run() else { return false };
    if std::env::var("KYVTEL_REQUIRE_LIVE").is_ok_and(|v| v == "1")
        && !std::env::var("KYVTEL_SKIP_LOCAL").is_ok_and(|v| v == "1")
    {
        panic!("{test}: KYVTEL_REQUIRE_LIVE=1 and the local provider cannot run: {why}");
    }
    eprintln!("SKIPPED {test}: the local provider cannot run here: {why}");
    true
}
