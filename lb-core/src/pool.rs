//! Which idle upstream connections to keep: one endpoint's keep-alive stack.
//!
//! Connections are taken most recently used first (the one likeliest still open, and the one
//! whose TCP state is warm). `keep` is how many may stay idle for the pool's whole idle timeout.
//! Above it, connections a burst needed stay pooled while the load keeps reusing them, and each
//! is closed once it has been unused for [`SURPLUS_LINGER`]. nginx's `keepalive N` closes a
//! connection the moment it comes back to a full pool instead, and under a load that
//! hovers above `N` that opens and closes a connection every few requests: a TCP handshake
//! and a TIME-WAIT socket on the balancer each time (measured: 1.7–5.3% of HTTP/2 requests at
//! 512 in flight over 2 × 256). HAProxy likewise keeps what the load used and purges the rest
//! after `pool-purge-delay`.
//!
//! `keep` 0 turns pooling off: each connection is closed once its response is done. The stack is
//! otherwise bounded without a second limit: a connection is only opened when the stack is
//! empty, so it never holds more than the most requests that were in flight to the endpoint at
//! once.

use std::time::{Duration, Instant};

/// How long a connection above `keep` may stay unused before it is closed.
pub const SURPLUS_LINGER: Duration = Duration::from_secs(1);

/// Idle connections of one endpoint, least recently used first.
#[derive(Debug)]
pub struct IdleStack<C> {
    idle: Vec<(C, Instant)>,
}

impl<C> Default for IdleStack<C> {
    fn default() -> Self {
        Self { idle: Vec::new() }
    }
}

impl<C> IdleStack<C> {
    /// Keeps a connection whose last exchange is complete; `now` is when it became idle. With
    /// `keep` 0 pooling is off and the connection is handed back, to be closed.
    pub fn put(&mut self, conn: C, now: Instant, keep: usize) -> Option<C> {
        if keep == 0 {
            return Some(conn);
        }
        self.idle.push((conn, now));
        None
    }

    /// The most recently used connection that `usable` accepts, given how long it has been
    /// idle. Those passed over on the way (closed by the peer, or idle past `timeout`) are
    /// dropped.
    pub fn take(&mut self, now: Instant, timeout: Duration, mut usable: impl FnMut(&C, Duration) -> bool) -> Option<C> {
        while let Some((conn, since)) = self.idle.pop() {
            let idle = now.saturating_duration_since(since);
            if idle < timeout && usable(&conn, idle) {
                return Some(conn);
            }
        }
        None
    }

