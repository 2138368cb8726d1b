//! Sampling shared by the bench targets.

use std::time::Duration;

use criterion::BenchmarkGroup;
use criterion::SamplingMode;
use criterion::measurement::WallTime;

/// Sizes criterion's sampling to one run taking `once`: 10 samples in flat
/// mode over about 22 runs' worth of time (at least half a second). A run of
/// seconds then costs ~20 runs (criterion warns when a sample holds a single
/// run, so 2 per sample is the floor) and a fast one gets many runs per sample.
pub fn fit(group: &mut BenchmarkGroup<'_, WallTime>, once: Duration) {
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time((once * 22).max(Duration::from_millis(500)));
}
