import Prometheus
import IMStorage
import Logging
import Synchronization

/// Collects sends from every connection and commits them many per transaction, in arrival order.
///
/// Each message is answered only after its transaction commits; then the batch goes to the hub, which
/// fans the new messages out and acks every send, one task per event loop.
final class GroupCommitter: Sendable {
    /// Who waits for a send's answer.
    enum Origin: Sendable {
        /// A WebSocket connection; `cid` is the send's client id.
        case connection(ChatConnection, cid: String)
        /// Anything else (the HTTP API): called with the outcome.
        case callback(@Sendable (Result<AppendOutcome, any Error>) -> Void)
    }

    /// Sends waiting for the next batch, as two parallel arrays (the store takes the messages as they are).
    private struct Batch {
        var messages: [NewMessage] = []
        var origins: [Origin] = []
        var isEmpty: Bool { messages.isEmpty }
    }

    private struct State: ~Copyable {
        var queue = Batch()
        /// A batch is with the store (commits run one at a time).
        var committing = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var stopped = false
        var stopWaiter: CheckedContinuation<Void, Never>?
    }

    private let store: any ChatStore
    /// The store, when other servers write it too: then new messages reach this server's listeners from
    /// the store, in id order (every server's, this one's included), not from the commit.
    private let shared: (any SharedChatStore)?
    private let state = Mutex(State())

    /// Reading the shared store's new messages: after `cursor` (the last id delivered), one read at a time.
    private struct Tail {
        var cursor: Int64 = 0
        var reading = false
        /// Asked again while reading: read once more when done.
        var again = false
    }
    private let tail = Mutex(Tail())
    /// Largest read of new messages from a shared store: 256 messages, at most 16 MiB at the 64 KiB
    /// message limit, held until the hub has framed them.
    static let tailPage = 256
    /// Frames are encoded by one commit's completion at a time; the lock only makes that visible.
    private let encoder = Mutex(FrameEncoder())
    private let hub: Hub
    private let history: HistoryCache
    private let metrics: ServerMetrics
    private let logger: Logger

    init(store: any ChatStore, hub: Hub, history: HistoryCache, metrics: ServerMetrics, logger: Logger) {
        self.store = store
        self.shared = store as? any SharedChatStore
        self.hub = hub
        self.history = history
        self.metrics = metrics
        self.logger = logger
    }

    /// Queues a message; its origin is answered once it is durable (or failed).
    ///
    /// The commit starts at once when none is running; otherwise the message waits for the running one
    /// to end and goes in the next batch, with everything else that arrived meanwhile.
    func submit(_ message: NewMessage, origin: Origin) {
        let start = state.withLock { s -> Bool in
            s.queue.messages.append(message)
            s.queue.origins.append(origin)
            guard !s.committing else { return false }
            s.committing = true
            return true
        }
        if start { commitNext() }
    }

