/// The framing around a deflate stream.
public enum ZlibFormat: String, Sendable, Codable, CaseIterable {
    /// Bare deflate blocks (RFC 1951), as permessage-deflate sends them.
    case raw
    /// A 2-byte header and an Adler-32 trailer (RFC 1950).
    case zlib
    /// A gzip member (RFC 1952), what `gzip` reads and writes.
    case gzip

    /// The `windowBits` argument zlib expects for this framing and window size.
    func zlibWindowBits(_ windowBits: Int) -> Int32 {
        switch self {
        case .raw: return Int32(-windowBits)
        case .zlib: return Int32(windowBits)
        case .gzip: return Int32(windowBits + 16)
        }
    }
}

/// zlib's match-finding strategy.
public enum CompressionStrategy: Sendable, Codable {
    /// Normal LZ77 + Huffman.
    case `default`
    /// For data of small random values; more Huffman, fewer short matches.
    case filtered
    /// Huffman coding only, no string matching.
    case huffmanOnly
    /// Matches of distance one only (run-length encoding).
    case rle
    /// Fixed Huffman codes, no dynamic trees.
    case fixed

    var zlibValue: Int32 {
        switch self {
        case .default: return 0  // Z_DEFAULT_STRATEGY
        case .filtered: return 1  // Z_FILTERED
        case .huffmanOnly: return 2  // Z_HUFFMAN_ONLY
        case .rle: return 3  // Z_RLE
        case .fixed: return 4  // Z_FIXED
        }
    }
}

/// How much a ``Deflater`` flushes after consuming its input.
public enum FlushMode: Sendable {
    /// Keep data buffered for the best ratio.
    case none
    /// Emit everything so far, ending on a byte boundary with an empty stored block (`00 00 ff ff`).
    case sync
    /// Like ``sync``, and forget history so decoding can restart here.
    case full
    /// End the stream (write the final block and the trailer).
    case finish

    var zlibValue: Int32 {
        switch self {
        case .none: return 0  // Z_NO_FLUSH
        case .sync: return 2  // Z_SYNC_FLUSH
        case .full: return 3  // Z_FULL_FLUSH
        case .finish: return 4  // Z_FINISH
        }
    }
}

/// Limits of zlib's parameters, checked before they reach zlib.
public enum ZlibLimits {
    /// Compression levels: 0 stores, 9 compresses hardest.
    public static let levels = 0...9
    /// Window sizes as a power of two. zlib turns a raw window of 8 into 9, so 9 is the floor.
    public static let windowBits = 9...15
    /// Memory levels for the match hash tables.
    public static let memLevels = 1...9
    /// The largest useful preset dictionary: the largest window.
    public static let maxDictionarySize = 32 * 1024
}
