/// Settings of a ``Deflater``.
public struct DeflateConfiguration: Sendable {
    /// The framing written around the deflate blocks.
    public var format: ZlibFormat
    /// 0 (store) to 9 (smallest); 6 is zlib's and gzip's default.
    public var level: Int
    /// The history window as a power of two, 9–15; memory is about `1 << (windowBits + 2)`.
    public var windowBits: Int
    /// The hash table size, 1–9; memory is about `1 << (memLevel + 9)`.
    public var memLevel: Int
    /// zlib's match-finding strategy.
    public var strategy: CompressionStrategy
    /// A preset dictionary (zlib and raw framing only); the peer must use the same bytes.
    public var dictionary: [UInt8]?
    /// Size of the internal output buffer handed to sinks. 16 KiB suits messages; use more for files.
    public var bufferSize: Int

    /// Creates settings; the defaults are zlib's (`level 6`, 32 KiB window, `memLevel 8`) with gzip framing.
    public init(
        format: ZlibFormat = .gzip,
        level: Int = 6,
        windowBits: Int = 15,
        memLevel: Int = 8,
        strategy: CompressionStrategy = .default,
        dictionary: [UInt8]? = nil,
        bufferSize: Int = 16 * 1024
    ) {
        self.format = format
        self.level = level
        self.windowBits = windowBits
        self.memLevel = memLevel
        self.strategy = strategy
        self.dictionary = dictionary
        self.bufferSize = bufferSize
    }

    func validate() throws(CompressionError) {
        guard ZlibLimits.levels.contains(level) else {
            throw .invalidParameter.with(detail: "level \(level) is not in 0–9")
        }
        guard ZlibLimits.windowBits.contains(windowBits) else {
            throw .invalidParameter.with(detail: "window bits \(windowBits) is not in 9–15")
        }
        guard ZlibLimits.memLevels.contains(memLevel) else {
            throw .invalidParameter.with(detail: "memory level \(memLevel) is not in 1–9")
        }
        guard bufferSize >= 64 else {
            throw .invalidParameter.with(detail: "buffer size \(bufferSize) is below 64 bytes")
        }
        if let dictionary, !dictionary.isEmpty, format == .gzip {
            throw .dictionaryNotSupported
        }
    }

    /// zlib's documented deflate memory use for these settings, in bytes.
    public var estimatedMemory: Int {
        ZlibMemory.deflate(windowBits: windowBits, memLevel: memLevel)
    }
}

/// Settings of an ``Inflater``.
public struct InflateConfiguration: Sendable {
    /// The framing expected around the deflate blocks.
    public var format: ZlibFormat
    /// The largest window the input may use, 9–15. 15 reads everything.
    public var windowBits: Int
    /// The most bytes one stream (or one message) may decompress to; `nil` for no limit.
    /// Set it whenever the input is untrusted, so a small bomb cannot exhaust memory.
    public var maxOutput: Int?
    /// The preset dictionary the sender used (zlib and raw framing only).
    public var dictionary: [UInt8]?
    /// For gzip: decode concatenated members one after another, as `gzip -d` does.
    public var multiMember: Bool
    /// Size of the internal output buffer handed to sinks.
    public var bufferSize: Int

    /// Creates settings; the defaults read gzip with any window and no output limit.
    public init(
        format: ZlibFormat = .gzip,
        windowBits: Int = 15,
        maxOutput: Int? = nil,
        dictionary: [UInt8]? = nil,
        multiMember: Bool = true,
        bufferSize: Int = 64 * 1024
    ) {
        self.format = format
        self.windowBits = windowBits
        self.maxOutput = maxOutput
        self.dictionary = dictionary
        self.multiMember = multiMember
        self.bufferSize = bufferSize
    }

    func validate() throws(CompressionError) {
        guard ZlibLimits.windowBits.contains(windowBits) else {
            throw .invalidParameter.with(detail: "window bits \(windowBits) is not in 9–15")
        }
        guard bufferSize >= 64 else {
            throw .invalidParameter.with(detail: "buffer size \(bufferSize) is below 64 bytes")
        }
        if let maxOutput, maxOutput < 0 {
            throw .invalidParameter.with(detail: "output limit \(maxOutput) is negative")
        }
        if let dictionary, !dictionary.isEmpty, format == .gzip {
            throw .dictionaryNotSupported
        }
    }

    /// zlib's documented inflate memory use for this window, in bytes.
    public var estimatedMemory: Int {
        ZlibMemory.inflate(windowBits: windowBits)
    }
}

/// zlib's documented memory formulas (zconf.h), per stream.
public enum ZlibMemory {
    /// About 7 KiB of fixed inflate state besides the window.
    public static let inflateOverhead = 7 * 1024

    /// Deflate: `(1 << (windowBits + 2)) + (1 << (memLevel + 9))` bytes.
    public static func deflate(windowBits: Int, memLevel: Int = 8) -> Int {
        (1 << (windowBits + 2)) + (1 << (memLevel + 9))
    }

    /// Inflate: `(1 << windowBits)` bytes plus about 7 KiB.
    public static func inflate(windowBits: Int) -> Int {
        (1 << windowBits) + inflateOverhead
    }
}
