import Foundation
import IMClient
import IMServer
import IMStorage
import IMWire
import IMStorage
import Testing
import Synchronization
import HummingbirdWSClient
import NIOWebSocket

@Suite struct MessagingTests {
    @Test func acksCarryGapFreeSeqPerRoom() async throws {
        try await withServer { server in
            let alice = server.client(try await server.user("alice"))
            let a1 = try await send(["1", "2", "3"], to: .room("a"), alice)
            let b1 = try await send(["x"], to: .room("b"), alice)
            let a2 = try await send(["4"], to: .room("a"), alice)
            #expect(a1.map(\.seq) == [1, 2, 3])
            #expect(b1.map(\.seq) == [1])
            #expect(a2.map(\.seq) == [4])
            #expect((a1 + a2).allSatisfy { $0.room == "a" && !$0.duplicate })
            let stored = try await server.store.messages(in: .room("a"), afterSeq: 0, limit: 10)
            #expect(stored.map(\.body) == ["1", "2", "3", "4"])
        }
    }

    @Test func listenerReplaysThenFollowsLiveWithoutGapOrDuplicate() async throws {
        try await withServer { server in
            let alice = server.client(try await server.user("alice"))
            _ = try await send((1...50).map(String.init), to: .room("r"), alice)
            let (task, collector) = try await startListener(alice, scopes: [.target(.room("r"))], start: .afterSeq(20))
            _ = try await send((51...80).map(String.init), to: .room("r"), alice)
            try await collector.wait(for: 60)
            task.cancel()
            #expect(collector.messages.map(\.seq) == Array(21...80))
            #expect(collector.messages.map(\.body) == (21...80).map(String.init))
        }
    }

    /// A listener that subscribes while a stream is being committed sees every message exactly once.
    @Test func seamUnderConcurrentLoad() async throws {
        try await withServer { server in
            let alice = server.client(try await server.user("alice"))
            let n = 3000
            let sending = Task { try await send((1...n).map(String.init), to: .room("load"), alice) }
            // Subscribe part-way through the stream.
            while try await server.store.lastMessages(in: .room("load"), count: 1).first?.seq ?? 0 < 300 {
                try await Task.sleep(for: .milliseconds(2))
            }
            let (task, collector) = try await startListener(alice, scopes: [.target(.room("load"))], start: .afterSeq(0))
            let acks = try await sending.value
            #expect(acks.count == n)
            try await collector.wait(for: n)
            task.cancel()
            #expect(collector.messages.map(\.seq) == (1...Int64(n)).map { $0 })
        }
    }

    @Test func historyThenLive() async throws {
        try await withServer { server in
            let alice = server.client(try await server.user("alice"))
            _ = try await send((1...10).map(String.init), to: .room("h"), alice)
            let (task, collector) = try await startListener(alice, scopes: [.target(.room("h"))], start: .last(3))
            _ = try await send(["11"], to: .room("h"), alice)
            try await collector.wait(for: 4)
            task.cancel()
            #expect(collector.messages.map(\.body) == ["8", "9", "10", "11"])
        }
    }

    @Test func resendWithSameClientIDReturnsFirstAckAndStoresNothing() async throws {
        try await withServer { server in
            let token = try await server.user("alice")
            try await withRawClient(server, headers: [("Authorization", "Bearer \(token)")]) { s in
                guard case .authed(let user, let limit) = try await s.next() else { Issue.record("no authed frame"); return }
                #expect(user == "alice")
                #expect(limit == 65536)
                try await s.send(ClientFrame.send(id: "same", to: .room("r"), body: "first").encoded())
                guard case .ack(let first) = try await s.next() else { Issue.record("no ack"); return }
                try await s.send(ClientFrame.send(id: "same", to: .room("r"), body: "second").encoded())
                guard case .ack(let again) = try await s.next() else { Issue.record("no ack"); return }
                #expect(!first.duplicate && again.duplicate)
                #expect(again.seq == first.seq && again.id == first.id && again.ts == first.ts)
                try await s.outbound.close(.normalClosure, reason: nil)
            }
            #expect(try await server.store.messages(in: .room("r"), afterSeq: 0, limit: 10).map(\.body) == ["first"])
        }
    }

