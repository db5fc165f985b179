/// Settings of one direction of a permessage-deflate (RFC 7692) stream.
public struct PerMessageDeflateConfiguration: Sendable {
    /// The LZ77 window, 9–15 (`server_max_window_bits` / `client_max_window_bits`).
    public var windowBits: Int
    /// Keep the window between messages (`*_no_context_takeover` absent). Better ratio, and the
    /// compressor and decompressor state stays allocated for the life of the connection.
    public var contextTakeover: Bool
    /// Compression level, 0–9.
    public var level: Int
    /// Hash table size, 1–9; lowers deflate memory at some cost in ratio.
    public var memLevel: Int
    /// A preset dictionary primed before every message (or once, with context takeover).
    /// Not part of RFC 7692: both ends must agree on it out of band.
    public var dictionary: [UInt8]?
    /// The most bytes one message may decompress to; `nil` for no limit.
    public var maxMessageSize: Int?

    /// Creates settings; the defaults are RFC 7692's (15-bit window, context takeover) at level 6.
    public init(
        windowBits: Int = 15,
        contextTakeover: Bool = true,
        level: Int = 6,
        memLevel: Int = 8,
        dictionary: [UInt8]? = nil,
        maxMessageSize: Int? = nil
    ) {
        self.windowBits = windowBits
        self.contextTakeover = contextTakeover
        self.level = level
        self.memLevel = memLevel
        self.dictionary = dictionary
        self.maxMessageSize = maxMessageSize
    }

    var deflate: DeflateConfiguration {
        DeflateConfiguration(
            format: .raw, level: level, windowBits: windowBits, memLevel: memLevel, dictionary: dictionary)
    }

    var inflate: InflateConfiguration {
        InflateConfiguration(
            format: .raw, windowBits: windowBits, maxOutput: maxMessageSize, dictionary: dictionary, bufferSize: 16 * 1024)
    }
}

/// The four bytes a sync flush ends with; RFC 7692 strips them from each message and the receiver
/// appends them again.
let syncFlushTail: [UInt8] = [0x00, 0x00, 0xff, 0xff]

/// Compresses messages one at a time exactly as RFC 7692 permessage-deflate does.
public final class PerMessageDeflater {
    /// The settings of this direction.
    public let configuration: PerMessageDeflateConfiguration
    private let deflater: Deflater

    /// Creates the compressing side of a connection.
    public init(configuration: PerMessageDeflateConfiguration = PerMessageDeflateConfiguration()) throws(CompressionError) {
        self.configuration = configuration
        self.deflater = try Deflater(configuration: configuration.deflate)
    }

    /// Compresses one message, appending its wire payload (without the trailing `00 00 ff ff`) to `output`.
    public func compress(_ message: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(CompressionError) {
        let start = output.count
        try deflater.compress(message, flush: .sync, into: &output)
        if output.count - start >= 4 && output[(output.count - 4)...].elementsEqual(syncFlushTail) {
            output.removeLast(4)
        }
        if !configuration.contextTakeover {
            try deflater.reset()
        }
    }

    /// Compresses one message and returns its wire payload.
    public func compress(_ message: [UInt8]) throws(CompressionError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(message.count / 2 + 16)
        do {
            try message.withUnsafeBytes { bytes in try compress(bytes, into: &output) }
        } catch {
            throw error as! CompressionError
        }
        return output
    }
}

/// Decompresses permessage-deflate payloads: appends `00 00 ff ff` and inflates, per RFC 7692.
public final class PerMessageInflater {
    /// The settings of this direction.
    public let configuration: PerMessageDeflateConfiguration
    private let inflater: Inflater

    /// Creates the decompressing side of a connection.
    public init(configuration: PerMessageDeflateConfiguration = PerMessageDeflateConfiguration()) throws(CompressionError) {
        self.configuration = configuration
        self.inflater = try Inflater(configuration: configuration.inflate)
        inflater.ignoresTrailingData = true
    }

    /// Decompresses one message payload, appending the message to `output`.
    /// - Throws: ``CompressionError/outputLimitExceeded`` past `maxMessageSize`, or the data errors.
    public func decompress(_ payload: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(CompressionError) {
        inflater.producedSinceMark = 0
        do {
            try inflater.decompress(payload, into: &output)
            try syncFlushTail.withUnsafeBytes { tail in
                try inflater.decompress(tail, into: &output)
            }
            // A sender may end a message with a final block; the next one then starts afresh.
            if inflater.isFinished || !configuration.contextTakeover {
                try inflater.reset()
            }
        } catch {
            // After an error the stream's state is unusable; start clean so the connection can
            // decide whether to go on.
            try? inflater.reset()
            throw error as! CompressionError
        }
    }

    /// Decompresses one message payload and returns the message.
    public func decompress(_ payload: [UInt8]) throws(CompressionError) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(payload.count * 3 + 16)
        do {
            try payload.withUnsafeBytes { bytes in try decompress(bytes, into: &output) }
        } catch {
            throw error as! CompressionError
        }
        return output
    }
}
