import Prometheus
import IMStorage
import Logging
import Synchronization

/// Collects sends from every connection and commits them many per transaction, in arrival order.
///
/// Each message is answered only after its transaction commits; then the committed messages are
/// handed to `onCommit` (the hub's fan-out) in commit order.
final class GroupCommitter: Sendable {
    typealias Completion = @Sendable (Result<AppendOutcome, any Error>) -> Void

    private struct Pending: Sendable {
        var message: NewMessage
        var done: Completion
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
    private let onCommit: @Sendable ([StoredMessage]) -> Void
    private let metrics: ServerMetrics
    private let logger: Logger

    init(store: any ChatStore, metrics: ServerMetrics, logger: Logger, onCommit: @escaping @Sendable ([StoredMessage]) -> Void) {
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.onCommit = onCommit
    }

    /// Queues a message; `done` runs once it is durable (or failed).
    func submit(_ message: NewMessage, done: @escaping Completion) {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { s in
            s.queue.append(Pending(message: message, done: done))
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume()
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
                metrics.messagesStored.increment(by: Int64(fresh.count))
                if !fresh.isEmpty { onCommit(fresh) }
                for (p, o) in zip(batch, outcomes) { p.done(.success(o)) }
            } catch {
                logger.error("commit of \(batch.count) messages failed: \(error)")
                metrics.commitFailures.increment()
                for p in batch { p.done(.failure(error)) }
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
