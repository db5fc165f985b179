import CIMZlib

/// A streaming zlib decompressor for raw, zlib and gzip framing, with an output cap.
///
/// Feed compressed bytes with ``decompress(_:into:)`` in pieces of any size (one byte at a time
/// works) and call ``finish()`` at the end of input to detect truncation. For gzip, concatenated
/// members are decoded one after another, as `gzip -d` does. Not thread-safe: use one per stream.
public final class Inflater {
    /// The settings this stream was created with.
    public let configuration: InflateConfiguration
    private let stream: UnsafeMutablePointer<z_stream>
    private let buffer: UnsafeMutableRawBufferPointer
    /// The current stream (or gzip member) reached its end.
    private var finished = false
    /// Bytes of the current gzip member seen so far, to check its magic number ourselves.
    private var memberBytesSeen = 0
    /// Number of complete gzip members (or streams) decoded.
    public private(set) var membersDecoded = 0
    /// Bytes produced since the output limit was last reset.
    var producedSinceMark = 0
    /// Stop quietly at the end of the stream instead of rejecting what follows (permessage-deflate).
    var ignoresTrailingData = false

    private static let gzipMagic: (UInt8, UInt8) = (0x1f, 0x8b)

    /// Starts a stream.
    /// - Throws: ``CompressionError/invalidParameter`` for out-of-range settings,
    ///   ``CompressionError/dictionaryNotSupported`` for a dictionary with gzip framing.
    public init(configuration: InflateConfiguration = InflateConfiguration()) throws(CompressionError) {
        try configuration.validate()
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = CIMZlib_inflateInit2(stream, configuration.format.zlibWindowBits(configuration.windowBits))
        guard rc == Z_OK else {
            stream.deallocate()
            throw rc == Z_MEM_ERROR ? .outOfMemory : .invalidParameter.with(detail: "inflateInit2 returned \(rc)")
        }
        self.stream = stream
        self.configuration = configuration
        self.buffer = .allocate(byteCount: configuration.bufferSize, alignment: 16)
        do {
            try applyRawDictionary()
        } catch {
            inflateEnd(stream)
            stream.deallocate()
            buffer.deallocate()
            throw error
        }
    }

    deinit {
        inflateEnd(stream)
        stream.deallocate()
        buffer.deallocate()
    }

    /// Whether the input so far ends exactly at the end of a stream (or gzip member).
    public var isFinished: Bool { finished }

    /// Decompresses `input`, appending the decoded bytes to `output`.
    public func decompress(_ input: UnsafeRawBufferPointer, into output: inout [UInt8]) throws(CompressionError) {
        do {
            try process(input) { chunk in output.append(contentsOf: chunk.assumingMemoryBound(to: UInt8.self)) }
        } catch {
            throw error as! CompressionError  // the sink above cannot throw
        }
    }

    /// Decompresses `input`, appending the decoded bytes to `output`.
    public func decompress(_ input: [UInt8], into output: inout [UInt8]) throws(CompressionError) {
        do {
            try input.withUnsafeBytes { bytes in
                try process(bytes) { chunk in output.append(contentsOf: chunk.assumingMemoryBound(to: UInt8.self)) }
            }
        } catch {
            throw error as! CompressionError
        }
    }

    /// Decompresses `input` and hands each filled piece of the internal buffer to `sink`.
    ///
    /// Output is produced in buffer-sized pieces, so memory stays constant however much the input
    /// expands. The buffer passed to `sink` is only valid during the call.
    public func decompress(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try process(input, emit: sink)
    }

    /// Declares the end of input.
    /// - Throws: ``CompressionError/truncatedInput`` unless the input ended exactly at the end of a stream.
    public func finish() throws(CompressionError) {
        guard finished else {
            throw memberBytesSeen == 0 && membersDecoded == 0
                ? CompressionError.truncatedInput.with(detail: "no input")
                : CompressionError.truncatedInput
        }
    }

    /// Starts a new stream with the same settings, keeping zlib's allocations.
    public func reset() throws(CompressionError) {
        try resetStream()
        membersDecoded = 0
        producedSinceMark = 0
    }

    /// Decompresses one complete stream.
    public static func decompress(
        _ input: [UInt8], configuration: InflateConfiguration = InflateConfiguration()
    ) throws(CompressionError) -> [UInt8] {
        let inflater = try Inflater(configuration: configuration)
        var output: [UInt8] = []
        output.reserveCapacity(input.count * 3)
        try inflater.decompress(input, into: &output)
        try inflater.finish()
        return output
    }

