import IMWire

/// A sender's bookkeeping, without tasks or sockets: what is queued, what is in flight unacknowledged
/// (at most `limit`), what to resend after a reconnect or a refusal, and when the send is done or has
/// failed. `Sender` drives it from its reader, writer and input tasks; tests drive it directly.
struct SendWindow {
    struct Outgoing: Sendable, Equatable {
        /// 1 for the first message of the run.
        var index: Int
        var cid: String
        var body: [UInt8]
    }

    /// What the writer does next.
    enum Step: Equatable {
        case send(Outgoing)
        /// Look again (something changed without a frame to send).
        case again
        /// Everything is acknowledged and the input is done: close.
        case finished
        /// The connection is gone or the send failed: stop writing.
        case stop
    }

    /// Unacknowledged messages in flight at most.
    let limit: Int

    private var queue: [Outgoing] = []
    private var queueHead = 0
    /// Client ids in sending order; those before `orderHead` are all acknowledged.
    private var order: [String] = []
    private var orderHead = 0
    private var unacked: [String: Outgoing] = [:]
    private(set) var sourceDone = false
    private var sourceError: ClientError?
    private var blocked: (index: Int, problem: String, kind: ClientError.Kind)?
    private(set) var fatal: ClientError?
    private(set) var linkAlive = false
    private(set) var acknowledged = 0
    /// Sends the server refused for now (`unavailable`, `rate_limited`), to go again, in order, on
    /// this connection: the first refused and everything unacked after it (the server refuses those
    /// too, so that none overtakes it).
    private var retries: [String] = []
    private var retryDelay: Duration = .zero
    /// A resend is scheduled from this message number on.
    private var retryFrom: Int?

    /// First and longest pause before resending a message the server refused for now.
    static let firstRetry: Duration = .milliseconds(50)
    static let maxRetry: Duration = .seconds(5)

    init(limit: Int = ClientConfiguration.sendWindow) {
        self.limit = limit
    }

    /// Messages read from the input and not yet sent.
    var queued: Int { queue.count - queueHead }
    var unackedCount: Int { unacked.count }

    /// Every message read is acknowledged, the input is done, and nothing failed.
    var isDone: Bool { sourceDone && queued == 0 && unacked.isEmpty && blocked == nil }

    mutating func enqueue(_ item: Outgoing) {
        queue.append(item)
    }

    /// The input ended, with an error if reading it failed.
    mutating func sourceEnded(error: ClientError? = nil) {
        sourceError = error
        sourceDone = true
    }

    mutating func fail(_ error: ClientError) {
        fatal = fatal ?? error
    }

    /// A connection is signed in: what was sent and not acknowledged goes first, in order.
    mutating func connected() -> [Outgoing] {
        linkAlive = true
        retries = []
        retryFrom = nil
        return order[orderHead...].compactMap { unacked[$0] }
    }

    mutating func linkLost() {
        linkAlive = false
    }

    /// An ack for `cid`: true when it was ours and unacknowledged (report it), false for a repeat.
    mutating func acked(_ cid: String) -> Bool {
        guard unacked.removeValue(forKey: cid) != nil else { return false }
        acknowledged += 1
        retryDelay = .zero
        while orderHead < order.count, unacked[order[orderHead]] == nil { orderHead += 1 }
        if orderHead > 4096, orderHead * 2 > order.count {
            order.removeFirst(orderHead)
            orderHead = 0
        }
        return true
    }

    /// The server refused `cid` for now. Returns the pause after which `retryDue()` should run, or nil
    /// when no new resend needs scheduling (not ours, or one is already scheduled, now from the earliest).
    /// The pause doubles while refusals go on and starts over with the next ack.
    mutating func refused(_ cid: String) -> Duration? {
        guard let item = unacked[cid] else { return nil }
        if let from = retryFrom {
            retryFrom = min(from, item.index)
            return nil
        }
        retryFrom = item.index
        retryDelay = retryDelay == .zero ? Self.firstRetry : min(retryDelay * 2, Self.maxRetry)
        return retryDelay
    }

    /// The scheduled resend is due: the refused message and every unacked one after it go again, in order.
    mutating func retryDue() {
        let from = retryFrom ?? 0
        retryFrom = nil
        retries = order[orderHead...].filter { unacked[$0].map { $0.index >= from } ?? false }
    }

    /// Decides what the writer does next; nil means wait for an ack, input or the end of the link.
    mutating func nextStep(maxBytes: Int) -> Step? {
        if fatal != nil || !linkAlive { return .stop }
        while !retries.isEmpty {
            let cid = retries.removeFirst()
            if let item = unacked[cid] { return .send(item) }
        }
        // A resend is due: nothing new goes before it (the server would refuse it anyway).
        if retryFrom != nil { return nil }
        if let blocked {
            // Everything before the bad message must be acknowledged first, so the count we report is exact.
            guard unacked.isEmpty else { return nil }
            fatal = ClientError(blocked.kind, "message \(blocked.index) \(blocked.problem); \(acknowledged) "
                + "message\(acknowledged == 1 ? " was" : "s were") stored before it")
            return .stop
        }
        if unacked.count < limit, let item = popQueue() {
            if item.body.count > maxBytes {
                blocked = (item.index, "is \(item.body.count) bytes, over the server's limit of \(maxBytes) bytes", .tooLarge)
                return .again
            }
            if String(validating: item.body, as: UTF8.self) == nil {
                blocked = (item.index, "is not valid UTF-8", .badInput)
                return .again
            }
            unacked[item.cid] = item
            order.append(item.cid)
            return .send(item)
        }
        if sourceDone && queued == 0 && unacked.isEmpty {
            if let sourceError {
                fatal = sourceError
                return .stop
            }
            return .finished
        }
        return nil
    }

    private mutating func popQueue() -> Outgoing? {
        guard queueHead < queue.count else { return nil }
        let item = queue[queueHead]
        queueHead += 1
        if queueHead > 4096, queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        return item
    }
}
