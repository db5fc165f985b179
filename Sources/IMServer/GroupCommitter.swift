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
        var waiter: CheckedContinuation<Void, Never>?
        var busy = false
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
        var stopped = false
    }

    private let store: any ChatStore
    private let state = Mutex(State())
    private let hub: Hub
    private let history: HistoryCache
    private let metrics: ServerMetrics
    private let logger: Logger

    init(store: any ChatStore, hub: Hub, history: HistoryCache, metrics: ServerMetrics, logger: Logger) {
        self.store = store
        self.hub = hub
        self.history = history
        self.metrics = metrics
        self.logger = logger
    }

    /// Queues a message; its origin is answered once it is durable (or failed).
    func submit(_ message: NewMessage, origin: Origin) {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { s in
            s.queue.messages.append(message)
            s.queue.origins.append(origin)
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
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
                if s.queue.isEmpty && !s.busy { return true }
                s.idleWaiters.append(c)
                return false
            }
            if idle { c.resume() }
        }
    }

    /// Stops `run` once the queue is empty.
    func stop() {
        let waiter = state.withLock { s in
            s.stopped = true
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
    }

    private struct Committed {
        var batch: Batch
        var outcomes: Result<[AppendOutcome], any Error>
    }

    /// The commit loop; returns after `stop()` once the queue is empty.
    ///
    /// While one batch is being committed (SQLite's thread, then the fsync), the previous one is framed
    /// and handed to the hub, so the two overlap.
    func run() async {
        // Frames are encoded here, by the one committer, so the encoder's caches need no lock.
        var encoder = FrameEncoder()
        var committed: Committed?
        while true {
            if committed == nil { await waitForWork() }
            let batch: Batch = state.withLock { s in
                var batch = Batch()
                // As many as the count and byte limits allow (at least one).
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
                s.busy = !batch.isEmpty || committed != nil
                return batch
            }
            if batch.isEmpty {
                if let done = committed {
                    finish(done, encoder: &encoder)
                    committed = nil
                    wakeIdleWaiters()
                    continue
                }
                if state.withLock({ $0.stopped }) { return }
                continue
            }
            async let outcomes = commit(batch)
            if let done = committed { finish(done, encoder: &encoder) }
            committed = Committed(batch: batch, outcomes: await outcomes)
        }
    }

    private func waitForWork() async {
        await withCheckedContinuation { (w: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { s -> Bool in
                if !s.queue.isEmpty || s.stopped { return true }
                s.waiter = w
                return false
            }
            if ready { w.resume() }
        }
    }

    private func commit(_ batch: Batch) async -> Result<[AppendOutcome], any Error> {
        let start = ContinuousClock.now
        do {
            let outcomes = try await store.append(batch.messages)
            metrics.commitDuration.record(ContinuousClock.now - start)
            metrics.batchSize.record(Double(batch.messages.count))
            return .success(outcomes)
        } catch {
            logger.error("commit of \(batch.messages.count) messages failed: \(error)")
            metrics.commitFailures.increment()
            return .failure(error)
        }
    }

    /// Hands a committed batch to the history cache and the hub (in that order: a replay that misses
    /// the cache's copy is registered in time for the hub's).
    private func finish(_ done: Committed, encoder: inout FrameEncoder) {
        switch done.outcomes {
        case .success(let outcomes):
            var fresh: [StoredMessage] = []
            fresh.reserveCapacity(outcomes.count)
            for o in outcomes where !o.duplicate { fresh.append(o.message) }
            let duplicates = outcomes.count - fresh.count
            if duplicates > 0 { metrics.duplicates.increment(by: Int64(duplicates)) }
            metrics.messagesStored.increment(by: Int64(fresh.count))
            history.append(fresh)
            hub.publish(fresh: fresh, origins: done.batch.origins, outcomes: outcomes, encoder: &encoder)
        case .failure:
            hub.publish(fresh: [], origins: done.batch.origins, outcomes: nil, encoder: &encoder)
        }
    }

    private func wakeIdleWaiters() {
        let idle = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            guard s.queue.isEmpty else { return [] }
            s.busy = false
            defer { s.idleWaiters = [] }
            return s.idleWaiters
        }
        for w in idle { w.resume() }
    }
}
