import NIOWebSocket
import Foundation
import HTTPTypes
public import IMStorage
import IMWire
import Hummingbird
import HummingbirdWebSocket
import HummingbirdWSCompression
import HummingbirdTLS
import HummingbirdCore
import NIOSSL
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

/// The instant-messaging server: WebSocket at `/v1/ws`, HTTP JSON beside it, one store behind both.
///
/// Run it as a `Service` in a `ServiceGroup`; graceful shutdown stops new work, commits and acks what
/// is in flight, closes every WebSocket with 1001 and returns.
public final class ChatServer: Service, Sendable {
    public let configuration: ServerConfiguration
    let store: any ChatStore
    let logger: Logger
    let metrics = ServerMetrics()
    let hub: Hub
    let committer: GroupCommitter
    let throttle = LoginThrottle()
    private let onReady: @Sendable (Int) async -> Void

    private struct Registry {
        var next = 0
        var outboxes: [Int: Outbox] = [:]
        var closing = false
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let registry = Mutex(Registry())

    /// - Parameters:
    ///   - onReady: called with the bound port once the server accepts connections.
    public init(configuration: ServerConfiguration, store: any ChatStore, logger: Logger,
                onReady: @escaping @Sendable (Int) async -> Void = { _ in }) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.onReady = onReady
        let hub = Hub(metrics: metrics)
        self.hub = hub
        self.committer = GroupCommitter(store: store, metrics: metrics, logger: logger) { hub.publish($0) }
    }

    var isClosing: Bool { registry.withLock { $0.closing } }

    func register(_ outbox: Outbox) -> Int? {
        registry.withLock { r in
            guard !r.closing else { return nil }
            r.next += 1
            r.outboxes[r.next] = outbox
            return r.next
        }
    }

    func unregister(_ id: Int) {
        let waiters = registry.withLock { r -> [CheckedContinuation<Void, Never>] in
            r.outboxes[id] = nil
            guard r.outboxes.isEmpty else { return [] }
            defer { r.emptyWaiters = [] }
            return r.emptyWaiters
        }
        for w in waiters { w.resume() }
    }

    func authedFrame(_ user: UserRecord) -> String {
        ServerFrame.authed(user: user.name, maxMessageBytes: configuration.maxMessageBytes).encoded()
    }

    public func run() async throws {
        let router = Router(context: BasicWebSocketRequestContext.self)
        addRoutes(to: router)
        router.ws("/v1/ws", onUpgrade: { inbound, outbound, context in
            // Registered first, so that a shutdown that starts while we check the token still closes us with 1001.
            let outbox = Outbox()
            guard let id = self.register(outbox) else {
                try await outbound.close(.goingAway, reason: "server shutting down")
                return
            }
            defer { self.unregister(id) }
            // A bad token in the header is answered after the upgrade, with an error frame and 1008, because a
            // refused upgrade reaches WebSocket clients only as a bare failure without a reason.
            var user: UserRecord?
            if let token = Self.bearerToken(context.request.headers) {
                user = try? await self.store.authenticate(tokenHash: Credentials.tokenHash(token), now: Timestamp.nowMillis())
                if user == nil {
                    try await outbound.write(.text(ServerFrame.error(code: .unauthorized, message: "invalid, expired or revoked token",
                                                                     id: nil).encoded()))
                    try await outbound.close(.policyViolation, reason: "not authorised")
                    return
                }
            }
            try await Connection.run(server: self, outbox: outbox, inbound: inbound, outbound: outbound, user: user,
                                     logger: context.logger)
        })
        var extensions: [WebSocketExtensionFactory] = []
        if configuration.compression {
            extensions.append(.perMessageDeflate(maxDecompressedFrameSize: configuration.maxFrameBytes))
        }
        let ws = WebSocketServerConfiguration(maxFrameSize: configuration.maxFrameBytes, extensions: extensions,
                                              autoPing: .enabled(timePeriod: .seconds(30)), closeTimeout: .seconds(5), validateUTF8: true)
        let onReady = self.onReady
        var server: HTTPServerBuilder = .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: ws))
        if let tls = try configuration.tlsConfiguration() {
            server = try .tls(server, tlsConfiguration: tls)
        }
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in await onReady(channel.localAddress?.port ?? 0) },
            logger: logger
        )
        let inner = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let (innerEnded, innerEndedContinuation) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.committer.run() }
            group.addTask {
                do {
                    try await inner.run()
                    innerEndedContinuation.yield(.success(()))
                } catch {
                    innerEndedContinuation.yield(.failure(error))
                }
                innerEndedContinuation.finish()
            }
            // Wait for our own graceful shutdown (or cancellation), or for the HTTP server to stop by itself
            // (it could not bind its port, say); then wind down in order.
            let early = await withTaskGroup(of: Result<Void, any Error>?.self) { waiters in
                waiters.addTask {
                    try? await gracefulShutdown()
                    return nil
                }
                waiters.addTask {
                    var iterator = innerEnded.makeAsyncIterator()
                    return await iterator.next()
                }
                let first = await waiters.next() ?? nil
                waiters.cancelAll()
                return first
            }
            if let early {
                self.committer.stop()
                try await group.waitForAll()
                if case .failure(let error) = early { throw error }
                return
            }
            await self.closeConnections()
            await inner.triggerGracefulShutdown()
            self.committer.stop()
            try await group.waitForAll()
        }
    }

    /// Stops taking frames, commits and acks what is in flight, then closes every connection with 1001.
    private func closeConnections() async {
        registry.withLock { $0.closing = true }
        await committer.drain()
        let outboxes = registry.withLock { Array($0.outboxes.values) }
        for o in outboxes { o.close(.goingAway, reason: "server shutting down") }
        // Give clients a moment to answer the close; a stuck one does not hold up the exit.
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let empty = self.registry.withLock { r -> Bool in
                        if r.outboxes.isEmpty { return true }
                        r.emptyWaiters.append(c)
                        return false
                    }
                    if empty { c.resume() }
                }
            }
            group.addTask { try? await Task.sleep(for: .seconds(3)) }
            await group.next()
            group.cancelAll()
            // Release the waiter if the timeout won.
            let waiters = self.registry.withLock { r -> [CheckedContinuation<Void, Never>] in
                defer { r.emptyWaiters = [] }
                return r.emptyWaiters
            }
            for w in waiters { w.resume() }
        }
    }

    static func bearerToken(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }
}
