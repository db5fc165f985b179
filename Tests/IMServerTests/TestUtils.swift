import HTTPTypes
import Foundation
import HummingbirdWSClient
import IMClient
import IMServer
import IMAuth
import IMStorage
import IMWire
import Logging
import NIOCore
import NIOPosix
import NIOWebSocket
import Synchronization
import Testing

/// A real server on a free loopback port over a real SQLite file in a temporary folder.
final class TestServer: Sendable {
    let store: SQLiteStore
    let background: BackgroundServer
    let directory: URL

    var port: Int { background.port }
    var url: String { background.url }

    private init(store: SQLiteStore, background: BackgroundServer, directory: URL) {
        self.store = store
        self.background = background
        self.directory = directory
    }

    /// Restarts on a given port (after `stop(removeFiles: false)`), retrying while the port is released.
    static func startOnPort(_ port: Int, directory: URL) async throws -> TestServer {
        let deadline = ContinuousClock.now + .seconds(10)
        while true {
            do {
                return try await start(port: port, directory: directory)
            } catch where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
    }

    static func start(maxMessageBytes: Int = 65536, compression: Bool = true, port: Int = 0, directory: URL? = nil,
                      tls: (certificate: String, key: String)? = nil,
                      historyCacheBytes: Int = ServerConfiguration.historyCacheBytes,
                      configure: (inout ServerConfiguration) -> Void = { _ in }) async throws -> TestServer {
        let dir = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("imctl-server-\(UUID().uuidString)")
        let store = try await SQLiteStore.open(path: dir.appendingPathComponent("imctl.db").path)
        var logger = Logger(label: "test.server")
        logger.logLevel = ProcessInfo.processInfo.environment["IMCTL_TEST_LOG"].flatMap { Logger.Level(rawValue: $0) } ?? .error
        var configuration = ServerConfiguration(host: "127.0.0.1", port: port, maxMessageBytes: maxMessageBytes, compression: compression,
                                                historyCacheBytes: historyCacheBytes, tlsCertificatePath: tls?.certificate,
                                                tlsKeyPath: tls?.key)
        configure(&configuration)
        do {
            let background = try await BackgroundServer.start(configuration, store: store, logger: logger)
            return TestServer(store: store, background: background, directory: dir)
        } catch {
            try? await store.close()
            throw error
        }
    }

    /// Graceful shutdown, as on SIGTERM.
    func stop(removeFiles: Bool = true) async throws {
        try await background.stop()
        try await store.close()
        if removeFiles { try? FileManager.default.removeItem(at: directory) }
    }

    /// Creates a user and returns a token for it.
    @discardableResult
    func user(_ name: String, admin: Bool = false, password: String = "password1") async throws -> String {
        let hash = try await NIOThreadPool.singleton.runIfActive { try Credentials.hashPassword(password, cost: Credentials.minimumScryptN) }
        _ = try await store.createUser(name: name, passwordHash: hash, isAdmin: admin)
        let token = Credentials.newToken()
        _ = try await store.createToken(user: name, tokenHash: Credentials.tokenHash(token), label: "test", expiresAt: nil)
        return token
    }

    func client(_ token: String, reconnect: Bool = true, compression: Bool = true) -> ClientConfiguration {
        var configuration = ClientConfiguration(server: url, token: token, compression: compression, reconnect: reconnect,
                                                maxBackoff: .milliseconds(200))
        // The whole suite shares two cores with browsers and compressors: a sign-in may wait its turn.
        configuration.signInTimeout = .seconds(30)
        return configuration
    }
}

/// Runs `body` with a started server and stops it afterwards, even on failure.
func withServer(maxMessageBytes: Int = 65536, compression: Bool = true, historyCacheBytes: Int = ServerConfiguration.historyCacheBytes,
                configure: (inout ServerConfiguration) -> Void = { _ in },
                _ body: (TestServer) async throws -> Void) async throws {
    let server = try await TestServer.start(maxMessageBytes: maxMessageBytes, compression: compression, historyCacheBytes: historyCacheBytes,
                                            configure: configure)
    do {
        try await body(server)
    } catch {
        try? await server.stop()
        throw error
    }
    try await server.stop()
}

let quietLogger: Logger = {
    var l = Logger(label: "test.client")
    l.logLevel = .critical
    return l
}()

/// Collects what a listener delivers, and lets a test wait for a count.
final class Collector: Sendable {
    private let state = Mutex<[MessageView]>([])
    var messages: [MessageView] { state.withLock { $0 } }
    func add(_ m: MessageView) { state.withLock { $0.append(m) } }

    /// Waits (bounded) until at least `count` messages arrived.
    func wait(for count: Int, within limit: Duration = .seconds(20)) async throws {
        let deadline = ContinuousClock.now + limit
        while messages.count < count {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out with \(messages.count) of \(count) messages")
                return
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

/// Starts a listener in the background; returns the task, the collector and a stream that yields when it is live.
func startListener(_ configuration: ClientConfiguration, scopes: [Subscription.Scope], start: Subscription.Start = .live,
                   stopAfter limit: Int? = nil) async throws -> (Task<Void, any Error>, Collector) {
    let collector = Collector()
    let (ready, readyContinuation) = AsyncStream.makeStream(of: Void.self)
    let listener = Listener(configuration: configuration, scopes: scopes, start: start, logger: quietLogger)
    let task = Task {
        defer { readyContinuation.finish() }
        try await listener.run(onReady: { readyContinuation.yield() }) { m in
            collector.add(m)
            return limit.map { collector.messages.count < $0 } ?? true
        }
    }
    var it = ready.makeAsyncIterator()
    if await it.next() == nil {
        // The listener ended before it was live: surface its error rather than wait forever.
        try await task.value
        throw ClientError(.server, "the listener ended before it was live")
    }
    return (task, collector)
}

/// Sends `bodies` with a Sender and returns the acks.
func send(_ bodies: [String], to target: Target, _ configuration: ClientConfiguration) async throws -> [Ack] {
    let acks = Mutex<[Ack]>([])
    _ = try await Sender(configuration: configuration, target: target, logger: quietLogger)
        .run(source: ListSource(bodies)) { ack in acks.withLock { $0.append(ack) } }
    return acks.withLock { $0 }
}

/// A raw WebSocket session for hostile-client tests: write frames, read server frames.
struct RawSession {
    var iterator: WebSocketInboundStream.AsyncIterator
    let outbound: WebSocketOutboundWriter

    /// The next text frame from the server, decoded (nil when the connection closed).
    mutating func next() async throws -> ServerFrame? {
        while let message = try await iterator.nextMessage(maxSize: 1 << 24) {
            if case .text(let t) = message { return try ServerFrame.decode(t.utf8) }
        }
        return nil
    }

    func send(_ text: String) async throws {
        try await outbound.write(.text(text))
    }
}

/// Connects a raw WebSocket client, runs `body`, and returns the server's close frame (if any).
@discardableResult
func withRawClient(_ server: TestServer, headers: [(String, String)] = [], compression: Bool = false,
                   _ body: @escaping @Sendable (inout RawSession) async throws -> Void) async throws -> WebSocketCloseFrame? {
    var config = WebSocketClientConfiguration(maxFrameSize: 1 << 24)
    for (k, v) in headers { config.additionalHeaders[HTTPField.Name(k)!] = v }
    return try await WebSocketClient.connect(url: server.url + "/v1/ws", configuration: config, logger: quietLogger) { inbound, outbound, _ in
        var session = RawSession(iterator: inbound.makeAsyncIterator(), outbound: outbound)
        try await body(&session)
    }
}
