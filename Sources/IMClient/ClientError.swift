import IMWire

/// Why a client operation failed. The CLI maps each kind to an exit code (imctl's `Output.exit(for:)`).
public struct ClientError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Equatable, Sendable {
        /// The server could not be reached, or the connection was lost and not resumed (exit 69).
        case unreachable
        /// The token or password was refused (exit 77).
        case unauthorized
        /// The password was right but the user also needs a one-time code (exit 77 unless one is given).
        case otpRequired
        /// A message is over the server's limit (exit 65).
        case tooLarge
        /// The input or a request was refused as invalid (exit 65).
        case badInput
        /// Nothing happened within the allowed time (exit 75).
        case timeout
        /// Anything else the server refused or failed (exit 1).
        case server
        /// The server URL cannot be used (malformed, or not ws/wss/http/https).
        case badURL
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// Maps a server `error` frame.
    static func fromServer(_ code: WireError.Code, _ message: String) -> ClientError {
        switch code {
        case .unauthorized, .forbidden: ClientError(.unauthorized, message)
        case .tooLarge: ClientError(.tooLarge, message)
        case .badTarget, .notFound, .badFrame, .badJSON: ClientError(.badInput, message)
        default: ClientError(.server, "server error (\(code.rawValue)): \(message)")
        }
    }
}
