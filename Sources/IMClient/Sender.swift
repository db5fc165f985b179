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

    private typealias Outgoing = SendWindow.Outgoing
    private typealias Step = SendWindow.Step

    private struct State: ~Copyable {
        var window = SendWindow()
        var writerWake: CheckedContinuation<Step, Never>?
        var pumpWake: CheckedContinuation<Void, Never>?

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
                s.window.fail(ClientError(.server, "stopped"))
                defer { s.pumpWake = nil }
                return s.pumpWake
            }
            w?.resume()
        }
        let acknowledged = { self.state.withLock { $0.window.acknowledged } }
        return try await Link.reconnecting(configuration, logger: logger, session: { iterator, outbound, authed in
            try await self.session(&iterator, outbound, authed, onAck: onAck)
        }, outcome: { reconnects in
            let (done, fatal, acked) = state.withLock { s in (s.window.isDone, s.window.fatal, s.window.acknowledged) }
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
                    if s.window.queued < Self.readAhead || s.window.fatal != nil { return true }
                    s.pumpWake = c
                    return false
                }
                if ready { c.resume() }
            }
            if state.withLock({ $0.window.fatal != nil }) { return }
            let next: [UInt8]?
            do {
                next = try await source.next()
            } catch {
                let e = error as? ClientError ?? ClientError(.badInput, "cannot read input: \(error)")
                let w = state.withLock { s in s.window.sourceEnded(error: e); return s.wakeWriter() }
                w?.resume(returning: .again)
                return
            }
            guard let body = next else {
                let w = state.withLock { s in s.window.sourceEnded(); return s.wakeWriter() }
                w?.resume(returning: .again)
                return
            }
            index += 1
            let item = Outgoing(index: index, cid: clientID(ofMessage: index), body: body)
            let w = state.withLock { s in s.window.enqueue(item); return s.wakeWriter() }
            w?.resume(returning: .again)
        }
    }

    /// One connection's life: a writer task sends (first the unacked tail, then new messages), this task reads acks.
    private func session(_ iterator: inout WebSocketInboundStream.AsyncIterator, _ outbound: WebSocketOutboundWriter, _ authed: Authed,
                         onAck: @escaping @Sendable (Ack) -> Void) async throws {
        let resend: [Outgoing] = state.withLock { $0.window.connected() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for item in resend {
                    try await outbound.write(.text(self.frame(item)))
                }
                try await self.writeLoop(outbound, maxBytes: authed.maxMessageBytes)
            }
            // The writer must hear that the link is gone before the group waits for it.
            let linkLost: @Sendable () -> Void = {
                let w = self.state.withLock { s in s.window.linkLost(); return s.wakeWriter() }
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
                    let known = state.withLock { $0.window.acked(ack.cid) }
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
                        let delay = state.withLock { $0.window.refused(id) }
                        guard let delay else { continue }
                        logger.debug("message \(id): \(code.rawValue); resending from it in \(delay)")
                        Task {
                            try? await Task.sleep(for: delay)
                            let w = self.state.withLock { s -> CheckedContinuation<Step, Never>? in
                                s.window.retryDue()
                                return s.wakeWriter()
                            }
                            w?.resume(returning: .again)
                        }
                        continue
                    }
                    let error = ClientError.fromServer(code, id.map { "message \($0): \(message)" } ?? message)
                    let w = state.withLock { s in s.window.fail(error); return s.wakeWriter() }
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
                    let step = s.window.nextStep(maxBytes: maxBytes)
                    if step == nil { s.writerWake = c }
                    var pump: CheckedContinuation<Void, Never>?
                    if s.window.queued < Sender.readAhead {
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
}
