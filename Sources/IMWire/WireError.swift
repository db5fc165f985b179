/// A protocol-level failure, carried to the peer as an `error` frame with a stable code.
public struct WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The stable, machine-readable code sent in `error` frames (see docs/PROTOCOL.md).
    public let code: Code
    /// A human-readable reason.
    public let message: String

    /// The codes of `error` frames.
    public enum Code: String, Sendable, Codable {
        case badJSON = "bad_json"
        case badFrame = "bad_frame"
        case unknownOp = "unknown_op"
        case unauthorized = "unauthorized"
        case forbidden = "forbidden"
        case badTarget = "bad_target"
        case tooLarge = "too_large"
        case binaryFrame = "binary_frame"
        case notFound = "not_found"
        case conflict = "conflict"
        case unavailable = "unavailable"
        /// Over the sends per second a connection may make: resend the same id after a pause.
        case rateLimited = "rate_limited"
        /// A per-connection limit (such as the number of subscriptions) was reached.
        case limit = "limit"
        case `internal` = "internal"
    }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public static func badJSON(_ m: String) -> WireError { .init(.badJSON, m) }
    public static func badFrame(_ m: String) -> WireError { .init(.badFrame, m) }
    public static func unknownOp(_ op: String) -> WireError { .init(.unknownOp, "unknown op '\(op.prefix(64))'") }
    public static func unauthorized(_ m: String) -> WireError { .init(.unauthorized, m) }
    public static func forbidden(_ m: String) -> WireError { .init(.forbidden, m) }
    public static func badTarget(_ m: String) -> WireError { .init(.badTarget, m) }
    public static func tooLarge(_ m: String) -> WireError { .init(.tooLarge, m) }
}
