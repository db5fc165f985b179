/// How messages travel in one row of the message study.
public enum MessageMode: String, Sendable, Codable, CaseIterable {
    /// No compression: the baseline.
    case uncompressed
    /// permessage-deflate with `no_context_takeover`: every message compressed alone.
    case alone
    /// permessage-deflate with context takeover: one stream per connection, sync flush per message.
    case contextTakeover = "context-takeover"
    /// Every message compressed alone, primed with a preset dictionary.
    case dictionary
}

/// One row of the message study: the cost of one way of sending the messages.
public struct MessageModeMeasurement: Sendable, Codable, Equatable {
    /// How the messages travel.
    public var mode: MessageMode
    /// Number of messages.
    public var messages: Int
    /// Total message bytes before compression.
    public var inputBytes: Int
    /// Total payload bytes on the wire (WebSocket frame headers not counted).
    public var wireBytes: Int
    /// Mean payload bytes per message.
    public var bytesPerMessage: Double
    /// `inputBytes / wireBytes`; higher is better.
    public var ratio: Double
    /// Median CPU time to compress one message, in microseconds.
    public var compressMicrosPerMessage: Double
    /// Median CPU time to decompress one message, in microseconds.
    public var decompressMicrosPerMessage: Double
}

/// One row of the window table: ratio and memory of a context-takeover connection at one window.
public struct WindowMeasurement: Sendable, Codable, Equatable {
    /// The window, 9–15.
    public var windowBits: Int
    /// Mean payload bytes per message with context takeover at this window.
    public var takeoverBytesPerMessage: Double
    /// Ratio with context takeover at this window.
    public var takeoverRatio: Double
    /// Mean payload bytes per message compressed alone at this window.
    public var aloneBytesPerMessage: Double
    /// zlib's deflate state for one direction: `(1 << (windowBits + 2)) + (1 << (memLevel + 9))`.
    public var deflateMemoryBytes: Int
    /// zlib's inflate state for one direction: `(1 << windowBits)` + about 7 KiB.
    public var inflateMemoryBytes: Int
    /// What one connection holds for its whole life with context takeover in both directions.
    public var perConnectionBytes: Int
}

/// The result of ``MessageStudy/measure(_:configuration:)``.
public struct MessageStudyReport: Sendable, Codable, Equatable {
    /// Number of messages studied.
    public var messages: Int
    /// Total message bytes.
    public var inputBytes: Int
    /// Window used for the mode rows.
    public var windowBits: Int
    /// Level used throughout.
    public var level: Int
    /// Size of the preset dictionary, 0 when there is none.
    public var dictionaryBytes: Int
    /// One row per way of sending the messages.
    public var modes: [MessageModeMeasurement]
    /// One row per window size.
    public var windows: [WindowMeasurement]
}

/// Settings of a message study.
public struct MessageStudyConfiguration: Sendable {
    /// The window for the mode rows, 9–15 (RFC 7692's `max_window_bits`).
    public var windowBits: Int
    /// The level, 0–9.
    public var level: Int
    /// The hash table size, 1–9.
    public var memLevel: Int
    /// The preset dictionary for the dictionary row; the row is left out when `nil`.
    public var dictionary: [UInt8]?
    /// The windows of the window table.
    public var windowTable: [Int]
    /// How long each timed cell runs.
    public var stopwatch: Stopwatch

    /// Creates settings; the defaults are permessage-deflate's (15-bit window) at level 6.
    public init(
        windowBits: Int = 15, level: Int = 6, memLevel: Int = 8, dictionary: [UInt8]? = nil,
        windowTable: [Int] = Array(ZlibLimits.windowBits), stopwatch: Stopwatch = Stopwatch()
    ) {
        self.windowBits = windowBits
        self.level = level
        self.memLevel = memLevel
        self.dictionary = dictionary
        self.windowTable = windowTable
        self.stopwatch = stopwatch
    }
}

