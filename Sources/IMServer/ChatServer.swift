import NIOWebSocket
import Foundation
import HTTPTypes
public import IMStorage
import IMWire
import Hummingbird
import HummingbirdCore
import NIOSSL
public import Logging
import NIOCore
import NIOPosix
public import ServiceLifecycle
import Prometheus
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
    let history: HistoryCache
    let committer: GroupCommitter
    let throttle = LoginThrottle()
    /// The TLS context, once `run` has loaded it.
    private let tlsBox = Mutex<TLSContextBox?>(nil)
    let hasher = PasswordHasher()
    private let onReady: @Sendable (Int) async -> Void

    private struct Registry {
        var next = 0
        var connections: [Int: ChatConnection] = [:]
        /// The token hash each signed-in connection used.
        var tokens: [Int: [UInt8]] = [:]
        var closing = false
        var emptyWaiters: [CheckedContinuation<Void, Never>] = []
    }
    private let registry = Mutex(Registry())

    private struct Admissions {
        var total = 0
        var perAddress: [String: Int] = [:]
    }
    private let admissions = Mutex(Admissions())

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
        self.history = HistoryCache(maxBytes: configuration.historyCacheBytes)
        self.committer = GroupCommitter(store: store, hub: hub, history: history, metrics: metrics, logger: logger)
    }

    var isClosing: Bool { registry.withLock { $0.closing } }

    /// Records an open connection so that shutdown can close it; nil once shutdown has begun.
    func register(_ connection: ChatConnection) -> Int? {
        registry.withLock { r in
            guard !r.closing else { return nil }
            r.next += 1
            r.connections[r.next] = connection
            return r.next
        }
    }

    /// Admits a newly accepted TCP connection, or refuses it when the server's cap or its address's is
    /// reached (then it is closed at once). Admitted ones are counted until they close.
    func admit(_ channel: any Channel) -> Bool {
        let address = channel.remoteAddress?.ipAddress ?? "unknown"
        let admitted = admissions.withLock { a -> Bool in
            guard a.total < configuration.maxConnections, a.perAddress[address, default: 0] < configuration.maxConnectionsPerAddress else {
                return false
            }
            a.total += 1
            a.perAddress[address, default: 0] += 1
            return true
        }
        guard admitted else {
            metrics.connectionsRefused.increment()
            return false
        }
        metrics.tcpConnections.increment()
        channel.closeFuture.whenComplete { _ in
            self.metrics.tcpConnections.decrement()
            self.admissions.withLock { a in
                a.total -= 1
                a.perAddress[address, default: 1] -= 1
                if a.perAddress[address] == 0 { a.perAddress[address] = nil }
            }
        }
        return true
    }

    /// Loads the TLS certificate and key files again, for new connections (`serve` calls it on SIGHUP).
    /// Throws, keeping the pair in use, when the files do not make a usable pair.
    public func reloadTLS() throws {
        guard let box = tlsBox.withLock({ $0 }) else { throw TLSFileError(path: "-", reason: "the server does not use TLS") }
        try box.reload()
        logger.info("reloaded the TLS certificate and key")
    }

    /// Records the token a connection signed in with, for `watchSessions`.
    func signedIn(_ id: Int, tokenHash: [UInt8]) {
        registry.withLock { $0.tokens[id] = tokenHash }
    }

    func unregister(_ id: Int) {
        let waiters = registry.withLock { r -> [CheckedContinuation<Void, Never>] in
            r.connections[id] = nil
            r.tokens[id] = nil
            guard r.connections.isEmpty else { return [] }
            defer { r.emptyWaiters = [] }
            return r.emptyWaiters
        }
        for w in waiters { w.resume() }
    }

    public func run() async throws {
        let router = Router(context: ChatRequestContext.self)
        addRoutes(to: router)
        let onReady = self.onReady
        let tls = configuration.tlsCertificatePath == nil ? nil : try TLSContextBox(configuration: configuration)
        tlsBox.withLock { $0 = tls }
        let server = HTTPServerBuilder { responder in ChatChannel(responder: responder, server: self, tls: tls) }
        // One event loop per CPU this process may run on: NIO counts the machine's (or the cgroup's) CPUs,
        // and a server pinned to fewer would only switch between its own threads.
        let cpus = Self.usableCPUs()
        let ownGroup = cpus < System.coreCount ? MultiThreadedEventLoopGroup(numberOfThreads: cpus) : nil
        defer { if let ownGroup { Task { try? await ownGroup.shutdownGracefully() } } }
        let app = Application(
            router: router,
            server: server,
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: nil),
            onServerRunning: { channel in await onReady(channel.localAddress?.port ?? 0) },
            eventLoopGroupProvider: ownGroup.map { .shared($0) } ?? .singleton,
            logger: logger
        )
        let inner = ServiceGroup(configuration: .init(services: [app], logger: logger))
        let (innerEnded, innerEndedContinuation) = AsyncStream.makeStream(of: Result<Void, any Error>.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await self.committer.run() }
            group.addTask { await self.watchSessions() }
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
                self.registry.withLock { $0.closing = true }
                self.committer.stop()
                try await group.waitForAll()
                await self.hasher.shutdown()
                if case .failure(let error) = early { throw error }
                return
            }
            await self.closeConnections()
            await inner.triggerGracefulShutdown()
            self.committer.stop()
            try await group.waitForAll()
            await self.hasher.shutdown()
        }
    }

    /// Closes the connections whose token no longer signs anyone in (revoked, expired, password changed,
    /// user disabled or removed, by this process or another on the same store), within
    /// `ServerConfiguration.sessionCheckInterval`. It polls the store's security epoch, which every such
    /// change moves, and checks all sessions when it moved, and every `sessionRecheckInterval` anyway
    /// (for tokens that expire).
    func watchSessions() async {
        var lastEpoch: Int64?
        var lastFull = ContinuousClock.now
        while !isClosing && !Task.isCancelled {
            try? await Task.sleep(for: ServerConfiguration.sessionCheckInterval)
            do {
                let epoch = try await store.securityEpoch()
                let now = ContinuousClock.now
                guard epoch != lastEpoch || now - lastFull >= ServerConfiguration.sessionRecheckInterval else { continue }
                let sessions = registry.withLock { r in r.tokens.compactMap { id, hash in r.connections[id].map { ($0, hash) } } }
                if lastEpoch != nil || !sessions.isEmpty {
                    let valid = try await store.validTokens(among: Array(Set(sessions.map(\.1))), now: Timestamp.nowMillis())
                    for (connection, hash) in sessions where !valid.contains(hash) {
                        connection.eventLoop.execute { connection.revoke() }
                    }
                }
                lastEpoch = epoch
                lastFull = now
            } catch {
                logger.warning("could not re-check sessions: \(error)")
            }
        }
    }

    /// Stops taking frames, commits and acks what is in flight, then closes every connection with 1001.
    private func closeConnections() async {
        registry.withLock { $0.closing = true }
        await committer.drain()
        let connections = registry.withLock { Array($0.connections.values) }
        for c in connections { c.eventLoop.execute { c.shutdown() } }
        // Give clients a moment to answer the close; a stuck one does not hold up the exit.
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let empty = self.registry.withLock { r -> Bool in
                        if r.connections.isEmpty { return true }
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
}

extension ChatServer {
    static func usableCPUs() -> Int { Host.usableCPUs() }

    static func bearerToken(_ headers: HTTPFields) -> String? {
        guard let value = headers[.authorization] else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingWhitespace()
    }
}
