import Foundation
import IMClient
import IMServer
import IMStorage
import IMWire
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `send`'s one-request path against a real server: it is stored and delivered like any message, a
/// message it got through is a resend for the WebSocket path (the fallback), and every failure comes
/// back as "not done", within the deadline.
@Suite struct OneShotPostServerTests {
    @Test func aPostIsStoredDeliveredAndTheWebSocketResendIsADuplicate() async throws {
        try await withServer { server in
            let token = try await server.user("alice")
            let (listener, collector) = try await startListener(server.client(token), scopes: [.target(.room("general"))])
            defer { listener.cancel() }
            let sender = Sender(configuration: server.client(token), target: .room("general"), logger: quietLogger)
            let cid = sender.clientID(ofMessage: 1)
            let outcome = await onOwnThread {
                OneShotPost.send(server.client(token), target: .room("general"), body: "hello over http", clientID: cid, deadline: .now + .seconds(30))
            }
            guard case .acked(let ack) = outcome else {
                Issue.record("not acked: \(outcome)")
                return
            }
            #expect(ack.cid == cid && ack.seq == 1 && ack.room == "general" && !ack.duplicate)
            try await collector.wait(for: 1)
            #expect(collector.messages.map(\.body) == ["hello over http"])

            // The fallback sends the same message with the same id: the server answers with the same ack.
            let acks = AckList()
            let report = try await sender.run(source: ListSource(["hello over http"]), onAck: { acks.add($0) })
            #expect(report.acknowledged == 1)
            #expect(acks.all.map(\.seq) == [1])
            #expect(acks.all.first?.duplicate == true)
            // And a second post of it is a duplicate too.
            let again = await onOwnThread {
                OneShotPost.send(server.client(token), target: .room("general"), body: "hello over http", clientID: cid, deadline: .now + .seconds(30))
            }
            #expect(again == .acked(Ack(cid: cid, id: ack.id, room: "general", seq: 1, ts: ack.ts, duplicate: true)))
            let stored = try await server.store.messages(in: .room("general"), afterSeq: 0, limit: 10)
            #expect(stored.count == 1)
            try await Task.sleep(for: .milliseconds(200))
            #expect(collector.messages.count == 1, "a duplicate was delivered again")
        }
    }

    @Test func refusalsAreNotDone() async throws {
        try await withServer(maxMessageBytes: 100) { server in
            let token = try await server.user("alice")
            let configuration = server.client(token)
            func attempt(_ target: Target, _ body: String, token: String? = nil) async -> OneShotPost.Outcome {
                var c = configuration
                if let token { c.token = token }
                let request = c
                return await onOwnThread {
                    OneShotPost.send(request, target: target, body: body, clientID: "c-\(UUID().uuidString)", deadline: .now + .seconds(30))
                }
            }
            for (what, outcome) in [("bad token", await attempt(.room("r"), "x", token: "imt_nope")),
                                    ("unknown user", await attempt(.direct("nobody"), "x")),
                                    ("too large", await attempt(.room("r"), String(repeating: "a", count: 101)))] {
                guard case .notDone = outcome else {
                    Issue.record("\(what): \(outcome)")
                    continue
                }
            }
            #expect(try await server.store.messages(in: .room("r"), afterSeq: 0, limit: 10).isEmpty)
        }
    }

    /// A port nobody listens on, and one that accepts but never answers: not done, and the second only
    /// after the deadline, not long past it.
    @Test func noServerAndASilentServerAreNotDoneByTheDeadline() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #expect(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        #expect(bound == 0)
        #expect(listen(fd, 8) == 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))

        let silent = ClientConfiguration(server: "ws://127.0.0.1:\(port)", token: "imt_x")
        let start = ContinuousClock.now
        let outcome = OneShotPost.send(silent, target: .room("r"), body: "x", clientID: "c", deadline: start + .milliseconds(300))
        let took = ContinuousClock.now - start
        guard case .notDone = outcome else {
            Issue.record("a silent server: \(outcome)")
            return
        }
        #expect(took >= .milliseconds(290) && took < .seconds(5), "took \(took)")

        // Closed now: refused at once.
        close(fd)
        let refused = OneShotPost.send(silent, target: .room("r"), body: "x", clientID: "c", deadline: .now + .seconds(30))
        guard case .notDone = refused else {
            Issue.record("no server: \(refused)")
            return
        }
    }
}

/// Runs `body` on a thread of its own: `OneShotPost.send` blocks its caller, and the server under test
/// needs the cooperative threads to answer it (two cores give two).
func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: body()) }.start()
    }
}

/// Acks collected from a sender's callback.
final class AckList: Sendable {
    private let acks = Mutex<[Ack]>([])
    func add(_ ack: Ack) { acks.withLock { $0.append(ack) } }
    var all: [Ack] { acks.withLock { $0 } }
}
