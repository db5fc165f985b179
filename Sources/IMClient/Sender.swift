public import IMWire
public import Logging
import NIOWebSocket
import Synchronization
import WSCore

/// Where a sender's messages come from (stdin, arguments, a generator). `next` returns nil at the end.
public protocol MessageSource: Sendable {
    func next() async throws -> [UInt8]?
}

/// A fixed list of messages.
public final class ListSource: MessageSource {
    private let items: Mutex<[[UInt8]]>
    public init(_ messages: [String]) {
        items = Mutex(messages.reversed().map { Array($0.utf8) })
    }
    public func next() async throws -> [UInt8]? {
        items.withLock { $0.popLast() }
    }
}

/// What a finished send did.
public struct SendReport: Sendable, Equatable {
    /// Messages acknowledged (stored, or found already stored).
    public var acknowledged: Int
    /// Reconnects it took.
    public var reconnects: Int
}

/// Sends messages to one target, pipelined, resending what is unacknowledged after a reconnect with the
/// same client ids, so that each message is stored exactly once.
public final class Sender: Sendable {
    private let configuration: ClientConfiguration
    private let target: Target
    private let logger: Logger
    private let idPrefix: String

    private struct Outgoing: Sendable {
        var index: Int
        var cid: String
        var body: [UInt8]
    }

    private struct State: ~Copyable {
        var queue: [Outgoing] = []
        var queueHead = 0
        var order: [String] = []
        var orderHead = 0
        var unacked: [String: Outgoing] = [:]
        var sourceDone = false
        var sourceError: ClientError?
        var blocked: (index: Int, problem: String, kind: ClientError.Kind)?
        var fatal: ClientError?
        var linkAlive = false
        var acknowledged = 0
        var writerWake: CheckedContinuation<Step, Never>?
        /// Sends the server refused for now (`unavailable`, `rate_limited`), to go again, in order, on
        /// this connection: the first refused and everything unacked after it (the server refuses those
        /// too, so that none overtakes it).
        var retries: [String] = []
        var retryDelay: Duration = .zero
        /// A resend is scheduled from this message number on.
        var retryFrom: Int?
        var pumpWake: CheckedContinuation<Void, Never>?

        var queued: Int { queue.count - queueHead }

        mutating func popQueue() -> Outgoing? {
            guard queueHead < queue.count else { return nil }
            let item = queue[queueHead]
            queueHead += 1
            if queueHead > 4096, queueHead * 2 > queue.count {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
            return item
        }

        mutating func wakeWriter() -> CheckedContinuation<Step, Never>? {
            defer { writerWake = nil }
            return writerWake
        }
    }

    private let state = Mutex(State())
    /// Messages read ahead of the window; keeps stdin reading off the critical path.
    static let readAhead = 1024

    public init(configuration: ClientConfiguration, target: Target, logger: Logger) {
        self.configuration = configuration
        self.target = target
        self.logger = logger
        // 128 random bits (base64url): two runs never pick the same ids, which the server would answer
        // as resends of each other's messages.
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        idPrefix = String((0..<22).map { _ in alphabet[Int(rng.next(upperBound: UInt8(64)))] })
    }

    /// The client id this sender gives its `index`th message (from 1): a message sent another way with
    /// it first (`OneShotPost`) is then a resend, never a second copy.
    public func clientID(ofMessage index: Int) -> String {
        "\(idPrefix)-\(index)"
    }

    /// Sends everything `source` yields; `onAck` runs for each acknowledgement, in order.
    public func run(source: some MessageSource, onAck: @escaping @Sendable (Ack) -> Void) async throws -> SendReport {
        // The pump may sit in a blocking read of stdin: it is not a child task, so that returning (on an error,
        // say) never waits for input that may not come.
        let pumpTask = Task { await self.pump(source) }
        defer {
            pumpTask.cancel()
            let w = state.withLock { s in
                s.fatal = s.fatal ?? ClientError(.server, "stopped")
                defer { s.pumpWake = nil }
                return s.pumpWake
            }
            w?.resume()
        }
        let acknowledged = { self.state.withLock { $0.acknowledged } }
        return try await Link.reconnecting(configuration, logger: logger, session: { iterator, outbound, authed in
            try await self.session(&iterator, outbound, authed, onAck: onAck)
        }, outcome: { reconnects in
            let (done, fatal, acked) = state.withLock { s in
                (s.sourceDone && s.queued == 0 && s.unacked.isEmpty && s.blocked == nil, s.fatal, s.acknowledged)
            }
            if let fatal { throw fatal }
            return done ? SendReport(acknowledged: acked, reconnects: reconnects) : nil
        }, detail: { "; \(acknowledged()) messages were acknowledged" })
    }