/// Compares ways of sending chat messages. Pure computation: no I/O.
public enum MessageStudy {
    /// Measures each mode on `messages`, verifying that every message decodes to itself.
    /// - Throws: ``CompressionError/verificationFailed`` if any round trip differs.
    /// - Parameter progress: called before each measurement (mode or window) with those done and their total.
    public static func measure(
        _ messages: [[UInt8]], configuration: MessageStudyConfiguration = MessageStudyConfiguration(),
        progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }
    ) throws(CompressionError) -> MessageStudyReport {
        let primed = configuration.dictionary.map { !$0.isEmpty } ?? false
        let steps = 2 + (primed ? 1 : 0) + configuration.windowTable.count
        var done = 0
        func step() {
            progress(done, steps)
            done += 1
        }
        let inputBytes = messages.reduce(0) { $0 + $1.count }
        let base = PerMessageDeflateConfiguration(
            windowBits: configuration.windowBits, contextTakeover: false, level: configuration.level,
            memLevel: configuration.memLevel)
        var modes = [MessageModeMeasurement(
            mode: .uncompressed, messages: messages.count, inputBytes: inputBytes, wireBytes: inputBytes,
            bytesPerMessage: mean(inputBytes, messages.count), ratio: 1,
            compressMicrosPerMessage: 0, decompressMicrosPerMessage: 0)]
        step()
        modes.append(try measureMode(.alone, messages, base, configuration.stopwatch))
        var takeover = base
        takeover.contextTakeover = true
        step()
        modes.append(try measureMode(.contextTakeover, messages, takeover, configuration.stopwatch))
        if let dictionary = configuration.dictionary, !dictionary.isEmpty {
            var primed = base
            primed.dictionary = dictionary
            step()
            modes.append(try measureMode(.dictionary, messages, primed, configuration.stopwatch))
        }
        var windows: [WindowMeasurement] = []
        for bits in configuration.windowTable {
            step()
            var settings = base
            settings.windowBits = bits
            let alone = try roundTrip(messages, settings)
            settings.contextTakeover = true
            let kept = try roundTrip(messages, settings)
            let deflateMemory = ZlibMemory.deflate(windowBits: bits, memLevel: configuration.memLevel)
            let inflateMemory = ZlibMemory.inflate(windowBits: bits)
            windows.append(WindowMeasurement(
                windowBits: bits, takeoverBytesPerMessage: mean(kept.wireBytes, messages.count),
                takeoverRatio: ratio(inputBytes, kept.wireBytes), aloneBytesPerMessage: mean(alone.wireBytes, messages.count),
                deflateMemoryBytes: deflateMemory, inflateMemoryBytes: inflateMemory,
                perConnectionBytes: deflateMemory + inflateMemory))
        }
        return MessageStudyReport(
            messages: messages.count, inputBytes: inputBytes, windowBits: configuration.windowBits,
            level: configuration.level, dictionaryBytes: configuration.dictionary?.count ?? 0,
            modes: modes, windows: windows)
    }

    /// The messages' payloads packed in one buffer, with their end offsets.
    struct Wire {
        var bytes: [UInt8] = []
        var ends: [Int] = []
        var wireBytes: Int { bytes.count }
    }

    static func compressAll(_ messages: [[UInt8]], _ settings: PerMessageDeflateConfiguration, into wire: inout Wire) throws(CompressionError) {
        wire.bytes.removeAll(keepingCapacity: true)
        wire.ends.removeAll(keepingCapacity: true)
        let deflater = try PerMessageDeflater(configuration: settings)
        do {
            for message in messages {
                try message.withUnsafeBytes { bytes in try deflater.compress(bytes, into: &wire.bytes) }
                wire.ends.append(wire.bytes.count)
            }
        } catch {
            throw error as! CompressionError
        }
    }

    /// Decodes every payload into `output` (one message after another); verifies when `expected` is given.
    static func decompressAll(
        _ wire: Wire, _ settings: PerMessageDeflateConfiguration, into output: inout [UInt8], verifying expected: [[UInt8]]?
    ) throws(CompressionError) {
        let inflater = try PerMessageInflater(configuration: settings)
        do {
            try wire.bytes.withUnsafeBytes { all in
                var start = 0
                for (index, end) in wire.ends.enumerated() {
                    output.removeAll(keepingCapacity: true)
                    try inflater.decompress(UnsafeRawBufferPointer(rebasing: all[start..<end]), into: &output)
                    if let expected, output != expected[index] {
                        throw CompressionError.verificationFailed.with(detail: "message \(index + 1)")
                    }
                    start = end
                }
            }
        } catch {
            throw error as! CompressionError
        }
    }

    static func roundTrip(_ messages: [[UInt8]], _ settings: PerMessageDeflateConfiguration) throws(CompressionError) -> Wire {
        var wire = Wire()
        try compressAll(messages, settings, into: &wire)
        var output: [UInt8] = []
        try decompressAll(wire, settings, into: &output, verifying: messages)
        return wire
    }

    static func measureMode(
        _ mode: MessageMode, _ messages: [[UInt8]], _ settings: PerMessageDeflateConfiguration, _ stopwatch: Stopwatch
    ) throws(CompressionError) -> MessageModeMeasurement {
        let verified = try roundTrip(messages, settings)
        var wire = Wire()
        var output: [UInt8] = []
        let compressTime: Duration
        let decompressTime: Duration
        do {
            compressTime = try stopwatch.median { try compressAll(messages, settings, into: &wire) }.median
            decompressTime = try stopwatch.median {
                try decompressAll(verified, settings, into: &output, verifying: nil)
            }.median
        } catch {
            throw error as! CompressionError
        }
        let inputBytes = messages.reduce(0) { $0 + $1.count }
        let count = max(1, messages.count)
        return MessageModeMeasurement(
            mode: mode, messages: messages.count, inputBytes: inputBytes, wireBytes: verified.wireBytes,
            bytesPerMessage: mean(verified.wireBytes, messages.count), ratio: ratio(inputBytes, verified.wireBytes),
            compressMicrosPerMessage: compressTime.seconds * 1e6 / Double(count),
            decompressMicrosPerMessage: decompressTime.seconds * 1e6 / Double(count))
    }

    static func mean(_ total: Int, _ count: Int) -> Double {
        count == 0 ? 0 : Double(total) / Double(count)
    }

    static func ratio(_ input: Int, _ output: Int) -> Double {
        output == 0 ? 0 : Double(input) / Double(output)
    }
}
