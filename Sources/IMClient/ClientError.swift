import IMWire

/// Why a client operation failed; each case maps to one exit code of the CLI.
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
        /// A usage problem found at run time, e.g. a malformed URL (exit 64).
        case usage
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }

    /// The sysexits code for this failure.
    public var exitCode: Int32 {
        switch kind {
        case .unreachable: 69
        case .unauthorized, .otpRequired: 77
        case .tooLarge, .badInput: 65
        case .timeout: 75
        case .server: 1
        case .usage: 64
        }
    }

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
