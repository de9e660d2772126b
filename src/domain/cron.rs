//! Cron expressions: six fields, seconds first (`0 0 8 * * Mon`), UTC, as
//! the scheduler runs them. Parsing and the arithmetic on them; no I/O.

use chrono::{Duration, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// Parses a six-field (seconds first) cron expression, as the scheduler does.
pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    if expr.split_whitespace().count() != 6 {
        return Err(format!(
            "\"{expr}\" must have 6 fields, seconds first (e.g. \"0 0 8 * * Mon\")"
        ));
    }
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(|e| format!("\"{expr}\" is not a valid cron expression: {e}"))
}

pub fn validate_cron(expr: &str) -> Result<(), String> {
    parse_cron(expr).map(drop)
}

/// The scheduled time this firing belongs to: the latest occurrence at or
/// before now (with half a second of slack for an early wake-up). Every
/// instance computes the same key for the same tick.
pub fn tick_key(expr: &str) -> Option<String> {
    let cron = parse_cron(expr).ok()?;
    let probe = Utc::now() + chrono::Duration::milliseconds(500);
    cron.find_previous_occurrence(&probe, true)
        .ok()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// One period of `digest_cron`: how far the very first digest looks back.
pub fn period(cron: &str) -> Duration {
    let fallback = Duration::days(7);
    let Ok(parsed) = parse_cron(cron) else {
        return fallback;
    };
    let now = Utc::now();
    match parsed.find_next_occurrence(&now, false) {
        Ok(first) => match parsed.find_next_occurrence(&first, false) {
            Ok(second) => second - first,
            Err(_) => fallback,
        },
        Err(_) => fallback,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crons() {
        assert!(validate_cron("0 0 8 * * Mon").is_ok());
        assert!(validate_cron("*/2 * * * * *").is_ok());
        assert!(validate_cron("0 8 * * Mon").is_err());
        assert!(validate_cron("nonsense").is_err());
        assert!(tick_key("* * * * * *").is_some());
    }

    #[test]
    fn weekly_period() {
        assert_eq!(period("0 0 8 * * Mon"), Duration::days(7));
    }
}
