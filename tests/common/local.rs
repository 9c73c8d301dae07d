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

/// The listening TCP sockets (state `0A`, LISTEN) in `dir`'s `tcp` and `tcp6` tables (`/proc/net`,
/// `/proc/<pid>/net`), as (address, port).
pub fn listeners_in(dir: &str) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for f in ["tcp", "tcp6"] {
        for line in std::fs::read_to_string(format!("{dir}/{f}")).unwrap_or_default().lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.get(3) == Some(&"0A")
                && let Some((addr, port)) = cols.get(1).and_then(|a| a.rsplit_once(':'))
                && let Ok(p) = u16::from_str_radix(port, 16)
            {
                out.push((addr.to_string(), p));
            }
        }
    }
    out
}
