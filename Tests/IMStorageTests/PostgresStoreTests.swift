import Foundation
import IMTestSupport
import IMWire
import Testing
@testable import IMStorage

/// What only a shared store has to show: writers on different nodes (here two stores on one database).
@Suite(.enabled(if: !TestPostgres.skipped)) struct PostgresStoreTests {
    /// Two nodes append to one room at once, 2,000 messages each in batches: seqs 1…4,000 with no gap,
    /// each sender's messages in its own order, ids in the same order as seqs, and a resend through the
    /// other node is a duplicate with the first seq.
    @Test func twoWritersShareOneGapFreeSequence() async throws {
        let url = try TestPostgres.database()
        let a = try await PostgresStore.open(url: url)
        let b = try await PostgresStore.open(url: url)
        let room = ConversationKey.room("general")
        func send(_ store: PostgresStore, _ sender: String) async throws -> [AppendOutcome] {
            var all: [AppendOutcome] = []
            for start in stride(from: 0, to: 2000, by: 50) {
                all += try await store.append((start..<start + 50).map { message(room, sender, "\($0)", "\(sender) \($0)") })
            }
            return all
        }
        async let fromA = send(a, "alice")
        async let fromB = send(b, "bob")
        let (outA, outB) = try await (fromA, fromB)
        #expect(!(outA + outB).contains { $0.duplicate })
        for out in [outA, outB] {
            let seqs = out.map(\.message.seq)
            #expect(seqs == seqs.sorted(), "a sender's messages out of order")
        }
        let stored = try await a.messages(in: room, afterSeq: 0, limit: 10_000)
        #expect(stored.map(\.seq) == Array(1...4000))
        #expect(stored.map(\.id) == stored.map(\.id).sorted(), "ids not in seq order")
        #expect(stored.filter { $0.sender == "alice" }.map(\.clientID) == (0..<2000).map { "\($0)" })
        // Interleaved, not one after the other (or the test proves little).
        let switches = zip(stored, stored.dropFirst()).filter { $0.sender != $1.sender }.count
        #expect(switches > 2, "the two writers never interleaved")

        let again = try await b.append([message(room, "alice", "7", "changed")])
        #expect(again[0].duplicate && again[0].message == outA[7].message)
        #expect(try await b.lastMessageID() == stored.last?.id)
        try await a.close()
        try await b.close()
    }

    @Test func passwordsAreNotInTheURLsWeShow() {
        #expect(PostgresStore.redacted("postgres://imctl:s3cret@db:5432/chat") == "postgres://imctl:%E2%80%A6@db:5432/chat"
                || !PostgresStore.redacted("postgres://imctl:s3cret@db:5432/chat").contains("s3cret"))
        #expect(PostgresStore.isURL("postgresql://db/chat") && PostgresStore.isURL("postgres://db/chat") && !PostgresStore.isURL("/var/lib/imctl.db"))
    }
}