    /// Reads the source ahead of the writer, up to `readAhead` messages.
    private func pump(_ source: some MessageSource) async {
        var index = 0
        while !Task.isCancelled {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { s -> Bool in
                    if s.queued < Self.readAhead || s.fatal != nil { return true }
                    s.pumpWake = c
                    return false
                }
                if ready { c.resume() }
            }
            if state.withLock({ $0.fatal != nil }) { return }
            let next: [UInt8]?
            do {
                next = try await source.next()
            } catch {
                let e = error as? ClientError ?? ClientError(.badInput, "cannot read input: \(error)")
                let w = state.withLock { s in s.sourceError = e; s.sourceDone = true; return s.wakeWriter() }
                w?.resume(returning: .again)
                return
            }
            guard let body = next else {
                let w = state.withLock { s in s.sourceDone = true; return s.wakeWriter() }
                w?.resume(returning: .again)
                return
            }
            index += 1
            let item = Outgoing(index: index, cid: clientID(ofMessage: index), body: body)
            let w = state.withLock { s in s.queue.append(item); return s.wakeWriter() }
            w?.resume(returning: .again)
        }
    }

    private enum Step {
        case send(Outgoing)
        case again
        case finished
        case stop
    }

    /// One connection's life: a writer task sends (first the unacked tail, then new messages), this task reads acks.
    private func session(_ iterator: inout WebSocketInboundStream.AsyncIterator, _ outbound: WebSocketOutboundWriter, _ authed: Authed,
                         onAck: @escaping @Sendable (Ack) -> Void) async throws {
        let resend: [Outgoing] = state.withLock { s in
            s.linkAlive = true
            s.retries = []
            s.retryFrom = nil
            return s.order[s.orderHead...].compactMap { s.unacked[$0] }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for item in resend {
                    try await outbound.write(.text(self.frame(item)))
                }
                try await self.writeLoop(outbound, maxBytes: authed.maxMessageBytes)
            }
            // The writer must hear that the link is gone before the group waits for it.
            let linkLost: @Sendable () -> Void = {
                let w = self.state.withLock { s in s.linkAlive = false; return s.wakeWriter() }
                w?.resume(returning: .again)
            }
            do {
                try await readAcks(&iterator, onAck: onAck)
            } catch {
                linkLost()
                throw error
            }
            linkLost()
            try await group.waitForAll()
        }
    }

    private func readAcks(_ iterator: inout WebSocketInboundStream.AsyncIterator, onAck: @escaping @Sendable (Ack) -> Void) async throws {
            while let message = try await iterator.nextMessage(maxSize: Link.maxInboundFrame) {
                guard case .text(let text) = message else { continue }
                let frame = try ServerFrame.decode(text.utf8)
                switch frame {
                case .ack(let ack):
                    let known = state.withLock { s -> Bool in
                        guard s.unacked.removeValue(forKey: ack.cid) != nil else { return false }
                        s.acknowledged += 1
                        s.retryDelay = .zero
                        while s.orderHead < s.order.count, s.unacked[s.order[s.orderHead]] == nil { s.orderHead += 1 }
                        if s.orderHead > 4096, s.orderHead * 2 > s.order.count {
                            s.order.removeFirst(s.orderHead)
                            s.orderHead = 0
                        }
                        return true
                    }
                    if known {
                        onAck(ack)
                        let w = state.withLock { $0.wakeWriter() }
                        w?.resume(returning: .again)
                    }
                case .error(let code, let message, let id):
                    if let id, code == .unavailable || code == .rateLimited {
                        // Not stored, and the connection stays: after a pause that grows while refusals go on
                        // (and resets with the next ack), send it and every later unacked message again, in
                        // order, with the same ids. One resend is scheduled at a time, from the earliest refused.
                        let delay = state.withLock { s -> Duration? in
                            guard let item = s.unacked[id] else { return nil }
                            if let from = s.retryFrom {
                                s.retryFrom = min(from, item.index)
                                return nil
                            }
                            s.retryFrom = item.index
                            s.retryDelay = s.retryDelay == .zero ? Self.firstRetry : min(s.retryDelay * 2, Self.maxRetry)
                            return s.retryDelay
                        }
                        guard let delay else { continue }
                        logger.debug("message \(id): \(code.rawValue); resending from it in \(delay)")
                        Task {
                            try? await Task.sleep(for: delay)
                            let w = self.state.withLock { s -> CheckedContinuation<Step, Never>? in
                                let from = s.retryFrom ?? 0
                                s.retryFrom = nil
                                s.retries = s.order[s.orderHead...].filter { s.unacked[$0].map { $0.index >= from } ?? false }
                                return s.wakeWriter()
                            }
                            w?.resume(returning: .again)
                        }
                        continue
                    }
                    let error = ClientError.fromServer(code, id.map { "message \($0): \(message)" } ?? message)
                    let w = state.withLock { s in s.fatal = s.fatal ?? error; return s.wakeWriter() }
                    w?.resume(returning: .again)
                default:
                    break
                }
            }
    }

    private func frame(_ item: Outgoing) -> String {
        ClientFrame.send(id: item.cid, to: target, body: String(decoding: item.body, as: UTF8.self)).encoded()
    }

    private func writeLoop(_ outbound: WebSocketOutboundWriter, maxBytes: Int) async throws {
        while true {
            let step: Step = await withCheckedContinuation { (c: CheckedContinuation<Step, Never>) in
                let (step, pump) = state.withLock { s -> (Step?, CheckedContinuation<Void, Never>?) in
                    let step = nextStep(&s, maxBytes: maxBytes)
                    if step == nil { s.writerWake = c }
                    var pump: CheckedContinuation<Void, Never>?
                    if s.queued < Sender.readAhead {
                        pump = s.pumpWake
                        s.pumpWake = nil
                    }
                    return (step, pump)
                }
                pump?.resume()
                if let step { c.resume(returning: step) }
            }
            switch step {
            case .send(let item):
                try await outbound.write(.text(frame(item)))
            case .again:
                continue
            case .finished, .stop:
                try? await outbound.close(.normalClosure, reason: nil)
                return
            }
        }
    }

    /// First and longest pause before resending a message the server refused for now.
    static let firstRetry: Duration = .milliseconds(50)
    static let maxRetry: Duration = .seconds(5)

    /// Decides what the writer does next; nil means wait for an ack, input or the end of the link.
    private func nextStep(_ s: inout State, maxBytes: Int) -> Step? {
        if s.fatal != nil || !s.linkAlive { return .stop }
        while !s.retries.isEmpty {
            let cid = s.retries.removeFirst()
            if let item = s.unacked[cid] { return .send(item) }
        }
        // A resend is due: nothing new goes before it (the server would refuse it anyway).
        if s.retryFrom != nil { return nil }
        if let blocked = s.blocked {
            // Everything before the bad message must be acknowledged first, so the count we report is exact.
            guard s.unacked.isEmpty else { return nil }
            s.fatal = ClientError(blocked.kind, "message \(blocked.index) \(blocked.problem); \(s.acknowledged) "
                + "message\(s.acknowledged == 1 ? " was" : "s were") stored before it")
            return .stop
        }
        if s.unacked.count < ClientConfiguration.sendWindow, let item = s.popQueue() {
            if item.body.count > maxBytes {
                s.blocked = (item.index, "is \(item.body.count) bytes, over the server's limit of \(maxBytes) bytes", .tooLarge)
                return .again
            }
            if String(validating: item.body, as: UTF8.self) == nil {
                s.blocked = (item.index, "is not valid UTF-8", .badInput)
                return .again
            }
            s.unacked[item.cid] = item
            s.order.append(item.cid)
            return .send(item)
        }
        if s.sourceDone && s.queued == 0 && s.unacked.isEmpty {
            if let e = s.sourceError {
                s.fatal = e
                return .stop
            }
            return .finished
        }
        return nil
    }
}