    /// Drops the connections `usable` refuses or idle past `timeout`, then those above `keep`
    /// unused for [`SURPLUS_LINGER`], least recently used first. Returns how many were dropped.
    pub fn sweep(
        &mut self,
        now: Instant,
        keep: usize,
        timeout: Duration,
        mut usable: impl FnMut(&C, Duration) -> bool,
    ) -> usize {
        let before = self.idle.len();
        self.idle.retain(|(conn, since)| {
            let idle = now.saturating_duration_since(*since);
            idle < timeout && usable(conn, idle)
        });
        let surplus = self.idle.len().saturating_sub(keep);
        let stale = self
            .idle
            .iter()
            .take(surplus)
            .take_while(|(_, since)| now.saturating_duration_since(*since) >= SURPLUS_LINGER)
            .count();
        self.idle.drain(..stale);
        before - self.idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Puts with pooling on (the `keep` that matters is the one `sweep` gets).
    fn pooled(s: &mut IdleStack<u32>, c: u32, now: Instant) {
        assert_eq!(s.put(c, now, 1), None);
    }

    fn ids(s: &IdleStack<u32>) -> Vec<u32> {
        s.idle.iter().map(|(c, _)| *c).collect()
    }

    #[test]
    fn keep_zero_turns_pooling_off() {
        let mut s = IdleStack::default();
        assert_eq!(s.put(7, Instant::now(), 0), Some(7), "handed back to be closed");
        assert!(s.idle.is_empty());
    }

    #[test]
    fn takes_the_most_recently_used_first() {
        let t0 = Instant::now();
        let mut s = IdleStack::default();
        pooled(&mut s, 1, t0);
        pooled(&mut s, 2, t0 + ms(1));
        assert_eq!(s.take(t0 + ms(2), HOUR, |_, _| true), Some(2));
        assert_eq!(s.take(t0 + ms(2), HOUR, |_, _| true), Some(1));
        assert_eq!(s.take(t0 + ms(2), HOUR, |_, _| true), None);
    }

    #[test]
    fn take_drops_the_closed_and_the_expired_on_its_way() {
        let t0 = Instant::now();
        let mut s = IdleStack::default();
        pooled(&mut s, 1, t0);
        pooled(&mut s, 2, t0 + ms(500));
        pooled(&mut s, 3, t0 + ms(900));
        // 3 is closed by its peer, 2 usable: 3 goes, 2 comes back, 1 stays.
        assert_eq!(s.take(t0 + ms(1000), HOUR, |c, _| *c != 3), Some(2));
        assert_eq!(ids(&s), [1]);
        // 1 idle for 1 s against a 600 ms timeout.
        assert_eq!(s.take(t0 + ms(1000), ms(600), |_, _| true), None);
        assert!(s.idle.is_empty());
        // The idle time handed to `usable` is measured from `put`.
        pooled(&mut s, 4, t0);
        let mut seen = None;
        s.take(t0 + ms(250), HOUR, |_, idle| {
            seen = Some(idle);
            true
        });
        assert_eq!(seen, Some(ms(250)));
    }

    #[test]
    fn a_burst_above_keep_stays_pooled_while_reused() {
        let t0 = Instant::now();
        let mut s = IdleStack::default();
        // A burst of 6 requests came back; `keep` is 2.
        for c in 0..6 {
            pooled(&mut s, c, t0);
        }
        assert_eq!(s.idle.len(), 6, "a connection coming back to a full pool is kept, not closed");
        // The load keeps using 5 of them: each taken and put back within the linger time.
        for step in 1..=5u64 {
            let now = t0 + ms(400 * step);
            let taken: Vec<u32> = (0..5).filter_map(|_| s.take(now, HOUR, |_, _| true)).collect();
            assert_eq!(taken.len(), 5);
            for c in taken {
                pooled(&mut s, c, now);
            }
            assert_eq!(s.sweep(now, 2, HOUR, |_, _| true), usize::from(step == 3), "step {step}");
        }
        // Only the one left at the bottom went, after 1 s unused; the 5 in use stayed.
        assert_eq!(s.idle.len(), 5);
        assert!(!ids(&s).contains(&0));
    }

    #[test]
    fn sweep_closes_the_unused_surplus_oldest_first_down_to_keep() {
        let t0 = Instant::now();
        let mut s = IdleStack::default();
        for c in 0..5 {
            pooled(&mut s, c, t0 + ms(100 * u64::from(c)));
        }
        // At 1.25 s, 0, 1 and 2 have been unused for 1 s or more, but only 3 are above keep = 2.
        assert_eq!(s.sweep(t0 + ms(1250), 2, HOUR, |_, _| true), 3);
        assert_eq!(ids(&s), [3, 4]);
        // At keep, nothing more goes however long they wait, until the idle timeout.
        assert_eq!(s.sweep(t0 + ms(59_000), 2, ms(60_000), |_, _| true), 0);
        assert_eq!(s.sweep(t0 + ms(60_350), 2, ms(60_000), |_, _| true), 1);
        assert_eq!(ids(&s), [4]);
    }

    #[test]
    fn sweep_spares_surplus_used_within_the_linger_time() {
        let t0 = Instant::now();
        let mut s = IdleStack::default();
        pooled(&mut s, 0, t0);
        pooled(&mut s, 1, t0 + ms(600));
        pooled(&mut s, 2, t0 + ms(700));
        // keep = 0: 0 is unused for 1.1 s and goes; 1 and 2 for 0.5 and 0.4 s, and stay.
        assert_eq!(s.sweep(t0 + ms(1100), 0, HOUR, |_, _| true), 1);
        assert_eq!(ids(&s), [1, 2]);
        // Closed connections go whatever keep says.
        assert_eq!(s.sweep(t0 + ms(1100), 10, HOUR, |c, _| *c != 2), 1);
        assert_eq!(ids(&s), [1]);
    }
}
