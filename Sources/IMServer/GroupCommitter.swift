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

    private struct Pending: Sendable {
        var message: NewMessage
        var origin: Origin
    }

    private struct State: ~Copyable {
        var queue: [Pending] = []
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
            s.queue.append(Pending(message: message, origin: origin))
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

    /// The commit loop; returns after `stop()` once the queue is empty.
    func run() async {
        // Frames are encoded here, by the one committer, so the encoder's caches need no lock.
        var encoder = FrameEncoder()
        while true {
            await withCheckedContinuation { (w: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    if !s.queue.isEmpty || s.stopped { return true }
                    s.waiter = w
                    return false
                }
                if ready { w.resume() }
            }
            let batch: [Pending] = state.withLock { s in
                let n = min(s.queue.count, ServerConfiguration.maxBatch)
                let batch = Array(s.queue.prefix(n))
                s.queue.removeFirst(n)
                s.busy = !batch.isEmpty
                return batch
            }
            if batch.isEmpty {
                if state.withLock({ $0.stopped }) { return }
                continue
            }
            let start = ContinuousClock.now
            do {
                let outcomes = try await store.append(batch.map(\.message))
                metrics.commitDuration.record(ContinuousClock.now - start)
                metrics.batchSize.record(Double(batch.count))
                let fresh = outcomes.filter { !$0.duplicate }.map(\.message)
                let duplicates = outcomes.count - fresh.count
                if duplicates > 0 { metrics.duplicates.increment(by: Int64(duplicates)) }
                metrics.messagesStored.increment(by: Int64(fresh.count))
                history.append(fresh)
                hub.publish(fresh: fresh, answers: zip(batch, outcomes).map { ($0.origin, $1) }, encoder: &encoder)
            } catch {
                logger.error("commit of \(batch.count) messages failed: \(error)")
                metrics.commitFailures.increment()
                hub.publish(fresh: [], answers: batch.map { ($0.origin, nil) }, encoder: &encoder)
            }
            let idle = state.withLock { s -> [CheckedContinuation<Void, Never>] in
                s.busy = false
                guard s.queue.isEmpty else { return [] }
                defer { s.idleWaiters = [] }
                return s.idleWaiters
            }
            for w in idle { w.resume() }
        }
    }
}
