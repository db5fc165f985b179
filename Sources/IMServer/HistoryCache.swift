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
    private struct Window {
        var messages: [StoredMessage] = []
        var start = 0
        var count: Int { messages.count - start }
        var first: StoredMessage? { start < messages.count ? messages[start] : nil }

        mutating func removeFirst() {
            start += 1
            if start > 64 && start * 2 > messages.count {
                messages.removeFirst(start)
                start = 0
            }
        }
    }

    private struct State {
        var windows: [ConversationKey: Window] = [:]
        /// Every cached message in commit order, for eviction: (conversation, seq).
        var order: [(ConversationKey, Int64)] = []
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
            for m in fresh {
                s.windows[m.conversation, default: Window()].messages.append(m)
                s.order.append((m.conversation, m.seq))
                s.bytes += Self.cost(m)
                if s.windows[m.conversation]!.count > maxPerConversation { Self.dropOldest(of: m.conversation, in: &s) }
            }
            while s.bytes > maxBytes, s.orderStart < s.order.count {
                let (key, seq) = s.order[s.orderStart]
                s.orderStart += 1
                // Already gone when its conversation went over its own cap.
                if s.windows[key]?.first?.seq == seq { Self.dropOldest(of: key, in: &s) }
            }
            if s.orderStart > 1024 && s.orderStart * 2 > s.order.count {
                s.order.removeFirst(s.orderStart)
                s.orderStart = 0
            }
        }
    }

    private static func dropOldest(of key: ConversationKey, in s: inout State) {
        guard var w = s.windows[key], let first = w.first else { return }
        s.bytes -= cost(first)
        w.removeFirst()
        s.windows[key] = w.count == 0 ? nil : w
    }

    /// Messages with `seq > afterSeq`, at most `limit`; nil when the window does not cover them.
    func messages(in key: ConversationKey, afterSeq: Int64, limit: Int) -> [StoredMessage]? {
        state.withLock { s in
            guard let w = s.windows[key], let first = w.first else { return nil }
            guard afterSeq >= first.seq - 1 else { return nil }
            let from = w.start + Int(max(0, afterSeq - first.seq + 1))
            guard from < w.messages.count else { return [] }
            return Array(w.messages[from..<min(w.messages.count, from + limit)])
        }
    }

    /// The last `count` messages; nil unless the window holds that many (or the whole conversation).
    func last(in key: ConversationKey, count: Int) -> [StoredMessage]? {
        state.withLock { s in
            guard let w = s.windows[key], let first = w.first else { return nil }
            guard w.count >= count || first.seq == 1 else { return nil }
            return Array(w.messages[max(w.start, w.messages.count - count)...])
        }
    }

    /// The conversation's last seq, when it is in the cache.
    func head(of key: ConversationKey) -> Int64? {
        state.withLock { s in s.windows[key]?.messages.last?.seq }
    }

    /// Messages and bytes held (for tests and metrics).
    var usage: (messages: Int, bytes: Int) {
        state.withLock { s in (s.windows.values.reduce(0) { $0 + $1.count }, s.bytes) }
    }
}
