import Foundation
import HTTPTypes
import HummingbirdWSClient
import HummingbirdWSCompression
import IMWire
import Logging
import NIOCore
import NIOWebSocket
import NIOSSL
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
        // The WebSocket client can wait forever for an upgrade answer that never comes (a plain ws:// request to a
        // TLS port is closed by the server without one): the attempt runs apart and is abandoned after
        // `signInTimeout` unless it has signed in by then.
        let signedIn = Flag()
        let (outcomes, outcome) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        let attempt = Task {
            do {
                try await connect(configuration, logger: logger, signedIn: signedIn, session: session)
                outcome.yield(.success(()))
            } catch {
                outcome.yield(.failure(error))
            }
        }
        let timer = Task {
            try await Task.sleep(for: configuration.signInTimeout)
            if !signedIn.load() {
                outcome.yield(.failure(ClientError(.unreachable, "no sign-in answer from \(configuration.webSocketURL) within "
                    + "\(configuration.signInTimeout)\(configuration.usesTLS ? "" : " (a TLS server? use wss://)")")))
            }
        }
        var iterator = outcomes.makeAsyncIterator()
        let result = await withTaskCancellationHandler {
            await iterator.next()
        } onCancel: {
            attempt.cancel()
            outcome.yield(.failure(CancellationError()))
        }
        timer.cancel()
        if case .failure = result { attempt.cancel() }
        try result?.get()
    }

    /// The reconnect loop of both clients: runs `session` on a connection, and when a connection that
    /// once worked is lost, connects again after a capped, jittered pause, until `outcome` has a result
    /// (asked after every connection) or the client may not go on. A first connection that fails, and
    /// any error but a lost connection, end it; so do `configuration.reconnect` off and a
    /// `reconnectWindow` spent without getting back.
    /// - Parameters:
    ///   - outcome: given the reconnections so far; a value ends the loop, `nil` goes on.
    ///   - detail: what the client got done, added to the error when it gives up.
    static func reconnecting<T>(_ configuration: ClientConfiguration, logger: Logger, session: @escaping Session,
                                outcome: (_ reconnects: Int) throws -> T?, detail: () -> String = { "" }) async throws -> T {
        var plan = ReconnectPlan(maxBackoff: configuration.maxBackoff, window: configuration.reconnectWindow)
        var reconnects = 0
        // Several servers: one that cannot be reached (or is lost) hands over to the next.
        let servers = max(configuration.servers.count, 1)
        var index = 0
        var firstFailures = 0
        while true {
            do {
                try await run(configuration.aimed(at: index), logger: logger, session: session)
                plan.connected()
            } catch let error as ClientError {
                guard error.kind == .unreachable else { throw error }
                if !plan.everConnected {
                    // The first connection: every server is tried once before this is an error.
                    firstFailures += 1
                    if firstFailures >= servers { throw error }
                    logger.warning("\(error.message); trying \(configuration.aimed(at: index + 1).server)")
                    index += 1
                    continue
                }
            }
            if servers > 1 { index += 1 }
            if let result = try outcome(reconnects) { return result }
            guard configuration.reconnect else {
                throw ClientError(.unreachable, "lost the connection to \(configuration.server)\(detail())")
            }
            switch plan.lost(at: .now) {
            case .giveUp(let window):
                throw ClientError(.unreachable, "could not get back to \(configuration.server) within \(window)\(detail())")
            case .retry(after: let pause):
                logger.warning("connection lost; reconnecting in \(pause)")
                try await Task.sleep(for: pause)
            }
            reconnects += 1
        }
    }

    /// A flag shared between tasks.
    final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func load() -> Bool { value.load(ordering: .relaxed) }
        func set() { value.store(true, ordering: .relaxed) }
    }

    private static func connect(_ configuration: ClientConfiguration, logger: Logger, signedIn: Flag,
                                session: @escaping Session) async throws {
        var extensions: [WebSocketExtensionFactory] = []
        if configuration.compression {
            extensions.append(.perMessageDeflate(maxDecompressedFrameSize: maxInboundFrame))
        }
        let wsConfiguration = WebSocketClientConfiguration(maxFrameSize: maxInboundFrame, extensions: extensions,
                                                           closeTimeout: .seconds(2), validateUTF8: true)
        do {
            let tls = configuration.usesTLS ? ClientConfiguration.tlsConfiguration(caCertificatePath: configuration.caCertificatePath) : nil
            let channel = try ChatClientChannel(url: configuration.webSocketURL, configuration: wsConfiguration, tlsConfiguration: tls) {
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
                        // The server could not check the token just now: like a failed connect, retried.
                        if code == .unavailable { throw ClientError(.unreachable, "the server is unavailable: \(message)") }
                        throw ClientError.fromServer(code, message)
                    }
                    if case .authed(let user, let maxMessageBytes) = frame {
                        // Servers that do not say are taken to have the default limit.
                        authed = Authed(user: user, maxMessageBytes: maxMessageBytes ?? 65536)
                        break
                    }
                }
                signedIn.set()
                try await session(&iterator, outbound, authed)
            }
            _ = try await ClientConnection(channel, address: .hostname(channel.host, port: channel.port), logger: logger).run()
        } catch let error as ClientError {
            throw error
        } catch let error as WireError {
            throw ClientError(.server, "protocol error: \(error)")
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if signedIn.load() { return }  // lost after sign-in: the caller decides
            if let e = error as? WebSocketClientError, e == .invalidURL {
                throw ClientError(.badURL, "invalid server URL '\(configuration.server)'")
            }
            throw ClientError(.unreachable, "cannot connect to \(configuration.webSocketURL): \(Self.describe(error))")
        }
    }

    static func describe(_ error: any Error) -> String {
        let text = String(describing: error)
        if text.contains("connectionRefused") || text.contains("Connection refused") || text.contains("ECONNREFUSED") {
            return "connection refused"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("certificate verify failed") || text.contains("handshakeFailed") {
            return "TLS handshake failed (\(text)); for a private or self-signed certificate give --cacert FILE"
        }
        return text
    }

}

/// When a client that lost its connection tries again, and when it gives up: capped, jittered backoff
/// that starts over after each connection that works, and a window (`reconnectWindow`) after which a
/// server still gone counts as gone. Pure: the time is given, so tests need no sleeps.
struct ReconnectPlan {
    enum Decision: Equatable {
        /// Pause this long, then connect again.
        case retry(after: Duration)
        /// The server has been gone longer than the window.
        case giveUp(window: Duration)
    }

    private var backoff: Backoff
    private let window: Duration?
    /// When the current outage began (the first loss since the last good connection).
    private var lostSince: ContinuousClock.Instant?
    /// Whether any connection worked: a first connection that fails is an error, not an outage.
    private(set) var everConnected = false

    init(maxBackoff: Duration, window: Duration?) {
        backoff = Backoff(cap: maxBackoff)
        self.window = window
    }

    /// A connection signed in (and has ended since).
    mutating func connected() {
        everConnected = true
        lostSince = nil
        backoff.reset()
    }

    /// The connection was lost, or an attempt to get it back failed, at `now`.
    mutating func lost(at now: ContinuousClock.Instant) -> Decision {
        let since = lostSince ?? now
        lostSince = since
        if let window, now - since > window { return .giveUp(window: window) }
        return .retry(after: backoff.next())
    }
}