    @Test func directMessagesReachOnlyTheirTwoUsers() async throws {
        try await withServer { server in
            let alice = server.client(try await server.user("alice"))
            let bob = server.client(try await server.user("bob"))
            let carol = server.client(try await server.user("carol"))
            let (bobTask, bobGot) = try await startListener(bob, scopes: [.allDirect])
            let (carolTask, carolGot) = try await startListener(carol, scopes: [.allDirect, .target(.direct("alice")), .target(.direct("bob"))])
            let acks = try await send(["psst"], to: .direct("bob"), alice)
            #expect(acks.first?.room == "@bob")
            try await bobGot.wait(for: 1)
            // carol's replay of her own conversations with alice and bob is empty, and nothing live arrives.
            try await Task.sleep(for: .milliseconds(300))
            bobTask.cancel()
            carolTask.cancel()
            #expect(bobGot.messages.map(\.room) == ["@alice"])
            #expect(bobGot.messages.map(\.body) == ["psst"])
            #expect(carolGot.messages.isEmpty)
            // History of carol's own @alice conversation is empty too.
            let (replay, replayed) = try await startListener(carol, scopes: [.target(.direct("alice"))], start: .afterSeq(0))
            replay.cancel()
            #expect(replayed.messages.isEmpty)
        }
    }

    @Test func sendingToAnUnknownUserIsRefused() async throws {
        try await withServer { server in
            let alice = server.client(try await server.user("alice"))
            await #expect(throws: ClientError.self) { try await send(["x"], to: .direct("nobody"), alice) }
            do {
                _ = try await send(["x"], to: .direct("nobody"), alice)
            } catch let e as ClientError {
                #expect(e.kind == .badInput)
                #expect(e.message.contains("nobody"))
            }
        }
    }

    @Test func oversizeMessageStopsAfterTheOnesBeforeItAreStored() async throws {
        try await withServer(maxMessageBytes: 10) { server in
            let alice = server.client(try await server.user("alice"))
            do {
                _ = try await send(["ok1", "ok2", String(repeating: "x", count: 11), "never"], to: .room("r"), alice)
                Issue.record("expected a failure")
            } catch let e as ClientError {
                #expect(e.kind == .tooLarge)
                #expect(e.message.contains("limit of 10 bytes"))
                #expect(e.message.contains("2 messages were stored"))
            }
            #expect(try await server.store.messages(in: .room("r"), afterSeq: 0, limit: 10).map(\.body) == ["ok1", "ok2"])
        }
    }

    @Test func senderResendsUnackedTailAfterServerRestart() async throws {
        let first = try await TestServer.start()
        let token = try await first.user("alice")
        let port = first.port
        let dir = first.directory
        let config = ClientConfiguration(server: first.url, token: token, maxBackoff: .milliseconds(100))
        let n = 5000
        let acks = Mutex<[Ack]>([])
        let sending = Task {
            try await Sender(configuration: config, target: .room("r"), logger: quietLogger)
                .run(source: ListSource((1...n).map(String.init))) { a in acks.withLock { $0.append(a) } }
        }
        while acks.withLock({ $0.count }) < 500 { try await Task.sleep(for: .milliseconds(1)) }
        try await first.stop(removeFiles: false)
        // Same port, same file: the sender reconnects and resends its unacked tail with the same ids.
        let second = try await TestServer.startOnPort(port, directory: dir)
        let report = try await sending.value
        #expect(report.acknowledged == n)
        let stored = try await second.store.messages(in: .room("r"), afterSeq: 0, limit: n + 10)
        #expect(stored.map(\.body) == (1...n).map(String.init), "each message stored once, in order")
        try await second.stop()
    }
}

@Suite struct BackpressureTests {
    /// A history far longer than a connection's queue streams at the reader's pace instead of overflowing it.
    @Test func longReplayToASlowReaderArrivesWhole() async throws {
        try await withServer { server in
            let token = try await server.user("alice")
            // Uncompressed 512-byte bodies: far more than the socket buffers hold while the reader sleeps.
            let n = 100_000
            let filler = String(repeating: "x", count: 500)
            var batch: [NewMessage] = []
            for i in 1...n {
                batch.append(NewMessage(conversation: .room("long"), sender: "alice", clientID: "c\(i)", body: "\(i) \(filler)", ts: Timestamp.nowMillis()))
                if batch.count == 2048 || i == n {
                    _ = try await server.store.append(batch)
                    batch = []
                }
            }
            let received = try await withRawClient(server, headers: [("Authorization", "Bearer \(token)")]) { s in
                guard case .authed = try await s.next() else { Issue.record("not authed"); return }
                try await s.send(ClientFrame.subscribe(.init(scope: .target(.room("long")), start: .afterSeq(0))).encoded())
                // Read slowly at first, so that the server has to wait for us.
                try await Task.sleep(for: .seconds(3))
                var next: Int64 = 1
                while next <= Int64(n), let frame = try await s.next() {
                    if case .message(let m) = frame {
                        #expect(m.seq == next)
                        next += 1
                    }
                }
                #expect(next == Int64(n) + 1, "the replay stopped at seq \(next - 1)")
                try await s.outbound.close(.normalClosure, reason: nil)
            }
            #expect(received?.closeCode != .policyViolation)
        }
    }
}
