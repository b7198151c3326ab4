//! Endpoint health: the active-check state machine (rise/fall) and passive ejection (outlier
//! detection). Both take `now` from the caller, so tests drive them with a fake clock.

use std::time::{Duration, Instant};

use crate::config::{HealthCheckConfig, OutlierConfig};

/// Active health of one endpoint, fed by check results.
#[derive(Debug, Clone)]
pub struct ActiveHealth {
    rise: u32,
    fall: u32,
    passes: u32,
    failures: u32,
    healthy: bool,
}

impl ActiveHealth {
    /// Endpoints start healthy so a fresh config serves at once; `fall` failed checks take one out.
    pub fn new(cfg: &HealthCheckConfig) -> Self {
        Self { rise: cfg.rise, fall: cfg.fall, passes: 0, failures: 0, healthy: true }
    }

    /// Current state.
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Records one check; returns the new state when it changed.
    pub fn record(&mut self, passed: bool) -> Option<bool> {
        if passed {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            if !self.healthy && self.passes >= self.rise {
                self.healthy = true;
                return Some(true);
            }
        } else {
            self.passes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.healthy && self.failures >= self.fall {
                self.healthy = false;
                return Some(false);
            }
        }
        None
    }
}

/// What a request to an endpoint came to, for passive ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A response below 500.
    Success,
    /// No connection could be made, or it broke before a response.
    ConnectFailure,
    /// A 5xx response.
    ServerError,
}

/// Passive ejection of one endpoint, after consecutive failures, for a time that doubles with
/// each ejection (up to a maximum) and halves back for each quiet period.
#[derive(Debug, Clone, Default)]
pub struct Outlier {
    consecutive: u32,
    ejected_until: Option<Instant>,
    /// Ejections not yet forgiven; sets the next ejection's length.
    multiplier: u32,
    last_change: Option<Instant>,
}

impl Outlier {
    /// Records a request's outcome; returns true when this ejected the endpoint.
    pub fn record(&mut self, outcome: Outcome, now: Instant, cfg: &OutlierConfig) -> bool {
        if outcome == Outcome::Success {
            self.consecutive = 0;
            return false;
        }
        if cfg.consecutive_failures == 0 || self.is_ejected(now) {
            return false;
        }
        self.consecutive += 1;
        if self.consecutive < cfg.consecutive_failures {
            return false;
        }
        // Forgive one ejection per quiet base period since the last change.
        if let Some(last) = self.last_change {
            let quiet = now.saturating_duration_since(last).as_nanos() / cfg.base_ejection.as_nanos().max(1);
            self.multiplier = self.multiplier.saturating_sub(quiet.min(u128::from(u32::MAX)) as u32);
        }
        self.multiplier = self.multiplier.saturating_add(1);
        let factor = 1u32 << (self.multiplier - 1).min(20);
        let length = cfg.base_ejection.saturating_mul(factor).min(cfg.max_ejection);
        self.ejected_until = Some(now + length);
        self.last_change = Some(now + length);
        self.consecutive = 0;
        true
    }

    /// Whether the endpoint is ejected at `now`.
    pub fn is_ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| now < t)
    }

    /// When the current ejection ends.
    pub fn ejected_until(&self) -> Option<Instant> {
        self.ejected_until
    }

    /// Length of the current ejection, for logs.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.ejected_until.map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HealthCheckKind;

    fn hc(rise: u32, fall: u32) -> HealthCheckConfig {
        HealthCheckConfig {
            kind: HealthCheckKind::Tcp,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            rise,
            fall,
        }
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_passes() {
        let mut h = ActiveHealth::new(&hc(2, 3));
        assert!(h.is_healthy());
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None, "a pass resets the failure streak");
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(false));
        assert!(!h.is_healthy());
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(true));
        assert!(h.is_healthy());
    }

    fn oc() -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
        }
    }

    #[test]
    fn ejects_after_consecutive_failures_and_returns_on_time() {
        let cfg = oc();
        let t0 = Instant::now();
        let mut o = Outlier::default();
        assert!(!o.record(Outcome::ConnectFailure, t0, &cfg));
        assert!(!o.record(Outcome::ServerError, t0, &cfg));
        assert!(!o.record(Outcome::Success, t0, &cfg), "success resets the streak");
        assert!(!o.record(Outcome::ServerError, t0, &cfg));
        assert!(!o.record(Outcome::ServerError, t0, &cfg));
        assert!(o.record(Outcome::ServerError, t0, &cfg));
        assert!(o.is_ejected(t0 + Duration::from_secs(9)));
        assert!(!o.is_ejected(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn repeated_ejections_double_up_to_the_maximum_then_are_forgiven() {
        let cfg = oc();
        let t0 = Instant::now();
        let mut o = Outlier::default();
        let eject = |o: &mut Outlier, at: Instant| {
            for _ in 0..3 {
                o.record(Outcome::ConnectFailure, at, &cfg);
            }
            o.remaining(at)
        };
        assert_eq!(eject(&mut o, t0), Duration::from_secs(10));
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(eject(&mut o, t1), Duration::from_secs(20));
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(eject(&mut o, t2), Duration::from_secs(25), "capped at max_ejection");
        // Long quiet period: back to the base length.
        let t3 = t2 + Duration::from_secs(25) + Duration::from_secs(1000);
        assert_eq!(eject(&mut o, t3), Duration::from_secs(10));
    }

    #[test]
    fn zero_threshold_turns_ejection_off() {
        let cfg = OutlierConfig { consecutive_failures: 0, ..oc() };
        let mut o = Outlier::default();
        let t0 = Instant::now();
        for _ in 0..100 {
            assert!(!o.record(Outcome::ConnectFailure, t0, &cfg));
        }
        assert!(!o.is_ejected(t0));
    }
}
