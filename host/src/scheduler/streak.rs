//! One log line for a run of the same failure instead of one per retry:
//! the scheduler retries a failed pass every second, and a failure that
//! lasts (a full disk) would otherwise log 3,600 lines an hour.

use std::time::{Duration, Instant};

/// How often a failure that goes on is logged again, with its count.
pub const REMINDER: Duration = Duration::from_secs(60);

/// What to log for a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The first failure of a streak, or one that differs from the last.
    New,
    /// The same failure, still going on: this many since it was last logged.
    Again {
        /// Failures since the last line.
        failures: u64,
    },
}

/// The failures since the last success.
#[derive(Debug, Default)]
pub struct FailureStreak {
    /// The last failure's message and when it was last logged.
    last: Option<(String, Instant)>,
    /// Failures in the streak.
    failures: u64,
    /// Failures since the last line.
    unlogged: u64,
}

impl FailureStreak {
    /// A failure with `message` at `now`: what to log, if anything.
    pub fn failed(&mut self, message: &str, now: Instant) -> Option<Report> {
        self.failures += 1;
        match &self.last {
            Some((last, logged)) if last == message => {
                self.unlogged += 1;
                if now.duration_since(*logged) < REMINDER {
                    return None;
                }
                let failures = std::mem::take(&mut self.unlogged);
                self.last = Some((message.to_string(), now));
                Some(Report::Again { failures })
            }
            _ => {
                self.last = Some((message.to_string(), now));
                self.unlogged = 0;
                Some(Report::New)
            }
        }
    }

    /// A success: how many failures the streak it ends had (None when
    /// there was none).
    pub fn succeeded(&mut self) -> Option<u64> {
        self.last = None;
        self.unlogged = 0;
        match std::mem::take(&mut self.failures) {
            0 => None,
            failures => Some(failures),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_every_second_is_logged_once_then_once_a_minute() {
        let mut streak = FailureStreak::default();
        let start = Instant::now();
        let mut reports = Vec::new();
        for second in 0..150 {
            let now = start + Duration::from_secs(second);
            if let Some(report) = streak.failed("storage is failing", now) {
                reports.push((second, report));
            }
        }
        assert_eq!(
            reports,
            [
                (0, Report::New),
                (60, Report::Again { failures: 60 }),
                (120, Report::Again { failures: 60 })
            ]
        );
        assert_eq!(streak.succeeded(), Some(150));
        assert_eq!(streak.succeeded(), None);
    }

    #[test]
    fn a_different_failure_is_news_and_a_success_starts_over() {
        let mut streak = FailureStreak::default();
        let now = Instant::now();
        assert_eq!(streak.failed("a", now), Some(Report::New));
        assert_eq!(streak.failed("a", now), None);
        assert_eq!(streak.failed("b", now), Some(Report::New));
        assert_eq!(streak.succeeded(), Some(3));
        assert_eq!(streak.failed("b", now), Some(Report::New));
    }
}
