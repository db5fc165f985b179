/// Repeats a piece of work until its timing is stable and reports the median run.
///
/// A cell runs at least ``minRuns`` times and until ``minTotal`` has elapsed, capped at
/// ``maxRuns``; the median is robust against one slow run (a page fault, another process).
public struct Stopwatch: Sendable {
    /// The fewest runs per cell.
    public var minRuns: Int
    /// The least total time per cell. 0.2 s keeps a `--levels 1-9` table under a few seconds for
    /// small inputs while averaging out scheduler noise.
    public var minTotal: Duration
    /// The most runs per cell, so tiny inputs do not spin for long.
    public var maxRuns: Int
    private let now: @Sendable () -> Duration

    /// Creates a stopwatch reading `ContinuousClock`.
    public init(minRuns: Int = 3, minTotal: Duration = .milliseconds(200), maxRuns: Int = 10_000) {
        let clock = ContinuousClock()
        let origin = clock.now
        self.init(minRuns: minRuns, minTotal: minTotal, maxRuns: maxRuns) { clock.now - origin }
    }

    /// Creates a stopwatch reading the given clock (time since any fixed origin).
    public init(minRuns: Int, minTotal: Duration, maxRuns: Int, now: @escaping @Sendable () -> Duration) {
        self.minRuns = max(1, minRuns)
        self.minTotal = minTotal
        self.maxRuns = max(self.minRuns, maxRuns)
        self.now = now
    }

    /// Runs `work` repeatedly and returns the median duration of one run and the run count.
    public func median(_ work: () throws -> Void) rethrows -> (median: Duration, runs: Int) {
        var samples: [Duration] = []
        var total = Duration.zero
        while samples.count < minRuns || (total < minTotal && samples.count < maxRuns) {
            let start = now()
            try work()
            let elapsed = now() - start
            samples.append(elapsed)
            total += elapsed
        }
        samples.sort()
        let mid = samples.count / 2
        let median = samples.count % 2 == 1 ? samples[mid] : (samples[mid - 1] + samples[mid]) / 2
        return (median, samples.count)
    }
}

extension Duration {
    /// The duration in seconds as a `Double`.
    var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
