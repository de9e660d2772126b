//! The one retry rule every worker uses: exponential backoff with jitter,
//! and how many attempts before an email is given up.

use rand::Rng;

/// After this many attempts a transiently failing email is given up.
pub const MAX_ATTEMPTS: i32 = 16;

/// Exponential backoff with jitter after the `attempts`th failed attempt:
/// 2 s, 4 s, 8 s … capped at one hour (16 attempts span about seven hours
/// of an outage).
pub fn backoff(attempts: i32) -> chrono::Duration {
    let base = 2i64
        .saturating_mul(1i64 << (attempts - 1).clamp(0, 12))
        .min(3600);
    let jitter = rand::thread_rng().gen_range(0.75..1.25);
    chrono::Duration::milliseconds((base as f64 * 1000.0 * jitter) as i64)
}

/// How long to wait before trying a failed settle again (the database is
/// away): 100 ms doubling to 2 s.
pub fn settle_pause(failures: u32) -> std::time::Duration {
    std::time::Duration::from_millis(100u64.saturating_mul(1 << failures.min(5)).min(2000))
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_is_capped() {
        let secs = |n| super::backoff(n).num_milliseconds() as f64 / 1000.0;
        assert!((1.5..=2.5).contains(&secs(1)));
        assert!((3.0..=5.0).contains(&secs(2)));
        assert!((2700.0..=4500.0).contains(&secs(40)));
        assert_eq!(super::settle_pause(0).as_millis(), 100);
        assert_eq!(super::settle_pause(9).as_millis(), 2000);
    }
}