    /// Queues a message and waits for its outcome.
    func submit(_ message: NewMessage) async throws -> AppendOutcome {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<AppendOutcome, any Error>) in
            submit(message, origin: .callback { c.resume(with: $0) })
        }
    }

    /// Waits until everything submitted so far is committed and answered.
    func drain() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let idle = state.withLock { s -> Bool in
                if s.queue.isEmpty && !s.committing { return true }
                s.idleWaiters.append(c)
                return false
            }
            if idle { c.resume() }
        }
    }

    /// Ends `run` (after the queue has drained).
    func stop() {
        let waiter = state.withLock { s in
            s.stopped = true
            defer { s.stopWaiter = nil }
            return s.stopWaiter
        }
        waiter?.resume()
    }

    /// Runs until `stop()`, then until everything submitted is answered. Commits are driven by
    /// `submit` and by the store's completions, with no task of their own in between.
    func run() async {
        var watch: Task<Void, Never>?
        if let shared {
            // Live from now: what is already stored is history.
            let last = (try? await store.lastMessageID()) ?? 0
            tail.withLock { $0.cursor = last }
            watch = shared.watch { [weak self] in self?.readFromStore() }
        }
        defer { watch?.cancel() }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let stopped = state.withLock { s -> Bool in
                if s.stopped { return true }
                s.stopWaiter = c
                return false
            }
            if stopped { c.resume() }
        }
        await drain()
    }

    /// Takes the next batch (as many as the count and byte limits allow) and hands it to the store; the
    /// completion (on the store's thread, for SQLite) frames and answers it and starts the next one.
    private func commitNext() {
        let batch: Batch? = state.withLock { s in
            guard !s.queue.isEmpty else {
                s.committing = false
                return nil
            }
            var batch = Batch()
            var n = 0
            var bytes = 0
            for m in s.queue.messages {
                guard n < ServerConfiguration.maxBatch, n == 0 || bytes < ServerConfiguration.maxBatchBytes else { break }
                bytes += m.body.utf8.count
                n += 1
            }
            if n == s.queue.messages.count {
                swap(&batch, &s.queue)
            } else {
                batch.messages = Array(s.queue.messages[..<n])
                batch.origins = Array(s.queue.origins[..<n])
                s.queue.messages.removeFirst(n)
                s.queue.origins.removeFirst(n)
            }
            return batch
        }
        guard let batch else {
            wakeIdleWaiters()
            return
        }
        let start = ContinuousClock.now
        store.append(batch.messages) { result in
            switch result {
            case .success:
                self.metrics.commitDuration.record(ContinuousClock.now - start)
                self.metrics.batchSize.record(Double(batch.messages.count))
            case .failure(let error):
                self.logger.error("commit of \(batch.messages.count) messages failed: \(error)")
                self.metrics.commitFailures.increment()
            }
            self.finish(batch, result)
            self.commitNext()
        }
    }

    /// Hands a committed batch to the history cache and the hub (in that order: a replay that misses
    /// the cache's copy is registered in time for the hub's).
    private func finish(_ batch: Batch, _ result: Result<[AppendOutcome], any Error>) {
        encoder.withLock { encoder in
            switch result {
            case .success(let outcomes):
                var fresh: [StoredMessage] = []
                fresh.reserveCapacity(outcomes.count)
                for o in outcomes where !o.duplicate { fresh.append(o.message) }
                let duplicates = outcomes.count - fresh.count
                if duplicates > 0 { metrics.duplicates.increment(by: Int64(duplicates)) }
                metrics.messagesStored.increment(by: Int64(fresh.count))
                if shared == nil {
                    history.append(fresh)
                    hub.publish(fresh: fresh, origins: batch.origins, outcomes: outcomes, encoder: &encoder)
                } else {
                    // Acks now; the messages reach listeners in the store's order (readFromStore).
                    hub.publish(fresh: [], origins: batch.origins, outcomes: outcomes, encoder: &encoder)
                }
            case .failure:
                // What waits behind a failed batch fails too: stored after it (the store may well work again
                // by then), it would overtake the failed messages its senders are about to send again.
                let waiting = state.withLock { s -> Batch in
                    var rest = Batch()
                    swap(&rest, &s.queue)
                    return rest
                }
                hub.publish(fresh: [], origins: batch.origins + waiting.origins, outcomes: nil, encoder: &encoder)
            }
        }
        if shared != nil, case .success = result { readFromStore() }
    }

    /// Delivers what servers sharing the store committed after the last message delivered: in id
    /// order, which is commit order there, so each conversation's seqs arrive in order and none is
    /// skipped. Called on every notification and after this server's own commits.
    private func readFromStore() {
        let start = tail.withLock { t -> Bool in
            if t.reading {
                t.again = true
                return false
            }
            t.reading = true
            return true
        }
        if start { Task { await self.readTail() } }
    }

    private func readTail() async {
        while true {
            let cursor = tail.withLock { $0.cursor }
            do {
                let rows = try await store.messages(afterID: cursor, limit: Self.tailPage)
                if let last = rows.last {
                    tail.withLock { $0.cursor = last.id }
                    encoder.withLock { encoder in
                        history.append(rows)
                        hub.publish(fresh: rows, origins: [], outcomes: [], encoder: &encoder)
                    }
                    if rows.count == Self.tailPage { continue }
                }
            } catch {
                if state.withLock({ $0.stopped }) {
                    tail.withLock { $0.reading = false }
                    return
                }
                logger.warning("cannot read new messages from the store (\(error)); trying again")
                try? await Task.sleep(for: .milliseconds(500))
                continue
            }
            let more = tail.withLock { t -> Bool in
                if t.again {
                    t.again = false
                    return true
                }
                t.reading = false
                return false
            }
            if !more { return }
        }
    }

    private func wakeIdleWaiters() {
        let idle = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard s.queue.isEmpty, !s.committing else { return [] }
            defer { s.idleWaiters = [] }
            return s.idleWaiters
        }
        for w in idle { w.resume() }
    }
}
