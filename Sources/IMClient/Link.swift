import Foundation
import HTTPTypes
import HummingbirdWSClient
import HummingbirdWSCompression
import IMWire
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// What the server said when it accepted our token.
public struct Authed: Sendable {
    public var user: String
    public var maxMessageBytes: Int
}

/// One authenticated WebSocket connection: connect, send `auth`, wait for `authed`, then hand over.
enum Link {
    /// Largest frame accepted from the server (a history page is many frames, never one big one).
    static let maxInboundFrame = 16 << 20

    typealias Session = @Sendable (inout WebSocketInboundStream.AsyncIterator, WebSocketOutboundWriter, Authed) async throws -> Void

    /// Connects and runs `session` once signed in. Throws `ClientError` for refusals and failures to connect;
    /// returns normally when the connection ends after sign-in (the session decides whether that is done).
    static func run(_ configuration: ClientConfiguration, logger: Logger, session: @escaping Session) async throws {
        var extensions: [WebSocketExtensionFactory] = []
        if configuration.compression {
            extensions.append(.perMessageDeflate(maxDecompressedFrameSize: maxInboundFrame))
        }
        let wsConfiguration = WebSocketClientConfiguration(maxFrameSize: maxInboundFrame, extensions: extensions,
                                                           closeTimeout: .seconds(2), validateUTF8: true)
        let signedIn = Atomic<Bool>(false)
        do {
            try await WebSocketClient.connect(url: configuration.webSocketURL, configuration: wsConfiguration, logger: logger) {
                inbound, outbound, _ in
                try await outbound.write(.text(ClientFrame.auth(token: configuration.token).encoded()))
                var iterator = inbound.makeAsyncIterator()
                let authed: Authed
                while true {
                    guard let message = try await iterator.nextMessage(maxSize: maxInboundFrame) else {
                        throw ClientError(.unreachable, "the server closed the connection during sign-in")
                    }
                    guard case .text(let text) = message else { continue }
                    let frame = try ServerFrame.decode(text.utf8)
                    if case .error(let code, let message, _) = frame {
                        throw ClientError.fromServer(code, message)
                    }
                    if case .authed(let user) = frame {
                        authed = Authed(user: user, maxMessageBytes: Self.maxBytes(in: text) ?? 65536)
                        break
                    }
                }
                signedIn.store(true, ordering: .relaxed)
                try await session(&iterator, outbound, authed)
            }
        } catch let error as ClientError {
            throw error
        } catch let error as WireError {
            throw ClientError(.server, "protocol error: \(error)")
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if signedIn.load(ordering: .relaxed) { return }  // lost after sign-in: the caller decides
            if let e = error as? WebSocketClientError, e == .invalidURL {
                throw ClientError(.usage, "invalid server URL '\(configuration.server)'")
            }
            throw ClientError(.unreachable, "cannot connect to \(configuration.webSocketURL): \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("ECONNREFUSED") {
            return "connection refused"
        }
        return text
    }

    /// `max_message_bytes` of an `authed` frame (older servers may not send it).
    private static func maxBytes(in text: String) -> Int? {
        guard let r = text.range(of: "\"max_message_bytes\":") else { return nil }
        return Int(text[r.upperBound...].prefix { $0.isNumber })
    }
}
