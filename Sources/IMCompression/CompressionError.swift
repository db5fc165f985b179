/// The one error type of IMCompression: every failure of a deflate or inflate stream.
///
/// Errors compare equal when they are the same kind of failure; ``detail`` (zlib's own message,
/// a limit) is informative and does not take part in `==`.
public struct CompressionError: Error, Equatable, Sendable, CustomStringConvertible {
    private enum Kind: Equatable, Sendable {
        case corruptData
        case truncatedInput
        case outputLimitExceeded
        case notGzip
        case wrongFormat
        case trailingData
        case dictionaryNeeded
        case dictionaryMismatch
        case dictionaryNotSupported
        case invalidParameter
        case streamFinished
        case outOfMemory
        case verificationFailed
        case zlibFailure
    }

    private let kind: Kind
    /// Extra context: zlib's message, the limit that was hit, the parameter that was wrong.
    public let detail: String?

    private init(_ kind: Kind, _ detail: String? = nil) {
        self.kind = kind
        self.detail = detail
    }

    /// The compressed data is invalid (a bad block, a bad distance, a checksum mismatch).
    public static let corruptData = CompressionError(.corruptData)
    /// The input ended before the compressed stream did.
    public static let truncatedInput = CompressionError(.truncatedInput)
    /// Decompressing produced more bytes than the configured maximum (a decompression bomb).
    public static let outputLimitExceeded = CompressionError(.outputLimitExceeded)
    /// gzip framing was expected but the input does not start with the gzip magic bytes.
    public static let notGzip = CompressionError(.notGzip)
    /// The input is not in the expected framing (for example a bad zlib header).
    public static let wrongFormat = CompressionError(.wrongFormat)
    /// Bytes follow the end of a zlib or raw deflate stream, or garbage follows a gzip member.
    public static let trailingData = CompressionError(.trailingData)
    /// The stream was compressed with a preset dictionary and none was configured.
    public static let dictionaryNeeded = CompressionError(.dictionaryNeeded)
    /// The configured preset dictionary is not the one the stream was compressed with.
    public static let dictionaryMismatch = CompressionError(.dictionaryMismatch)
    /// Preset dictionaries work only with zlib and raw framing; zlib refuses them for gzip.
    public static let dictionaryNotSupported = CompressionError(.dictionaryNotSupported)
    /// A level, window size, memory level or other setting is out of range.
    public static let invalidParameter = CompressionError(.invalidParameter)
    /// Data was written to a stream after it was finished.
    public static let streamFinished = CompressionError(.streamFinished)
    /// zlib could not allocate its state.
    public static let outOfMemory = CompressionError(.outOfMemory)
    /// A measurement round trip did not give back the original bytes.
    public static let verificationFailed = CompressionError(.verificationFailed)
    /// zlib returned an unexpected status code.
    public static let zlibFailure = CompressionError(.zlibFailure)

    /// The same error with extra context attached.
    public func with(detail: String?) -> CompressionError {
        CompressionError(kind, detail)
    }

    public static func == (lhs: CompressionError, rhs: CompressionError) -> Bool {
        lhs.kind == rhs.kind
    }

    public var description: String {
        let base: String
        switch kind {
        case .corruptData: base = "corrupt compressed data"
        case .truncatedInput: base = "unexpected end of input (truncated compressed data)"
        case .outputLimitExceeded: base = "decompressed output exceeds the size limit"
        case .notGzip: base = "not in gzip format"
        case .wrongFormat: base = "input is not in the expected format"
        case .trailingData: base = "unexpected data after the end of the compressed stream"
        case .dictionaryNeeded: base = "stream needs a preset dictionary and none was given"
        case .dictionaryMismatch: base = "preset dictionary does not match the stream"
        case .dictionaryNotSupported: base = "preset dictionaries need zlib or raw framing, not gzip"
        case .invalidParameter: base = "invalid compression parameter"
        case .streamFinished: base = "stream already finished"
        case .outOfMemory: base = "zlib ran out of memory"
        case .verificationFailed: base = "round trip did not reproduce the input"
        case .zlibFailure: base = "unexpected zlib failure"
        }
        guard let detail, !detail.isEmpty else { return base }
        return "\(base) (\(detail))"
    }
}
