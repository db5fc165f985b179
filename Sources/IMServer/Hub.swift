import Prometheus
import IMStorage
import IMWire
import NIOCore
import Synchronization

/// Who follows what, and the fan-out of committed batches to them.
///
/// Each committed message is framed once per label (once for a room, once per side for a direct
/// conversation) into a `Chunk`; then, for every event loop with readers or senders in the batch, one
/// task appends the shared bytes and the acks to each connection on that loop and flushes each touched
/// connection once (nats-server's `flushClients`). No task or async write per reader.
final class Hub: Sendable {
    private struct Entry {
        let connection: ChatConnection
        let reader: String
    }
    private struct State {
        var byConversation: [ConversationKey: [ObjectIdentifier: Entry]] = [:]
        var byDirectUser: [String: [ObjectIdentifier: Entry]] = [:]
    }
    private let state = Mutex(State())
    private let metrics: ServerMetrics

    init(metrics: ServerMetrics) {
        self.metrics = metrics
    }

    func add(_ c: ChatConnection, reader: String, _ feed: Feed) {
        state.withLock { st in
            switch feed {
            case .conversation(let key): st.byConversation[key, default: [:]][ObjectIdentifier(c)] = Entry(connection: c, reader: reader)
            case .allDirect(let user): st.byDirectUser[user, default: [:]][ObjectIdentifier(c)] = Entry(connection: c, reader: reader)
            }
        }
    }

    func remove(_ c: ChatConnection, _ feed: Feed) {
        state.withLock { st in
            switch feed {
            case .conversation(let key):
                st.byConversation[key]?[ObjectIdentifier(c)] = nil
                if st.byConversation[key]?.isEmpty == true { st.byConversation[key] = nil }
            case .allDirect(let user):
                st.byDirectUser[user]?[ObjectIdentifier(c)] = nil
                if st.byDirectUser[user]?.isEmpty == true { st.byDirectUser[user] = nil }
            }
        }
    }

    /// The acks (or errors) one connection gets from one batch, framed into one buffer.
    private final class Answers {
        let connection: ChatConnection
        var frames: ByteBuffer
        var count = 0
        /// The first of them the store refused.
        var firstFailed: String?

        init(_ connection: ChatConnection, capacity: Int) {
            self.connection = connection
            self.frames = ByteBufferAllocator().buffer(capacity: capacity)
        }
    }

    /// The work for one event loop from one batch.
    private struct LoopWork {
        let loop: any EventLoop
        var deliveries: [(ChatConnection, Feed, Chunk)] = []
        var answers: [Answers] = []
    }

    /// Fans out `fresh` (the batch's new messages, in commit order) and answers every send of the batch.
    /// - Parameters:
    ///   - origins: who sent each message of the batch, in submission order.
    ///   - outcomes: each send's outcome, in the same order; nil when the commit failed.
    func publish(fresh: [StoredMessage], origins: [GroupCommitter.Origin], outcomes: [AppendOutcome]?, encoder: inout FrameEncoder) {
        var work: [ObjectIdentifier: LoopWork] = [:]
        func add(_ c: ChatConnection, _ feed: Feed, _ chunk: Chunk) {
            work[ObjectIdentifier(c.eventLoop), default: LoopWork(loop: c.eventLoop)].deliveries.append((c, feed, chunk))
        }
        if !fresh.isEmpty { collectDeliveries(fresh, encoder: &encoder, add: add) }
        var answers: [ObjectIdentifier: Answers] = [:]
        for (i, origin) in origins.enumerated() {
            switch origin {
            case .callback(let done):
                done(outcomes.map { .success($0[i]) } ?? .failure(StoreUnavailable()))
            case .connection(let c, let cid):
                let a: Answers
                if let known = answers[ObjectIdentifier(c)] {
                    a = known
                } else {
                    a = Answers(c, capacity: (origins.count - i) * 128)
                    answers[ObjectIdentifier(c)] = a
                    work[ObjectIdentifier(c.eventLoop), default: LoopWork(loop: c.eventLoop)].answers.append(a)
                }
                if let outcome = outcomes?[i] {
                    let m = outcome.message
                    encoder.appendAck(cid: cid, message: m, label: m.conversation.label(for: m.sender), duplicate: outcome.duplicate,
                                      into: &a.frames)
                } else {
                    let frame = ServerFrame.error(code: .unavailable, message: "the store could not commit the message; retry with the same id",
                                                  id: cid).encoded()
                    WebSocketWire.writeHeader(opcode: WebSocketWire.text, length: frame.utf8.count, into: &a.frames)
                    a.frames.writeString(frame)
                    if a.firstFailed == nil { a.firstFailed = cid }
                }
                a.count += 1
            }
        }
        let metrics = self.metrics
        for (_, w) in work {
            w.loop.execute {
                var touched: [ChatConnection] = []
                touched.reserveCapacity(w.deliveries.count + w.answers.count)
                var delivered = 0
                for (c, feed, chunk) in w.deliveries {
                    let n = c.deliver(chunk, to: feed)
                    if n > 0 {
                        delivered += n
                        touched.append(c)
                    }
                }
                for a in w.answers {
                    a.connection.answered(a.frames, count: a.count, firstFailed: a.firstFailed)
                    touched.append(a.connection)
                }
                for c in touched { c.flush() }
                if delivered > 0 { metrics.messagesDelivered.increment(by: Int64(delivered)) }
            }
        }
    }

    private func collectDeliveries(_ fresh: [StoredMessage], encoder: inout FrameEncoder, add: (ChatConnection, Feed, Chunk) -> Void) {
        // The batch's messages per conversation, in commit order.
        var order: [ConversationKey] = []
        var byConversation: [ConversationKey: [StoredMessage]] = [:]
        for m in fresh {
            if byConversation[m.conversation] == nil { order.append(m.conversation) }
            byConversation[m.conversation, default: []].append(m)
        }
        let (followers, directFollowers) = state.withLock { st -> ([ConversationKey: [Entry]], [String: [Entry]]) in
            var f: [ConversationKey: [Entry]] = [:]
            var d: [String: [Entry]] = [:]
            for key in order {
                if let s = st.byConversation[key] { f[key] = Array(s.values) }
                if case .direct(let a, let b) = key {
                    for u in [a, b] where d[u] == nil { if let s = st.byDirectUser[u] { d[u] = Array(s.values) } }
                }
            }
            return (f, d)
        }
        for key in order {
            guard let entries = followers[key] else { continue }
            let messages = byConversation[key]!
            var chunks: [String: Chunk] = [:]
            for e in entries {
                let label = key.label(for: e.reader)
                let chunk: Chunk
                if let c = chunks[label] {
                    chunk = c
                } else {
                    var c = Chunk(capacity: messages.count * 256)
                    for m in messages { c.append(m, label: label, encoder: &encoder) }
                    chunks[label] = c
                    chunk = c
                }
                add(e.connection, .conversation(key), chunk)
            }
        }
        // Readers of all their direct conversations get them in id order, across conversations.
        for (user, entries) in directFollowers {
            var chunk = Chunk()
            for m in fresh where m.conversation.isDirect && m.conversation.admits(user) {
                chunk.append(m, label: m.conversation.label(for: user), encoder: &encoder)
            }
            guard !chunk.isEmpty else { continue }
            for e in entries { add(e.connection, .allDirect(user), chunk) }
        }
    }
}

/// The store could not commit a batch; its sends may be retried with the same ids.
struct StoreUnavailable: Error, CustomStringConvertible {
    var description: String { "the store could not commit the message; retry with the same id" }
}