    private func resetStream() throws(CompressionError) {
        let rc = inflateReset(stream)
        guard rc == Z_OK else { throw .zlibFailure.with(detail: "inflateReset returned \(rc)") }
        finished = false
        memberBytesSeen = 0
        try applyRawDictionary()
    }

    // Raw streams carry no dictionary id, so zlib wants the dictionary up front; zlib framing
    // asks for it with Z_NEED_DICT instead.
    private func applyRawDictionary() throws(CompressionError) {
        guard configuration.format == .raw else { return }
        try setDictionary()
    }

    private func setDictionary() throws(CompressionError) {
        guard let dictionary = configuration.dictionary, !dictionary.isEmpty else { return }
        let rc = dictionary.withUnsafeBufferPointer { dict in
            inflateSetDictionary(stream, dict.baseAddress, uInt(dict.count))
        }
        switch rc {
        case Z_OK: return
        case Z_DATA_ERROR: throw .dictionaryMismatch
        default: throw .zlibFailure.with(detail: "inflateSetDictionary returned \(rc)")
        }
    }

    private func zlibMessage() -> String? {
        guard let msg = stream.pointee.msg else { return nil }
        return String(cString: msg)
    }

    private func process(_ input: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        var offset = 0
        while offset < input.count {
            if finished {
                guard configuration.format == .gzip && configuration.multiMember else {
                    if ignoresTrailingData { return }
                    throw CompressionError.trailingData
                }
                try resetStream()
            }
            if configuration.format == .gzip && memberBytesSeen < 2 {
                // Check the magic number ourselves: a clear "not gzip" before zlib sees anything.
                let magic = [Self.gzipMagic.0, Self.gzipMagic.1]
                var index = memberBytesSeen
                while index < 2 && offset + index - memberBytesSeen < input.count {
                    guard input[offset + index - memberBytesSeen] == magic[index] else {
                        throw membersDecoded == 0
                            ? CompressionError.notGzip
                            : CompressionError.trailingData.with(detail: "garbage after gzip member")
                    }
                    index += 1
                }
            }
            let count = min(input.count - offset, 1 << 30)
            stream.pointee.next_in = UnsafeMutablePointer(
                mutating: input.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(count)
            defer {
                let consumed = count - Int(stream.pointee.avail_in)
                offset += consumed
                memberBytesSeen += consumed
            }
            try inflateAvailable(emit: emit)
        }
    }

    /// Runs inflate until the available input is consumed or the stream ends.
    private func inflateAvailable(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        while true {
            var room = buffer.count
            if let limit = configuration.maxOutput {
                // One byte past the limit is enough to know it was exceeded.
                room = min(room, max(0, limit - producedSinceMark) + 1)
            }
            stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(room)
            let rc = inflate(stream, Z_NO_FLUSH)
            let produced = room - Int(stream.pointee.avail_out)
            if produced > 0 {
                producedSinceMark += produced
                if let limit = configuration.maxOutput, producedSinceMark > limit {
                    throw CompressionError.outputLimitExceeded.with(detail: "more than \(limit) bytes")
                }
                try emit(UnsafeRawBufferPointer(rebasing: buffer[0..<produced]))
            }
            switch rc {
            case Z_STREAM_END:
                finished = true
                membersDecoded += 1
                return
            case Z_OK, Z_BUF_ERROR:
                // Stop when zlib has consumed everything and has output room left: it needs input.
                if stream.pointee.avail_in == 0 && stream.pointee.avail_out != 0 { return }
                if rc == Z_BUF_ERROR && stream.pointee.avail_out != 0 {
                    throw CompressionError.zlibFailure.with(detail: "inflate made no progress")
                }
            case Z_NEED_DICT:
                guard let dictionary = configuration.dictionary, !dictionary.isEmpty else {
                    throw CompressionError.dictionaryNeeded
                }
                try setDictionary()
            case Z_DATA_ERROR:
                let message = zlibMessage()
                if message == "incorrect header check" || message == "unknown compression method" {
                    throw CompressionError.wrongFormat.with(detail: "not \(configuration.format.rawValue) data: \(message ?? "")")
                }
                throw CompressionError.corruptData.with(detail: message)
            case Z_MEM_ERROR:
                throw CompressionError.outOfMemory
            default:
                throw CompressionError.zlibFailure.with(detail: "inflate returned \(rc)")
            }
        }
    }
}
