import HummingbirdWSClient
import IMClient
import IMServer
import IMStorage
import IMWire
import NIOWebSocket
import Synchronization
import Testing

/// The replay/live seam under load, checked on the server's own frames (no client-side de-duplication
/// to hide a duplicate): readers that subscribe while a stream is being committed, from the store or from
/// the history cache, each get every message after their start once, in order.
@Suite(.timeLimit(.minutes(10))) struct SeamTests {
    @Test(arguments: [0, ServerConfiguration.historyCacheBytes])
    func readersJoiningMidStreamSeeEveryMessageOnce(historyCacheBytes: Int) async throws {
        try await withServer(historyCacheBytes: historyCacheBytes) { server in
            let alice = server.client(try await server.user("alice"))
            let token = try await server.user("reader")
            let n = 12_000
            let sending = Task { try await send((1...n).map { "m\($0)" }, to: .room("seam"), alice) }
            // Readers join at staggered points of the stream, resuming from different places.
            let starts: [Int64] = [0, 100, 2_500, 6_000, 11_000, Int64(n)]
            var readers: [Task<[Int64], any Error>] = []
            for (i, after) in starts.enumerated() {
                while try await server.store.lastMessages(in: .room("seam"), count: 1).first?.seq ?? 0 < Int64(i * 1_500) {
                    try await Task.sleep(for: .milliseconds(2))
                }
                readers.append(Task {
                    let collected = Mutex<[Int64]>([])
                    try await withRawClient(server, compression: i % 2 == 0) { s in
                        var seqs: [Int64] = []
                        defer { collected.withLock { $0 = seqs } }
                        try await s.send(ClientFrame.auth(token: token).encoded())
                        try await s.send(ClientFrame.subscribe(Subscription(scope: .target(.room("seam")), start: .afterSeq(after))).encoded())
                        var subscribed = 0
                        while seqs.last ?? after < Int64(n) || subscribed == 0 {
                            switch try await s.next() {
                            case .message(let m)?: seqs.append(m.seq)
                            case .subscribed?: subscribed += 1
                            case nil: return
                            default: break
                            }
                        }
                        #expect(subscribed == 1)
                        try await s.outbound.close(.normalClosure, reason: nil)
                    }
                    return collected.withLock { $0 }
                })
            }
            #expect(try await sending.value.count == n)
            for (after, reader) in zip(starts, readers) {
                let seqs = try await reader.value
                if let mismatch = sequenceMismatch(seqs, Array((after + 1)...max(after + 1, Int64(n))).filter { $0 <= n }) {
                    Issue.record("reader after \(after): \(mismatch)")
                }
            }
        }
    }
}

/// Nil when `actual == expected`, else where they first differ.
func sequenceMismatch(_ actual: [Int64], _ expected: [Int64]) -> String? {
    if actual == expected { return nil }
    var i = 0
    while i < actual.count && i < expected.count && actual[i] == expected[i] { i += 1 }
    return "\(actual.count) messages, expected \(expected.count); first difference at index \(i): got \(actual[i..<min(actual.count, i + 3)]), expected \(expected[i..<min(expected.count, i + 3)])"
}
