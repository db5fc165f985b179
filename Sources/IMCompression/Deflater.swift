import CIMZlib

/// A streaming zlib compressor for raw, zlib and gzip framing.
///
/// Feed input with ``compress(_:flush:into:)`` as it arrives and end with ``finish(into:)``; the
/// same instance can start a new stream after ``reset()``. Not thread-safe: use one per stream.
public final class Deflater {
    /// The settings this stream was created with.
    public let configuration: DeflateConfiguration
    private let stream: UnsafeMutablePointer<z_stream>
    private let buffer: UnsafeMutableRawBufferPointer
    private var finished = false

    /// Starts a stream.
    /// - Throws: ``CompressionError/invalidParameter`` for out-of-range settings,
    ///   ``CompressionError/dictionaryNotSupported`` for a dictionary with gzip framing.
    public init(configuration: DeflateConfiguration = DeflateConfiguration()) throws(CompressionError) {
        try configuration.validate()
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = CIMZlib_deflateInit2(
            stream, Int32(configuration.level), Z_DEFLATED,
            configuration.format.zlibWindowBits(configuration.windowBits),
            Int32(configuration.memLevel), configuration.strategy.zlibValue)
        guard rc == Z_OK else {
            stream.deallocate()
            throw rc == Z_MEM_ERROR ? .outOfMemory : .invalidParameter.with(detail: "deflateInit2 returned \(rc)")
        }
        self.stream = stream
        self.configuration = configuration
        self.buffer = .allocate(byteCount: configuration.bufferSize, alignment: 16)
        do {
            try applyDictionary()
        } catch {
            deflateEnd(stream)
            stream.deallocate()
            buffer.deallocate()
            throw error
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
        buffer.deallocate()
    }

    /// Whether ``finish(into:)`` (or a `.finish` flush) has ended the stream.
    public var isFinished: Bool { finished }

    /// Total bytes consumed since the stream started.
    public var totalIn: Int { Int(stream.pointee.total_in) }

    /// Total bytes produced since the stream started.
    public var totalOut: Int { Int(stream.pointee.total_out) }

    /// Compresses `input`, appending whatever zlib emits to `output`.
    public func compress(
        _ input: UnsafeRawBufferPointer, flush: FlushMode = .none, into output: inout [UInt8]
    ) throws(CompressionError) {
        do {
            try process(input, flush: flush) { chunk in output.append(contentsOf: chunk.assumingMemoryBound(to: UInt8.self)) }
        } catch {
            throw error as! CompressionError  // the sink above cannot throw
        }
    }

    /// Compresses `input`, appending whatever zlib emits to `output`.
    public func compress(_ input: [UInt8], flush: FlushMode = .none, into output: inout [UInt8]) throws(CompressionError) {
        do {
            try input.withUnsafeBytes { bytes in
                try process(bytes, flush: flush) { chunk in output.append(contentsOf: chunk.assumingMemoryBound(to: UInt8.self)) }
            }
        } catch {
            throw error as! CompressionError
        }
    }

    /// Ends the stream, appending the final block and trailer to `output`.
    public func finish(into output: inout [UInt8]) throws(CompressionError) {
        try compress(UnsafeRawBufferPointer(start: nil, count: 0), flush: .finish, into: &output)
    }

    /// Compresses `input` and hands each filled piece of the internal buffer to `sink`.
    ///
    /// The buffer passed to `sink` is only valid during the call. Use this to write straight to a
    /// file descriptor without collecting the output.
    public func compress(
        _ input: UnsafeRawBufferPointer, flush: FlushMode = .none,
        sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        try process(input, flush: flush, emit: sink)
    }

    /// Starts a new stream with the same settings (and dictionary), keeping zlib's allocations.
    public func reset() throws(CompressionError) {
        let rc = deflateReset(stream)
        guard rc == Z_OK else { throw .zlibFailure.with(detail: "deflateReset returned \(rc)") }
        finished = false
        try applyDictionary()
    }

    /// Compresses `input` into one complete stream.
    public static func compress(
        _ input: [UInt8], configuration: DeflateConfiguration = DeflateConfiguration()
    ) throws(CompressionError) -> [UInt8] {
        let deflater = try Deflater(configuration: configuration)
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 2 + 64)
        try deflater.compress(input, flush: .finish, into: &output)
        return output
    }

    private func applyDictionary() throws(CompressionError) {
        guard let dictionary = configuration.dictionary, !dictionary.isEmpty else { return }
        let rc = dictionary.withUnsafeBufferPointer { dict in
            deflateSetDictionary(stream, dict.baseAddress, uInt(dict.count))
        }
        guard rc == Z_OK else { throw .zlibFailure.with(detail: "deflateSetDictionary returned \(rc)") }
    }

    // zlib's counters are 32-bit: feed very large inputs in slices.
    private static let maxSlice = 1 << 30

    private func process(
        _ input: UnsafeRawBufferPointer, flush: FlushMode, emit: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard !finished else { throw CompressionError.streamFinished }
        var offset = 0
        repeat {
            let count = min(input.count - offset, Self.maxSlice)
            let isLast = offset + count == input.count
            let mode = isLast ? flush : .none
            stream.pointee.next_in = count == 0
                ? nil : UnsafeMutablePointer(mutating: input.baseAddress!.advanced(by: offset).assumingMemoryBound(to: Bytef.self))
            stream.pointee.avail_in = uInt(count)
            while true {
                stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
                stream.pointee.avail_out = uInt(buffer.count)
                let rc = deflate(stream, mode.zlibValue)
                let produced = buffer.count - Int(stream.pointee.avail_out)
                if produced > 0 {
                    try emit(UnsafeRawBufferPointer(rebasing: buffer[0..<produced]))
                }
                if rc == Z_STREAM_END {
                    finished = true
                    break
                }
                guard rc == Z_OK || rc == Z_BUF_ERROR else {
                    throw CompressionError.zlibFailure.with(detail: "deflate returned \(rc)")
                }
                // A full buffer means zlib may have more to say; otherwise all input is consumed
                // and the requested flush is complete.
                if stream.pointee.avail_out != 0 {
                    if mode == .finish && rc == Z_BUF_ERROR {
                        throw CompressionError.zlibFailure.with(detail: "deflate made no progress")
                    }
                    if mode != .finish { break }
                }
            }
            offset += count
        } while offset < input.count
    }
}
