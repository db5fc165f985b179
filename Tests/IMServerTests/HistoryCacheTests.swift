import IMStorage
import IMWire
import Testing
@testable import IMServer

@Suite struct HistoryCacheTests {
    static func m(_ room: String, _ seq: Int64, body: String = "b") -> StoredMessage {
        StoredMessage(id: seq, conversation: .room(room), seq: seq, sender: "a", clientID: "\(room)\(seq)", ts: 0, body: body)
    }

    @Test func answersOnlyWhatItCovers() {
        let cache = HistoryCache(maxBytes: 1 << 20, maxPerConversation: 5)
        let r = ConversationKey.room("r")
        #expect(cache.messages(in: r, afterSeq: 0, limit: 10) == nil)
        #expect(cache.head(of: r) == nil)
        // The server started when the room was at seq 10: the window begins at 11.
        cache.append((11...13).map { Self.m("r", $0) })
        #expect(cache.head(of: r) == 13)
        #expect(cache.messages(in: r, afterSeq: 10, limit: 10)?.map(\.seq) == [11, 12, 13])
        #expect(cache.messages(in: r, afterSeq: 12, limit: 10)?.map(\.seq) == [13])
        #expect(cache.messages(in: r, afterSeq: 13, limit: 10)?.map(\.seq) == [])
        #expect(cache.messages(in: r, afterSeq: 11, limit: 1)?.map(\.seq) == [12])
        #expect(cache.messages(in: r, afterSeq: 9, limit: 10) == nil, "seq 10 is not in the window")
        #expect(cache.last(in: r, count: 2)?.map(\.seq) == [12, 13])
        #expect(cache.last(in: r, count: 4) == nil, "seq 10 would be needed")
        // Past the per-conversation cap the oldest go.
        cache.append((14...17).map { Self.m("r", $0) })
        #expect(cache.messages(in: r, afterSeq: 12, limit: 10)?.map(\.seq) == [13, 14, 15, 16, 17])
        #expect(cache.messages(in: r, afterSeq: 11, limit: 10) == nil)
    }

    @Test func aConversationFromItsStartAnswersAnyHistory() {
        let cache = HistoryCache(maxBytes: 1 << 20, maxPerConversation: 100)
        cache.append((1...3).map { Self.m("new", $0) })
        #expect(cache.last(in: .room("new"), count: 50)?.map(\.seq) == [1, 2, 3])
        #expect(cache.messages(in: .room("new"), afterSeq: 0, limit: 50)?.count == 3)
    }

    @Test func boundedInBytesOldestFirst() {
        let body = String(repeating: "x", count: 1000)
        let cost = HistoryCache.cost(Self.m("a", 1, body: body))
        let cache = HistoryCache(maxBytes: cost * 10, maxPerConversation: 1000)
        for seq in Int64(1)...8 { cache.append([Self.m("a", seq, body: body)]) }
        for seq in Int64(1)...8 { cache.append([Self.m("b", seq, body: body)]) }
        #expect(cache.usage.messages == 10)
        #expect(cache.usage.bytes <= cost * 10)
        // The oldest six of "a" went; "a" still answers from 7 on, and "b" is whole.
        #expect(cache.messages(in: .room("a"), afterSeq: 6, limit: 10)?.map(\.seq) == [7, 8])
        #expect(cache.messages(in: .room("a"), afterSeq: 5, limit: 10) == nil)
        #expect(cache.messages(in: .room("b"), afterSeq: 0, limit: 10)?.count == 8)
    }

    @Test func turnedOff() {
        let cache = HistoryCache(maxBytes: 0, maxPerConversation: 10)
        cache.append([Self.m("r", 1)])
        #expect(cache.head(of: .room("r")) == nil)
    }
}
