public import IMWire
public import Logging
import NIOWebSocket
import Synchronization
import WSCore

/// Follows conversations and delivers each message once, in order, across reconnects and server
/// restarts: after a lost connection it resubscribes after the last position it delivered.
public final class Listener: Sendable {
    private let configuration: ClientConfiguration
    private let scopes: [Subscription.Scope]
    private let start: Subscription.Start
    private let logger: Logger

    private struct State {
        /// Last seq delivered per conversation label (`room` or `@peer`), or message id for `@*`.
        var positions: [String: Int64] = [:]
        var allDirectPosition: Int64?
        var stopped = false
    }
    private let state = Mutex(State())

    /// - Parameters:
    ///   - scopes: rooms, `@user` conversations, or `.allDirect` for every direct conversation.
    ///   - start: where the first subscription starts (live, after a seq, or the last N).
    public init(configuration: ClientConfiguration, scopes: [Subscription.Scope], start: Subscription.Start, logger: Logger) {
        self.configuration = configuration
        self.scopes = scopes
        self.start = start
        self.logger = logger
    }

    /// Runs until `onMessage` returns false (returns normally), or fails with a `ClientError`.
    /// `onReady` runs each time the subscriptions are live (after their replay).
    public func run(onReady: @escaping @Sendable () -> Void = {}, onMessage: @escaping @Sendable (MessageView) -> Bool) async throws {
        try await Link.reconnecting(configuration, logger: logger, session: { iterator, outbound, _ in
            try await self.session(&iterator, outbound, onReady: onReady, onMessage: onMessage)
        }, outcome: { _ in state.withLock { $0.stopped } ? () : nil })
    }

    private func subscription(for scope: Subscription.Scope) -> Subscription {
        state.withLock { s in
            switch scope {
            case .allDirect:
                if let id = s.allDirectPosition { return Subscription(scope: scope, start: .afterID(id)) }
            case .target(let t):
                if let seq = s.positions[t.description] { return Subscription(scope: scope, start: .afterSeq(seq)) }
            }
            return Subscription(scope: scope, start: start)
        }
    }

    private func session(_ iterator: inout WebSocketInboundStream.AsyncIterator, _ outbound: WebSocketOutboundWriter,
                         onReady: @escaping @Sendable () -> Void, onMessage: @escaping @Sendable (MessageView) -> Bool) async throws {
        for scope in scopes {
            try await outbound.write(.text(ClientFrame.subscribe(subscription(for: scope)).encoded()))
        }
        let explicit = Set(scopes.compactMap { scope -> String? in
            if case .target(let t) = scope { return t.description }
            return nil
        })
        let followsAllDirect = scopes.contains(.allDirect)
        var pending = Set(scopes.map(\.description))
        while let message = try await iterator.nextMessage(maxSize: Link.maxInboundFrame) {
            guard case .text(let text) = message else { continue }
            switch try ServerFrame.decode(text.utf8) {
            case .message(let m):
                let fresh = state.withLock { s -> Bool in
                    if explicit.contains(m.room) {
                        guard m.seq > s.positions[m.room] ?? 0 else { return false }
                        s.positions[m.room] = m.seq
                        if followsAllDirect, m.room.hasPrefix("@") { s.allDirectPosition = max(s.allDirectPosition ?? 0, m.id) }
                        return true
                    }
                    guard followsAllDirect, m.room.hasPrefix("@") else { return false }
                    guard m.id > s.allDirectPosition ?? 0 else { return false }
                    s.allDirectPosition = m.id
                    return true
                }
                if fresh, !onMessage(m) {
                    state.withLock { $0.stopped = true }
                    try? await outbound.close(.normalClosure, reason: nil)
                    return
                }
            case .subscribed(let to, let seq):
                state.withLock { s in
                    if to == "@*" {
                        s.allDirectPosition = max(s.allDirectPosition ?? 0, seq)
                    } else {
                        s.positions[to] = max(s.positions[to] ?? 0, seq)
                    }
                }
                pending.remove(to)
                if pending.isEmpty { onReady() }
            case .error(let code, let message, _):
                throw ClientError.fromServer(code, message)
            default:
                break
            }
        }
    }
}
