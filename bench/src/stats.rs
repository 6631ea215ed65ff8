//! Summary statistics over timing samples: the one definition of min,
//! median and p99 that every figure of a report uses (the kernel's bench
//! mode and the host baselines both call [`summarize`]).
//!
//! Percentiles are by *nearest rank*: the p-th percentile is the smallest
//! sample such that at least p % of all samples are less than or equal to
//! it (index `ceil(p/100 * n) - 1` of the sorted samples). It is always a
//! sample that was really measured, never an interpolation; the median of
//! an even number of samples is the lower of the two middle ones.

/// min, median, p99, max and mean of a set of samples, in the samples' unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of samples.
    pub iterations: u64,
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
    /// Arithmetic mean, rounded down.
    pub mean: u64,
}

/// Index of the nearest-rank `percent` percentile in `n` sorted samples.
pub fn rank(n: usize, percent: u32) -> usize {
    debug_assert!(n > 0 && percent <= 100);
    // ceil(percent * n / 100) - 1, at least 0.
    ((percent as usize * n).div_ceil(100)).max(1) - 1
}

/// Sorts `samples` in place and summarises them; `None` when empty.
pub fn summarize(samples: &mut [u64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    let sum: u128 = samples.iter().map(|&s| s as u128).sum();
    Some(Summary {
        iterations: n as u64,
        min: samples[0],
        median: samples[rank(n, 50)],
        p99: samples[rank(n, 99)],
        max: samples[n - 1],
        mean: (sum / n as u128) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        assert_eq!(rank(1, 50), 0);
        assert_eq!(rank(1, 99), 0);
        assert_eq!(rank(2, 50), 0);
        assert_eq!(rank(3, 50), 1);
        assert_eq!(rank(100, 99), 98);
        assert_eq!(rank(101, 99), 99);
        assert_eq!(rank(1000, 99), 989);
        assert_eq!(rank(10, 100), 9);
    }

    #[test]
    fn summary_of_known_samples() {
        let mut s: [u64; 10] = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
        let sum = summarize(&mut s).unwrap();
        assert_eq!((sum.iterations, sum.min, sum.median, sum.p99, sum.max, sum.mean), (10, 1, 5, 10, 10, 5));
        assert_eq!(summarize(&mut []), None);
        let mut one = [42];
        let one = summarize(&mut one).unwrap();
        assert_eq!((one.min, one.median, one.p99, one.max), (42, 42, 42, 42));
    }

    #[test]
    fn p99_ignores_the_worst_percent_only() {
        let mut s: std::vec::Vec<u64> = (1..=1000).collect();
        s[999] = 1_000_000;
        let sum = summarize(&mut s).unwrap();
        assert_eq!(sum.p99, 990);
        assert_eq!(sum.max, 1_000_000);
        assert!(sum.min <= sum.median && sum.median <= sum.p99 && sum.p99 <= sum.max);
    }
}
