import Prometheus
import IMStorage
import IMWire
import Synchronization

/// One connection's subscription to one conversation (or to all its user's direct conversations).
///
/// While the stored history is replayed, live messages are held back; then those after the last
/// replayed position are sent, so the reader sees every message once, in order, with no gap.
final class Subscriber: Sendable {
    /// What the subscriber follows.
    enum Scope: Hashable, Sendable {
        case conversation(ConversationKey)
        /// Every direct conversation of this user; positions are message ids, not seqs.
        case allDirect(String)
    }

    let scope: Scope
    let reader: String
    let outbox: Outbox
    private struct State {
        var replaying = true
        var held: [StoredMessage] = []
        var last: Int64 = 0
        var cancelled = false
    }
    private let state = Mutex(State())

    init(scope: Scope, reader: String, outbox: Outbox) {
        self.scope = scope
        self.reader = reader
        self.outbox = outbox
    }

    private func position(_ m: StoredMessage) -> Int64 {
        if case .allDirect = scope { return m.id }
        return m.seq
    }

    /// Delivers a live message; `frame` is its encoded `msg` frame for this reader.
    func deliver(_ m: StoredMessage, frame: String) -> Bool {
        state.withLock { s in
            if s.cancelled { return false }
            if s.replaying {
                s.held.append(m)
                return false
            }
            let p = position(m)
            guard p > s.last else { return false }
            s.last = p
            outbox.send(frame)
            return true
        }
    }

    /// Sends one replayed message (during replay only).
    func replayed(_ m: StoredMessage) {
        state.withLock { s in
            s.last = position(m)
        }
        outbox.send(ServerFrame.message(m.view(for: reader)).encoded())
    }

    /// Ends the replay at position `last`: sends `subscribed` naming the position reached, then the
    /// held-back messages after it. The client resumes after the last position it has seen.
    func goLive(after last: Int64, label: String) {
        state.withLock { s in
            s.last = max(s.last, last)
            outbox.send(ServerFrame.subscribed(to: label, seq: s.last).encoded())
            for m in s.held where position(m) > s.last {
                s.last = position(m)
                outbox.send(ServerFrame.message(m.view(for: reader)).encoded())
            }
            s.held = []
            s.replaying = false
        }
    }

    /// Position of the last message sent.
    var last: Int64 { state.withLock { $0.last } }

    func cancel() {
        state.withLock { $0.cancelled = true; $0.held = [] }
    }
}

/// Who follows what, and the fan-out of committed messages to them.
final class Hub: Sendable {
    private struct State {
        var byConversation: [ConversationKey: [ObjectIdentifier: Subscriber]] = [:]
        var byDirectUser: [String: [ObjectIdentifier: Subscriber]] = [:]
    }
    private let state = Mutex(State())
    private let metrics: ServerMetrics

    init(metrics: ServerMetrics) {
        self.metrics = metrics
    }

    func add(_ s: Subscriber) {
        state.withLock { st in
            switch s.scope {
            case .conversation(let key): st.byConversation[key, default: [:]][ObjectIdentifier(s)] = s
            case .allDirect(let user): st.byDirectUser[user, default: [:]][ObjectIdentifier(s)] = s
            }
        }
    }

    func remove(_ s: Subscriber) {
        s.cancel()
        state.withLock { st in
            switch s.scope {
            case .conversation(let key):
                st.byConversation[key]?[ObjectIdentifier(s)] = nil
                if st.byConversation[key]?.isEmpty == true { st.byConversation[key] = nil }
            case .allDirect(let user):
                st.byDirectUser[user]?[ObjectIdentifier(s)] = nil
                if st.byDirectUser[user]?.isEmpty == true { st.byDirectUser[user] = nil }
            }
        }
    }

    /// Fans committed messages out, in commit order. A message is encoded once per distinct label
    /// (once for a room; once per side for a direct conversation) and the same text goes to every reader.
    func publish(_ messages: [StoredMessage]) {
        var delivered: Int64 = 0
        for m in messages {
            let subscribers: [Subscriber] = state.withLock { st in
                var all = st.byConversation[m.conversation].map { Array($0.values) } ?? []
                if case .direct(let a, let b) = m.conversation {
                    if let s = st.byDirectUser[a] { all += s.values }
                    if a != b, let s = st.byDirectUser[b] { all += s.values }
                }
                return all
            }
            guard !subscribers.isEmpty else { continue }
            var frames: [String: String] = [:]
            for s in subscribers {
                let label = m.conversation.label(for: s.reader)
                let frame: String
                if let f = frames[label] {
                    frame = f
                } else {
                    frame = ServerFrame.message(m.view(for: s.reader)).encoded()
                    frames[label] = frame
                }
                if s.deliver(m, frame: frame) { delivered += 1 }
            }
        }
        if delivered > 0 { metrics.messagesDelivered.increment(by: delivered) }
    }
}
