//! When a failed delivery is tried again: the Standard Webhooks schedule, also used for
//! e-mail that the SMTP server refused for now.

use std::time::Duration;

use chrono::{DateTime, Utc};

const MIN: u64 = 60;
const HOUR: u64 = 60 * MIN;

/// The delay before each attempt: the first at once, then 5 s, 5 min, 30 min, 2 h, 5 h,
/// 10 h, 14 h, 20 h and 24 h after the previous one (about three days and four hours).
pub const SCHEDULE: [Duration; 10] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * MIN),
    Duration::from_secs(30 * MIN),
    Duration::from_secs(2 * HOUR),
    Duration::from_secs(5 * HOUR),
    Duration::from_secs(10 * HOUR),
    Duration::from_secs(14 * HOUR),
    Duration::from_secs(20 * HOUR),
    Duration::from_secs(24 * HOUR),
];

/// The longest wait a `Retry-After` can ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * HOUR);

/// An endpoint whose deliveries have failed for this long, with no success between, is
/// disabled.
pub const FAILING_LIMIT: Duration = Duration::from_secs(5 * 24 * HOUR);

/// After attempt `attempt` (1 for the first) failed at `now`: when the next one is due, or
/// `None` when it was the last. A `Retry-After` from the receiver postpones it (never
/// beyond a day), never brings it forward.
pub fn next_attempt(
    attempt: u32,
    now: DateTime<Utc>,
    retry_after: Option<Duration>,
) -> Option<DateTime<Utc>> {
    let planned = *SCHEDULE.get(usize::try_from(attempt).ok()?)?;
    let delay = retry_after
        .map(|r| r.min(MAX_RETRY_AFTER))
        .map_or(planned, |r| r.max(planned));
    Some(now + chrono::Duration::from_std(delay).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_schedule_then_gives_up() {
        let now = Utc::now();
        let delays: Vec<i64> = (1..=9)
            .map(|a| (next_attempt(a, now, None).unwrap() - now).num_seconds())
            .collect();
        assert_eq!(
            delays,
            [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
        );
        assert_eq!(next_attempt(10, now, None), None);
    }

    #[test]
    fn retry_after_postpones_but_never_hastens_or_exceeds_a_day() {
        let now = Utc::now();
        let at = |a, r: u64| next_attempt(a, now, Some(Duration::from_secs(r))).unwrap() - now;
        assert_eq!(at(1, 60).num_seconds(), 60);
        assert_eq!(at(2, 1).num_seconds(), 300);
        assert_eq!(at(1, 10 * 24 * 3600).num_hours(), 24);
    }
}
