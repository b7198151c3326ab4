//! Idle detection without a clock read per IO: progress bumps a counter (every read or write of
//! an L4 connection; every request start and end of an HTTP connection,
//! which also counts as busy while a response body is still being sent), and a watchdog wakes
//! every quarter of the idle timeout to see whether it moved.

use std::cell::Cell;
use std::time::Duration;

/// Shared between a connection's IO, its requests and its watchdog.
#[derive(Debug, Default)]
pub struct Activity {
    ticks: Cell<u64>,
    in_flight: Cell<u32>,
}

impl Activity {
    /// Marks progress.
    pub fn touch(&self) {
        self.ticks.set(self.ticks.get().wrapping_add(1));
    }

    /// A request started; the connection is not idle while one is in flight.
    pub fn begin(&self) {
        self.in_flight.set(self.in_flight.get() + 1);
    }

    /// A request's response is done.
    pub fn end(&self) {
        self.in_flight.set(self.in_flight.get().saturating_sub(1));
        self.touch();
    }

    /// Resolves once nothing happened for `timeout` (within a quarter of it).
    pub async fn idle(&self, timeout: Duration) {
        let tick = timeout / 4;
        let mut last = self.ticks.get();
        let mut quiet = 0;
        loop {
            tokio::time::sleep(tick).await;
            let now = self.ticks.get();
            if now != last || self.in_flight.get() > 0 {
                last = now;
                quiet = 0;
            } else {
                quiet += 1;
                if quiet >= 4 {
                    return;
                }
            }
        }
    }
}
