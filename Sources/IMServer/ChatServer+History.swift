import Prometheus
import IMStorage
import IMWire

extension ChatServer {
    /// Messages of a conversation after `afterSeq`: from the history cache when it covers them.
    func messages(in key: ConversationKey, afterSeq: Int64, limit: Int) async throws -> [StoredMessage] {
        if let cached = history.messages(in: key, afterSeq: afterSeq, limit: limit) {
            metrics.historyCacheHits.increment()
            return cached
        }
        metrics.historyStoreReads.increment()
        return try await store.messages(in: key, afterSeq: afterSeq, limit: limit)
    }

    /// The last `count` messages of a conversation.
    func lastMessages(in key: ConversationKey, count: Int) async throws -> [StoredMessage] {
        if let cached = history.last(in: key, count: count) {
            metrics.historyCacheHits.increment()
            return cached
        }
        metrics.historyStoreReads.increment()
        return try await store.lastMessages(in: key, count: count)
    }

    /// The last seq of a conversation (0 when it has none).
    func head(of key: ConversationKey) async throws -> Int64 {
        if let seq = history.head(of: key) {
            metrics.historyCacheHits.increment()
            return seq
        }
        metrics.historyStoreReads.increment()
        return try await store.lastMessages(in: key, count: 1).last?.seq ?? 0
    }

    /// Replays the stored messages of `feed` after `start`, framed for `reader`, one page at a time.
    /// - Parameter page: writes a page; returns false when the subscription no longer wants more.
    /// - Returns: the position reached (the last one sent, or the head), or nil when `page` stopped it.
    func replay(_ feed: Feed, start: Subscription.Start, reader: String, page: (Chunk) async -> Bool) async throws -> Int64? {
        var encoder = FrameEncoder()
        func framed(_ messages: [StoredMessage]) -> Chunk {
            var chunk = Chunk(capacity: messages.count * 256)
            for m in messages { chunk.append(m, label: m.conversation.label(for: reader), encoder: &encoder) }
            return chunk
        }
        let size = ServerConfiguration.replayPage
        switch (feed, start) {
        case (.conversation(let key), .afterSeq(let after)):
            var last = after
            while true {
                let batch = try await messages(in: key, afterSeq: last, limit: size)
                if let end = batch.last {
                    guard await page(framed(batch)) else { return nil }
                    last = end.seq
                }
                if batch.count < size { return last }
            }
        case (.conversation(let key), .last(let n)):
            let batch = try await lastMessages(in: key, count: n)
            if let end = batch.last, n > 0 {
                guard await page(framed(batch)) else { return nil }
                return end.seq
            }
            return try await head(of: key)
        case (.conversation(let key), .live), (.conversation(let key), .afterID):
            return try await head(of: key)
        case (.allDirect(let user), .afterID(let after)):
            var last = after
            while true {
                metrics.historyStoreReads.increment()
                let batch = try await store.directMessages(of: user, afterID: last, limit: size)
                if let end = batch.last {
                    guard await page(framed(batch)) else { return nil }
                    last = end.id
                }
                if batch.count < size { return last }
            }
        case (.allDirect, _):
            metrics.historyStoreReads.increment()
            return try await store.lastMessageID()
        }
    }
}
