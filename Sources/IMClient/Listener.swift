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
    private let logger: Logger

    private struct State {
        var positions: ListenPositions
        var stopped = false
    }
    private let state: Mutex<State>

    /// - Parameters:
    ///   - scopes: rooms, `@user` conversations, or `.allDirect` for every direct conversation.
    ///   - start: where the first subscription starts (live, after a seq, or the last N).
    public init(configuration: ClientConfiguration, scopes: [Subscription.Scope], start: Subscription.Start, logger: Logger) {
        self.configuration = configuration
        self.scopes = scopes
        self.logger = logger
        state = Mutex(State(positions: ListenPositions(scopes: scopes, start: start)))
    }

    /// Runs until `onMessage` returns false (returns normally), or fails with a `ClientError`.
    /// `onReady` runs each time the subscriptions are live (after their replay).
    public func run(onReady: @escaping @Sendable () -> Void = {}, onMessage: @escaping @Sendable (MessageView) -> Bool) async throws {
        try await Link.reconnecting(configuration, logger: logger, session: { iterator, outbound, _ in
            try await self.session(&iterator, outbound, onReady: onReady, onMessage: onMessage)
        }, outcome: { _ in state.withLock { $0.stopped } ? () : nil })
    }

    private func session(_ iterator: inout WebSocketInboundStream.AsyncIterator, _ outbound: WebSocketOutboundWriter,
                         onReady: @escaping @Sendable () -> Void, onMessage: @escaping @Sendable (MessageView) -> Bool) async throws {
        for scope in scopes {
            try await outbound.write(.text(ClientFrame.subscribe(state.withLock { $0.positions.subscription(for: scope) }).encoded()))
        }
        var pending = Set(scopes.map(\.description))
        while let message = try await iterator.nextMessage(maxSize: Link.maxInboundFrame) {
            guard case .text(let text) = message else { continue }
            switch try ServerFrame.decode(text.utf8) {
            case .message(let m):
                if state.withLock({ $0.positions.admit(m) }), !onMessage(m) {
                    state.withLock { $0.stopped = true }
                    try? await outbound.close(.normalClosure, reason: nil)
                    return
                }
            case .subscribed(let to, let seq):
                state.withLock { $0.positions.subscribed(to: to, at: seq) }
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

/// Where a listener stands: the last position delivered per conversation, so that each message is
/// delivered once, in order, whatever the server replays after a reconnect. Pure: frames in, decisions out.
struct ListenPositions: Sendable, Equatable {
    /// Last seq delivered per followed conversation label (`room` or `@peer`).
    private(set) var positions: [String: Int64] = [:]
    /// Last message id delivered from `@*` (every direct conversation).
    private(set) var allDirectPosition: Int64?
    /// Conversations followed by name.
    let explicit: Set<String>
    let followsAllDirect: Bool
    /// Where the first subscription of each scope starts.
    let start: Subscription.Start

    init(scopes: [Subscription.Scope], start: Subscription.Start) {
        explicit = Set(scopes.compactMap { scope -> String? in
            if case .target(let t) = scope { return t.description }
            return nil
        })
        followsAllDirect = scopes.contains(.allDirect)
        self.start = start
    }

    /// The subscription for `scope`: after what was delivered, or `start` the first time.
    func subscription(for scope: Subscription.Scope) -> Subscription {
        switch scope {
        case .allDirect:
            if let id = allDirectPosition { return Subscription(scope: scope, start: .afterID(id)) }
        case .target(let t):
            if let seq = positions[t.description] { return Subscription(scope: scope, start: .afterSeq(seq)) }
        }
        return Subscription(scope: scope, start: start)
    }

    /// Whether `m` is new and followed (deliver it); records it if so. A direct message followed both by
    /// name and through `@*` moves both positions.
    mutating func admit(_ m: MessageView) -> Bool {
        if explicit.contains(m.room) {
            guard m.seq > positions[m.room] ?? 0 else { return false }
            positions[m.room] = m.seq
            if followsAllDirect, m.room.hasPrefix("@") { allDirectPosition = max(allDirectPosition ?? 0, m.id) }
            return true
        }
        guard followsAllDirect, m.room.hasPrefix("@") else { return false }
        guard m.id > allDirectPosition ?? 0 else { return false }
        allDirectPosition = m.id
        return true
    }

    /// The server's `subscribed`: live from `seq` (a seq, or a message id for `@*`) on.
    mutating func subscribed(to: String, at seq: Int64) {
        if to == "@*" {
            allDirectPosition = max(allDirectPosition ?? 0, seq)
        } else {
            positions[to] = max(positions[to] ?? 0, seq)
        }
    }
}
