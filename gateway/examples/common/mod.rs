//! Helpers shared by the benchmark examples (`load`, `search_bench`).
#![allow(dead_code)]

use std::time::Duration;

/// The value after `name` on the command line, or `default`.
pub fn arg(name: &str, default: Option<&str>) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| default.map(str::to_string))
        .unwrap_or_else(|| panic!("missing {name}"))
}

/// Milliseconds, to the microsecond.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The `q` quantile (0 to 1, nearest rank) of `sorted`, in milliseconds;
/// 0 when there is nothing.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    ms(sorted[((sorted.len() as f64 - 1.0) * q).round() as usize])
}
