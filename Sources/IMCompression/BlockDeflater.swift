import CIMZlib

/// The gzip framing pieces for a stream compressed in independent blocks, pigz's way: a header, the
/// blocks' raw deflate data one after another, and a trailer with the CRC-32 and length of it all.
public enum GzipFraming {
    /// Input per block: 128 KiB, pigz's default.
    public static let blockSize = 128 * 1024
    /// The history a block is primed with: deflate's whole window.
    public static let dictionarySize = 32 * 1024

    /// RFC 1952 header: no name, no time, XFL telling the level class, OS Unix.
    public static func header(level: Int) -> [UInt8] {
        [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, level >= 9 ? 2 : level == 1 ? 4 : 0, 3]
    }

    /// RFC 1952 trailer: the CRC-32 and the length modulo 2³², both little-endian.
    public static func trailer(crc: UInt32, length: UInt64) -> [UInt8] {
        let size = UInt32(truncatingIfNeeded: length)
        return [crc, size].flatMap { v in (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    }

    /// CRC-32 of `bytes`.
    public static func crc32(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return 0 }
        var crc: UInt = 0
        var offset = 0
        while offset < bytes.count {
            let n = min(bytes.count - offset, 1 << 30)
            crc = CIMZlib.crc32(crc, base.advanced(by: offset).assumingMemoryBound(to: Bytef.self), uInt(n))
            offset += n
        }
        return UInt32(crc)
    }

    /// The CRC-32 of A followed by B, from A's, B's and B's length.
    public static func combine(_ a: UInt32, _ b: UInt32, lengthOfB: Int) -> UInt32 {
        UInt32(CIMZlib_crc32Combine(UInt(a), UInt(b), Int64(lengthOfB)))
    }
}

/// Compresses blocks of one stream independently, so that several can be compressed at once: each
/// block is primed with the input before it as a preset dictionary (so it loses little ratio), ends
/// with a sync flush (so it ends on a byte), and the last with deflate's final block. Concatenated in
/// order, the blocks' outputs form one raw deflate stream. Not thread-safe: one per thread.
public final class BlockDeflater {
    private let stream: UnsafeMutablePointer<z_stream>
    private let buffer: UnsafeMutableRawBufferPointer

    public init(level: Int, memLevel: Int = 8) throws(CompressionError) {
        guard (0...9).contains(level) else { throw CompressionError.invalidParameter.with(detail: "level \(level) is not 0…9") }
        let stream = UnsafeMutablePointer<z_stream>.allocate(capacity: 1)
        stream.initialize(to: z_stream())
        let rc = CIMZlib_deflateInit2(stream, Int32(level), Z_DEFLATED, -15, Int32(memLevel), Z_DEFAULT_STRATEGY)
        guard rc == Z_OK else {
            stream.deallocate()
            throw rc == Z_MEM_ERROR ? .outOfMemory : .invalidParameter.with(detail: "deflateInit2 returned \(rc)")
        }
        self.stream = stream
        self.buffer = .allocate(byteCount: 64 * 1024, alignment: 16)
    }

    deinit {
        deflateEnd(stream)
        stream.deallocate()
        buffer.deallocate()
    }

    /// Compresses `block`, primed with `dictionary` (the up to 32 KiB of input just before it; empty for
    /// the first block), appending the raw deflate data to `output`.
    /// - Parameter last: end with deflate's final block instead of a sync flush.
    public func compress(
        _ block: UnsafeRawBufferPointer, dictionary: UnsafeRawBufferPointer, last: Bool, into output: inout [UInt8]
    ) throws(CompressionError) {
        var rc = deflateReset(stream)
        guard rc == Z_OK else { throw .zlibFailure.with(detail: "deflateReset returned \(rc)") }
        if let base = dictionary.baseAddress, dictionary.count > 0 {
            let tail = dictionary.count > GzipFraming.dictionarySize ? dictionary.count - GzipFraming.dictionarySize : 0
            rc = deflateSetDictionary(stream, base.advanced(by: tail).assumingMemoryBound(to: Bytef.self), uInt(dictionary.count - tail))
            guard rc == Z_OK else { throw .zlibFailure.with(detail: "deflateSetDictionary returned \(rc)") }
        }
        stream.pointee.next_in = block.count == 0
            ? nil : UnsafeMutablePointer(mutating: block.baseAddress!.assumingMemoryBound(to: Bytef.self))
        stream.pointee.avail_in = uInt(block.count)
        let flush = last ? Z_FINISH : Z_SYNC_FLUSH
        while true {
            stream.pointee.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            stream.pointee.avail_out = uInt(buffer.count)
            rc = deflate(stream, flush)
            guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                throw .zlibFailure.with(detail: "deflate returned \(rc)")
            }
            let produced = buffer.count - Int(stream.pointee.avail_out)
            output.append(contentsOf: UnsafeRawBufferPointer(start: buffer.baseAddress, count: produced))
            // Done when zlib had room to spare (a sync flush is complete) or the stream has ended.
            if last ? rc == Z_STREAM_END : stream.pointee.avail_out != 0 { return }
        }
    }
}
