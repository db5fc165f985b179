@testable import IMClient
import IMWire
import Testing

/// The sender's bookkeeping without sockets: the window, acks in any order, resends after a reconnect
/// and after refusals, and the exact count when a message cannot be sent.
@Suite struct SendWindowTests {
    func item(_ i: Int, _ body: String = "m") -> SendWindow.Outgoing {
        SendWindow.Outgoing(index: i, cid: "c-\(i)", body: Array(body.utf8))
    }

    /// Sends until the writer would wait; returns the indexes sent.
    func drain(_ w: inout SendWindow, maxBytes: Int = 1000) -> [Int] {
        var sent: [Int] = []
        while let step = w.nextStep(maxBytes: maxBytes) {
            switch step {
            case .send(let o): sent.append(o.index)
            case .again: continue
            case .finished, .stop: return sent
            }
        }
        return sent
    }

    @Test func atMostTheLimitIsInFlight() {
        var w = SendWindow(limit: 3)
        for i in 1...5 { w.enqueue(item(i)) }
        w.sourceEnded()
        do { let got = w.nextStep(maxBytes: 1000); #expect(got == .stop, "nothing goes before a connection") }
        _ = w.connected()
        do { let got = drain(&w); #expect(got == [1, 2, 3]) }
        do { let got = w.acked("c-2"); #expect(got) }
        do { let got = w.acked("c-2"); #expect(!got, "a repeated ack counts once") }
        do { let got = w.acked("c-99"); #expect(!got) }
        do { let got = drain(&w); #expect(got == [4]) }
        for i in [1, 3, 4] { let got = w.acked("c-\(i)"); #expect(got) }
        do { let got = drain(&w); #expect(got == [5]) }
        #expect(!w.isDone)
        do { let got = w.acked("c-5"); #expect(got) }
        do { let got = w.nextStep(maxBytes: 1000); #expect(got == .finished) }
        #expect(w.isDone && w.acknowledged == 5)
    }

    /// After a lost connection, the unacknowledged go first, in their order, then the rest.
    @Test func aReconnectResendsTheUnackedInOrder() {
        var w = SendWindow(limit: 10)
        for i in 1...6 { w.enqueue(item(i)) }
        _ = w.connected()
        do { let got = drain(&w); #expect(got == [1, 2, 3, 4, 5, 6]) }
        _ = w.acked("c-1"); _ = w.acked("c-4")
        w.linkLost()
        do { let got = w.nextStep(maxBytes: 1000); #expect(got == .stop) }
        #expect(w.connected().map(\.index) == [2, 3, 5, 6])
        w.enqueue(item(7))
        do { let got = drain(&w); #expect(got == [7]) }
    }

    /// A refusal (`rate_limited`, `unavailable`) schedules one resend from the earliest refused message,
    /// with a pause that doubles while refusals go on and starts over after an ack; nothing new goes
    /// before it.
    @Test func refusalsResendFromTheEarliestInOrder() {
        var w = SendWindow(limit: 10)
        for i in 1...5 { w.enqueue(item(i)) }
        _ = w.connected()
        do { let got = drain(&w); #expect(got == [1, 2, 3, 4, 5]) }
        _ = w.acked("c-1")
        do { let got = w.refused("c-3"); #expect(got == SendWindow.firstRetry) }
        do { let got = w.refused("c-2"); #expect(got == nil, "one resend at a time, now from 2") }
        do { let got = w.refused("c-1"); #expect(got == nil, "acked already") }
        w.enqueue(item(6))
        do { let got = w.nextStep(maxBytes: 1000); #expect(got == nil, "nothing new before the resend") }
        w.retryDue()
        do { let got = drain(&w); #expect(got == [2, 3, 4, 5, 6]) }
        do { let got = w.refused("c-2"); #expect(got == SendWindow.firstRetry * 2) }
        w.retryDue()
        do { let got = w.refused("c-2"); #expect(got == SendWindow.firstRetry * 4) }
        _ = w.acked("c-3")
        w.retryDue()
        do { let got = w.refused("c-2"); #expect(got == SendWindow.firstRetry, "an ack starts the pauses over") }
        for _ in 0..<20 { w.retryDue(); _ = w.refused("c-2") }
        w.retryDue()
        do { let got = w.refused("c-2"); #expect(got == SendWindow.maxRetry) }
    }

    /// A message over the limit stops the send once everything before it is acknowledged, so the count
    /// in the error is exact.
    @Test func aTooLargeMessageFailsWithTheExactCount() {
        var w = SendWindow(limit: 10)
        w.enqueue(item(1)); w.enqueue(item(2)); w.enqueue(item(3, String(repeating: "x", count: 11))); w.enqueue(item(4))
        w.sourceEnded()
        _ = w.connected()
        do { let got = drain(&w, maxBytes: 10); #expect(got == [1, 2]) }
        #expect(w.fatal == nil)
        _ = w.acked("c-1")
        do { let got = w.nextStep(maxBytes: 10); #expect(got == nil) }
        _ = w.acked("c-2")
        do { let got = w.nextStep(maxBytes: 10); #expect(got == .stop) }
        #expect(w.fatal == ClientError(.tooLarge, "message 3 is 11 bytes, over the server's limit of 10 bytes; 2 messages were stored before it"))
        #expect(!w.isDone)
    }

    @Test func invalidUTF8AndInputErrorsFail() {
        var w = SendWindow()
        w.enqueue(SendWindow.Outgoing(index: 1, cid: "c-1", body: [0xC3, 0x28]))
        _ = w.connected()
        do { let got = drain(&w); #expect(got == []) }
        #expect(w.fatal?.kind == .badInput && w.fatal?.message.contains("message 1 is not valid UTF-8; 0 messages were stored") == true)

        var v = SendWindow()
        v.enqueue(item(1))
        v.sourceEnded(error: ClientError(.badInput, "cannot read input"))
        _ = v.connected()
        do { let got = drain(&v); #expect(got == [1]) }
        _ = v.acked("c-1")
        do { let got = v.nextStep(maxBytes: 1000); #expect(got == .stop) }
        #expect(v.fatal == ClientError(.badInput, "cannot read input"))
    }
}

/// The listener's de-duplication without sockets: each message once, in order, across replays.
@Suite struct ListenPositionsTests {
    func m(_ room: String, seq: Int64, id: Int64) -> MessageView {
        MessageView(id: id, room: room, seq: seq, from: "x", ts: "t", body: "b")
    }

    @Test func repeatsAndOlderMessagesAreDropped() {
        var p = ListenPositions(scopes: [.target(.room("r"))], start: .live)
        #expect(p.subscription(for: .target(.room("r"))) == Subscription(scope: .target(.room("r")), start: .live))
        do { let got = p.admit(m("r", seq: 1, id: 10)); #expect(got) }
        do { let got = p.admit(m("r", seq: 2, id: 11)); #expect(got) }
        do { let got = p.admit(m("r", seq: 2, id: 11)); #expect(!got, "a repeat") }
        do { let got = p.admit(m("r", seq: 1, id: 10)); #expect(!got, "an older one") }
        do { let got = p.admit(m("other", seq: 9, id: 12)); #expect(!got, "not followed") }
        #expect(p.subscription(for: .target(.room("r"))) == Subscription(scope: .target(.room("r")), start: .afterSeq(2)))
    }

    /// `subscribed` moves the position to where the server is live from, never back.
    @Test func subscribedMovesForwardOnly() {
        var p = ListenPositions(scopes: [.target(.room("r")), .allDirect], start: .afterSeq(0))
        p.subscribed(to: "r", at: 5)
        p.subscribed(to: "r", at: 3)
        p.subscribed(to: "@*", at: 40)
        #expect(p.subscription(for: .target(.room("r"))) == Subscription(scope: .target(.room("r")), start: .afterSeq(5)))
        #expect(p.subscription(for: .allDirect) == Subscription(scope: .allDirect, start: .afterID(40)))
        do { let got = p.admit(m("r", seq: 5, id: 50)); #expect(!got) }
        do { let got = p.admit(m("r", seq: 6, id: 51)); #expect(got) }
    }

    /// A direct conversation followed both by name and through `@*` is delivered once and moves both.
    @Test func aDirectMessageFollowedTwiceIsDeliveredOnce() {
        var p = ListenPositions(scopes: [.target(.direct("bob")), .allDirect], start: .live)
        do { let got = p.admit(m("@bob", seq: 1, id: 7)); #expect(got) }
        do { let got = p.admit(m("@bob", seq: 1, id: 7)); #expect(!got) }
        #expect(p.subscription(for: .allDirect) == Subscription(scope: .allDirect, start: .afterID(7)))
        do { let got = p.admit(m("@carol", seq: 1, id: 8)); #expect(got, "through @* only") }
        do { let got = p.admit(m("@carol", seq: 1, id: 8)); #expect(!got) }
        do { let got = p.admit(m("@dave", seq: 3, id: 6)); #expect(!got, "older than the @* position") }
        do { let got = p.admit(m("room", seq: 1, id: 9)); #expect(!got, "rooms do not come through @*") }
    }
}
