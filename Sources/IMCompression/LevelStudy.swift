/// One row of the per-level measurement: how well and how fast one level compresses a sample.
public struct LevelMeasurement: Sendable, Codable, Equatable {
    /// The zlib level, 0–9.
    public var level: Int
    /// The framing measured.
    public var format: ZlibFormat
    /// Uncompressed bytes.
    public var inputBytes: Int
    /// Compressed bytes, framing included.
    public var outputBytes: Int
    /// `inputBytes / outputBytes`; higher is better.
    public var ratio: Double
    /// Uncompressed megabytes (10⁶ bytes) compressed per second, median run.
    public var compressMBps: Double
    /// Uncompressed megabytes (10⁶ bytes) produced per second when decompressing, median run.
    public var decompressMBps: Double
    /// Timed runs of the compress cell.
    public var compressRuns: Int
    /// Timed runs of the decompress cell.
    public var decompressRuns: Int
}

/// Settings of a per-level measurement.
public struct LevelStudyConfiguration: Sendable {
    /// The levels to measure, in order.
    public var levels: [Int]
    /// The framing measured (gzip matches `gzip` and `imctl compress -c`).
    public var format: ZlibFormat
    /// The window, 9–15.
    public var windowBits: Int
    /// The hash table size, 1–9.
    public var memLevel: Int
    /// How long each cell is timed.
    public var stopwatch: Stopwatch

    /// Creates settings; the defaults measure levels 1, 6 and 9 with gzip framing.
    public init(
        levels: [Int] = [1, 6, 9], format: ZlibFormat = .gzip, windowBits: Int = 15, memLevel: Int = 8,
        stopwatch: Stopwatch = Stopwatch()
    ) {
        self.levels = levels
        self.format = format
        self.windowBits = windowBits
        self.memLevel = memLevel
        self.stopwatch = stopwatch
    }
}

/// Measures zlib on one sample, level by level. Pure computation: no I/O.
public enum LevelStudy {
    /// Compresses and decompresses `input` at each level, verifying every round trip.
    /// - Parameter progress: called before each level with the number of levels done and their total.
    /// - Throws: ``CompressionError/verificationFailed`` if a round trip differs from the input.
    public static func measure(
        _ input: [UInt8], configuration: LevelStudyConfiguration = LevelStudyConfiguration(),
        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }
    ) throws(CompressionError) -> [LevelMeasurement] {
        var rows: [LevelMeasurement] = []
        // Buffers are reused across runs so that allocation does not show up in the timing.
        var compressed: [UInt8] = []
        compressed.reserveCapacity(input.count + input.count / 100 + 1024)
        var decompressed: [UInt8] = []
        decompressed.reserveCapacity(input.count)
        for (index, level) in configuration.levels.enumerated() {
            progress(index, configuration.levels.count)
            let deflater = try Deflater(configuration: DeflateConfiguration(
                format: configuration.format, level: level, windowBits: configuration.windowBits,
                memLevel: configuration.memLevel, bufferSize: 256 * 1024))
            let inflater = try Inflater(configuration: InflateConfiguration(
                format: configuration.format, windowBits: configuration.windowBits, bufferSize: 256 * 1024))
            let compressTiming: (median: Duration, runs: Int)
            let decompressTiming: (median: Duration, runs: Int)
            do {
                compressTiming = try configuration.stopwatch.median {
                    compressed.removeAll(keepingCapacity: true)
                    try deflater.reset()
                    try deflater.compress(input, flush: .finish, into: &compressed)
                }
                decompressed.removeAll(keepingCapacity: true)
                try inflater.reset()
                try inflater.decompress(compressed, into: &decompressed)
                try inflater.finish()
                guard decompressed == input else {
                    throw CompressionError.verificationFailed.with(detail: "level \(level)")
                }
                decompressTiming = try configuration.stopwatch.median {
                    decompressed.removeAll(keepingCapacity: true)
                    try inflater.reset()
                    try inflater.decompress(compressed, into: &decompressed)
                    try inflater.finish()
                }
                guard decompressed.count == input.count else {
                    throw CompressionError.verificationFailed.with(detail: "level \(level)")
                }
            } catch {
                throw error as! CompressionError
            }
            rows.append(LevelMeasurement(
                level: level, format: configuration.format, inputBytes: input.count, outputBytes: compressed.count,
                ratio: compressed.isEmpty ? 0 : Double(input.count) / Double(compressed.count),
                compressMBps: megabytesPerSecond(input.count, compressTiming.median),
                decompressMBps: megabytesPerSecond(input.count, decompressTiming.median),
                compressRuns: compressTiming.runs, decompressRuns: decompressTiming.runs))
        }
        return rows
    }

    static func megabytesPerSecond(_ bytes: Int, _ duration: Duration) -> Double {
        let seconds = duration.seconds
        return seconds > 0 ? Double(bytes) / 1e6 / seconds : 0
    }
}
