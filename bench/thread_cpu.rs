//! Criterion measurement of the benchmarking thread's CPU time (user + system, so page
//! faults count), the clock bench/*.py read with `time.thread_time()`.
//!
//! The benchmarks run on a machine shared with other builds: wall time there measures
//! the scheduler as much as the code (a 1 ms loop read 6 ms at a load of 12 on two
//! cores), while CPU time only counts the time the code ran. Included by the benches
//! with `#[path]`.

use std::time::Duration;

use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter, WallTime};

/// CPU time of the calling thread.
pub struct ThreadCpu;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }

    fn end(&self, start: ThreadTime) -> Duration {
        start.elapsed()
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}
