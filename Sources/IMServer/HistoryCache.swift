import IMStorage
import IMWire
import Synchronization

/// The recent messages of busy conversations, kept in memory so that `history N`, a resume after a
/// short disconnect and HTTP history are served without touching the disk.
///
/// Every committed message passes through `append` (the server's one committer), so a conversation's
/// window always ends at its true head and holds a gap-free run of seqs; a read is answered here only
/// when the window covers all of it, else it goes to the store. Bounded in bytes overall: the oldest
/// messages go first, whatever their conversation.
final class HistoryCache: Sendable {
    /// One conversation's window: a ring of consecutive seqs ending at its head. A class, so that the
    /// dictionary is looked up once per conversation and batch, not once per message.
    private final class Window {
        private var ring: [StoredMessage?]
        private var head = 0
        private(set) var count = 0

        init(capacity: Int) {
            ring = Array(repeating: nil, count: max(1, capacity))
        }

        var first: StoredMessage? { count > 0 ? ring[head] : nil }
        var last: StoredMessage? { count > 0 ? ring[(head + count - 1) % ring.count] : nil }

        func append(_ m: StoredMessage) {
            if count == ring.count {
                grow()
            }
            ring[(head + count) % ring.count] = m
            count += 1
        }

        /// Doubles the ring up to the cap (callers drop the oldest once it is full).
        private func grow() {
            var bigger: [StoredMessage?] = Array(repeating: nil, count: ring.count * 2)
            for i in 0..<count { bigger[i] = ring[(head + i) % ring.count] }
            ring = bigger
            head = 0
        }

        func removeFirst() -> StoredMessage? {
            guard count > 0 else { return nil }
            let m = ring[head]
            ring[head] = nil
            head = (head + 1) % ring.count
            count -= 1
            return m
        }

        /// Messages `from`..<`to` counted from the oldest.
        func slice(_ from: Int, _ to: Int) -> [StoredMessage] {
            var out: [StoredMessage] = []
            out.reserveCapacity(max(0, to - from))
            for i in from..<to { out.append(ring[(head + i) % ring.count]!) }
            return out
        }
    }

    private struct State {
        var windows: [ConversationKey: Window] = [:]
        /// Every cached message in commit order, for eviction: its window and seq.
        var order: [(Window, Int64)] = []
        var orderStart = 0
        var bytes = 0
    }

    private let state = Mutex(State())
    let maxBytes: Int
    let maxPerConversation: Int

    init(maxBytes: Int = ServerConfiguration.historyCacheBytes, maxPerConversation: Int = ServerConfiguration.historyCachePerConversation) {
        self.maxBytes = maxBytes
        self.maxPerConversation = maxPerConversation
    }

    /// What a cached message costs: its strings plus the record around them.
    static func cost(_ m: StoredMessage) -> Int {
        96 + m.body.utf8.count + m.sender.utf8.count + m.clientID.utf8.count
    }

    /// Adds freshly committed messages (in commit order).
    func append(_ fresh: [StoredMessage]) {
        guard maxBytes > 0, !fresh.isEmpty else { return }
        state.withLock { s in
            var current: (key: ConversationKey, window: Window)?
            for m in fresh {
                let w: Window
                if let c = current, c.key == m.conversation {
                    w = c.window
                } else if let known = s.windows[m.conversation] {
                    w = known
                } else {
                    w = Window(capacity: 16)
                    s.windows[m.conversation] = w
                }
                current = (m.conversation, w)
                w.append(m)
                s.order.append((w, m.seq))
                s.bytes += Self.cost(m)
                if w.count > maxPerConversation, let dropped = w.removeFirst() { s.bytes -= Self.cost(dropped) }
            }
            while s.bytes > maxBytes, s.orderStart < s.order.count {
                let (w, seq) = s.order[s.orderStart]
                s.orderStart += 1
                // Already gone when its conversation went over its own cap.
                guard w.first?.seq == seq, let dropped = w.removeFirst() else { continue }
                s.bytes -= Self.cost(dropped)
                if w.count == 0 { s.windows[dropped.conversation] = nil }
            }
            if s.orderStart > 1024 && s.orderStart * 2 > s.order.count {
                s.order.removeFirst(s.orderStart)
                s.orderStart = 0
            }
        }
    }

    /// Messages with `seq > afterSeq`, at most `limit`; nil when the window does not cover them.
    func messages(in key: ConversationKey, afterSeq: Int64, limit: Int) -> [StoredMessage]? {
        state.withLock { s in
            guard let w = s.windows[key], let first = w.first else { return nil }
            guard afterSeq >= first.seq - 1 else { return nil }
            let from = Int(afterSeq - first.seq + 1)
            guard from < w.count else { return [] }
            return w.slice(from, min(w.count, from + limit))
        }
    }

    /// The last `count` messages; nil unless the window holds that many (or the whole conversation).
    func last(in key: ConversationKey, count: Int) -> [StoredMessage]? {
        state.withLock { s in
            guard let w = s.windows[key], let first = w.first else { return nil }
            guard w.count >= count || first.seq == 1 else { return nil }
            return w.slice(max(0, w.count - count), w.count)
        }
    }

    /// The conversation's last seq, when it is in the cache.
    func head(of key: ConversationKey) -> Int64? {
        state.withLock { s in s.windows[key]?.last?.seq }
    }

    /// Messages and bytes held (for tests and metrics).
    var usage: (messages: Int, bytes: Int) {
        state.withLock { s in (s.windows.values.reduce(0) { $0 + $1.count }, s.bytes) }
    }
}
