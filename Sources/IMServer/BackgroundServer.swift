public import IMStorage
public import Logging
import ServiceLifecycle

/// A server run in the background of this process on a free (or given) port: for `imctl bench` and tests.
public final class BackgroundServer: Sendable {
    /// The bound port.
    public let port: Int
    /// The server itself (tests reach its parts).
    let server: ChatServer
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    /// The WebSocket URL clients connect to.
    public var url: String { "ws://127.0.0.1:\(port)" }

    private init(port: Int, server: ChatServer, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.server = server
        self.group = group
        self.task = task
    }

    /// Starts a server and returns once it listens; throws when it cannot (the port is taken, say).
    /// The caller keeps ownership of `server`'s store and closes it after `stop()`.
    public static func start(_ configuration: ServerConfiguration, store: any ChatStore, logger: Logger) async throws -> BackgroundServer {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let server = ChatServer(configuration: configuration, store: store, logger: logger) { continuation.yield($0) }
        let group = ServiceGroup(configuration: .init(services: [server], logger: logger))
        // The server reports its port, or the group ends first: then 0.
        let task = Task {
            defer { continuation.yield(0) }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let bound = await iterator.next(), bound != 0 else {
            let failure: (any Error)? = if case .failure(let e) = await task.result { e } else { nil }
            throw BackgroundServerError(port: configuration.port, underlying: failure.map { String(describing: $0) })
        }
        return BackgroundServer(port: bound, server: server, group: group, task: task)
    }

    /// Graceful shutdown, as on SIGTERM: in-flight messages are committed and acked, clients get 1001.
    public func stop() async throws {
        await group.triggerGracefulShutdown()
        try await task.value
    }
}

/// The background server did not start.
public struct BackgroundServerError: Error, CustomStringConvertible {
    public let port: Int
    public let underlying: String?
    public var description: String { "the server did not start on port \(port)" + (underlying.map { ": \($0)" } ?? "") }
}
