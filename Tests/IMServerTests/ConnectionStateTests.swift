import IMStorage
import IMWire
import NIOCore
import Testing
@testable import IMServer

/// The connection's logic as a value: no sockets, time passed in.
@Suite struct ConnectionStateTests {
    static let limits = ConnectionState.Limits(maxMessageBytes: 1000, maxPendingBytes: 10_000, maxUnackedSends: 3, maxUnackedBytes: 100, maxQueuedFrames: 4,
                                               signInTimeout: .seconds(10), writeTimeout: .seconds(10), maxSubscriptions: 2, maxHistory: 50,
                                               sendsPerSecond: 1_000, sendBurst: 1_000)
    static let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let alice = UserRecord(id: 1, name: "alice", isAdmin: false, isDisabled: false, createdAt: 0)
    static let room = Feed.conversation(.room("r"))

    func signedIn() -> ConnectionState {
        var s = ConnectionState(limits: Self.limits, now: Self.t0)
        _ = s.received(.frame(.auth(token: "t")))
        _ = s.tokenChecked(Self.alice)
        return s
    }

    static func chunk(_ seqs: ClosedRange<Int64>, room: String = "r", body: String = "b") -> Chunk {
        var encoder = FrameEncoder()
        var c = Chunk()
        for seq in seqs {
            c.append(StoredMessage(id: seq + 1000, conversation: .room(room), seq: seq, sender: "bob", clientID: "\(seq)", ts: 0, body: body),
                     label: room, encoder: &encoder)
        }
        return c
    }

    /// A compact rendering of actions, to compare with expectations.
    static func describe(_ actions: [ConnectionState.Action]) -> [String] {
        actions.map { a in
            switch a {
            case .send(let f): "send \(f.encoded())"
            case .write(let c, let from): "write \(c.entries[from...].map(\.seq))"
            case .close(let code, let reason): "close \(code) \(reason)"
            case .checkToken(let t): "checkToken \(t)"
            case .checkPeer(let p): "checkPeer \(p)"
            case .submit(let conv, let cid, let body, let sender): "submit \(conv) \(cid) \(body) \(sender)"
            case .register(let f): "register \(f)"
            case .unregister(let f): "unregister \(f)"
            case .replay(let f, let start, let g): "replay \(f) \(start) \(g)"
            case .pauseReading: "pause"
            case .resumeReading: "resume"
            }
        }
    }

    @Test func beforeSignInOnlyAuthAndPingWork() {
        var s = ConnectionState(limits: Self.limits, now: Self.t0)
        #expect(Self.describe(s.received(.frame(.ping(ref: "1")))) == [#"send {"op":"pong","ref":"1"}"#])
        let refused = Self.describe(s.received(.frame(.send(id: "a", to: .room("r"), body: "x"))))
        #expect(refused.count == 1 && refused[0].contains(#""code":"unauthorized""#))
        #expect(s.user == nil)
    }

    @Test func framesWaitInOrderForTheTokenCheck() {
        var s = ConnectionState(limits: Self.limits, now: Self.t0)
        #expect(Self.describe(s.received(.frame(.auth(token: "tok")))) == ["checkToken tok"])
        // Sent right behind the auth frame: they wait for its answer instead of being refused.
        #expect(s.received(.frame(.send(id: "1", to: .room("r"), body: "one"))).isEmpty)
        #expect(s.received(.invalid(.badJSON("nope"), id: nil)).isEmpty)
        #expect(s.received(.frame(.send(id: "2", to: .room("r"), body: "two"))).isEmpty)
        let after = Self.describe(s.tokenChecked(Self.alice))
        #expect(after.count == 4)
        #expect(after[0] == #"send {"op":"authed","user":"alice","max_message_bytes":1000}"#)
        #expect(after[1] == "submit r 1 one alice")
        #expect(after[2].contains(#""code":"bad_json""#))
        #expect(after[3] == "submit r 2 two alice")
    }

    @Test func aBadTokenClosesWith1008() {
        var s = ConnectionState(limits: Self.limits, now: Self.t0)
        #expect(Self.describe(s.start(headerToken: "bad")) == ["checkToken bad"])
        let out = Self.describe(s.tokenChecked(nil))
        #expect(out.count == 2 && out[0].contains("unauthorized") && out[1].hasPrefix("close policyViolation"))
        #expect(s.received(.frame(.ping(ref: nil))).isEmpty)
    }

    @Test func signInDeadline() {
        var s = ConnectionState(limits: Self.limits, now: Self.t0)
        #expect(s.tick(now: Self.t0 + .seconds(9)).isEmpty)
        let out = Self.describe(s.tick(now: Self.t0 + .seconds(10)))
        #expect(out.last == "close policyViolation sign-in timeout")
        var t = signedIn()
        #expect(t.tick(now: Self.t0 + .seconds(60)).isEmpty)
    }

    @Test func directSendsWaitForThePeerLookupAndKeepTheirOrder() {
        var s = signedIn()
        #expect(Self.describe(s.received(.frame(.send(id: "1", to: .direct("bob"), body: "hi")))) == ["checkPeer bob"])
        #expect(s.received(.frame(.send(id: "2", to: .room("r"), body: "after"))).isEmpty)
        #expect(Self.describe(s.peerChecked("bob", exists: true)) == [#"submit dm:alice:bob 1 hi alice"#, "submit r 2 after alice"])
        // Known now: no second lookup.
        // Three sends in flight: the limit, so reading pauses.
        #expect(Self.describe(s.received(.frame(.send(id: "3", to: .direct("bob"), body: "again")))) == ["submit dm:alice:bob 3 again alice", "pause"])
        #expect(Self.describe(s.received(.frame(.send(id: "4", to: .direct("nobody"), body: "?")))) == ["checkPeer nobody"])
        #expect(s.received(.frame(.ping(ref: "p"))).isEmpty)
        let out = Self.describe(s.peerChecked("nobody", exists: false))
        #expect(out.count == 2)
        #expect(out[0].contains(#""code":"not_found""#) && out[0].contains(#""id":"4""#))
        #expect(out[1] == #"send {"op":"pong","ref":"p"}"#)
    }

    @Test func unackedSendsPauseReading() {
        var s = signedIn()
        var all: [String] = []
        for i in 1...3 { all += Self.describe(s.received(.frame(.send(id: "\(i)", to: .room("r"), body: "x")))) }
        #expect(all.last == "pause")
        #expect(Self.describe(s.sendsAnswered(1)) == ["resume"])
        #expect(s.unackedSends == 2)
        // Bytes count too: one large send is enough to pause.
        var t = signedIn()
        #expect(Self.describe(t.received(.frame(.send(id: "big", to: .room("r"), body: String(repeating: "x", count: 100))))).last == "pause")
        #expect(Self.describe(t.sendsAnswered(1)) == ["resume"])
    }

    @Test func theSeamHoldsLiveMessagesUntilTheReplayEnds() {
        var s = signedIn()
        let sub = Self.describe(s.received(.frame(.subscribe(Subscription(scope: .target(.room("r")), start: .afterSeq(2))))))
        #expect(sub == ["register \(Self.room)", "replay \(Self.room) afterSeq(2) 1"])
        // Committed while the replay reads: held back.
        guard case .none = s.deliver(Self.chunk(6...7), to: Self.room) else { Issue.record("live message during replay was written"); return }
        guard case .write(let from) = s.replayed(Self.chunk(3...5), feed: Self.room, generation: 1) else { Issue.record("page not written"); return }
        #expect(from == 0)
        // The replay read up to 6 (it saw the first live message in the store too).
        guard case .write(let from2) = s.replayed(Self.chunk(5...6), feed: Self.room, generation: 1) else { Issue.record("page not written"); return }
        #expect(from2 == 1)
        let live = Self.describe(s.replayFinished(feed: Self.room, generation: 1, head: 6))
        #expect(live == [#"send {"op":"subscribed","to":"r","seq":6}"#, "write [7]"])
        // Live from now on, never twice.
        guard case .write(let f3) = s.deliver(Self.chunk(7...9), to: Self.room) else { Issue.record("live not written"); return }
        #expect(f3 == 1)
        guard case .none = s.deliver(Self.chunk(8...9), to: Self.room) else { Issue.record("duplicate written"); return }
    }

    @Test func aSecondSubscriptionReplacesTheFirstsReplay() {
        var s = signedIn()
        _ = s.received(.frame(.subscribe(Subscription(scope: .target(.room("r")), start: .afterSeq(0)))))
        let again = Self.describe(s.received(.frame(.subscribe(Subscription(scope: .target(.room("r")), start: .last(2))))))
        #expect(again == ["replay \(Self.room) last(2) 2"])  // registered already
        guard case .none = s.replayed(Self.chunk(1...3), feed: Self.room, generation: 1) else { Issue.record("stale page written"); return }
        #expect(!s.replayWanted(feed: Self.room, generation: 1))
        #expect(s.replayFinished(feed: Self.room, generation: 1, head: 3).isEmpty)  // no stray `subscribed`
        guard case .write = s.replayed(Self.chunk(2...3), feed: Self.room, generation: 2) else { Issue.record("page not written"); return }
        #expect(Self.describe(s.replayFinished(feed: Self.room, generation: 2, head: 3)) == [#"send {"op":"subscribed","to":"r","seq":3}"#])
    }

    @Test func unsubscribeStopsDeliveries() {
        var s = signedIn()
        _ = s.received(.frame(.subscribe(Subscription(scope: .target(.room("r")), start: .live))))
        _ = s.replayFinished(feed: Self.room, generation: 1, head: 0)
        #expect(Self.describe(s.received(.frame(.unsubscribe(to: "r")))) == ["unregister \(Self.room)"])
        guard case .none = s.deliver(Self.chunk(1...1), to: Self.room) else { Issue.record("delivered after unsub"); return }
        #expect(s.received(.frame(.unsubscribe(to: "r"))).isEmpty)
    }

    @Test func heldMessagesAreBounded() {
        var s = signedIn()
        _ = s.received(.frame(.subscribe(Subscription(scope: .target(.room("r")), start: .afterSeq(0)))))
        let big = Self.chunk(1...1, body: String(repeating: "x", count: 6000))
        guard case .none = s.deliver(big, to: Self.room) else { Issue.record("held chunk written"); return }
        guard case .cut = s.deliver(Self.chunk(2...2, body: String(repeating: "x", count: 6000)), to: Self.room) else {
            Issue.record("held bytes over the bound were kept")
            return
        }
        #expect(s.isClosing)
    }

    @Test func outboundBoundAndWriteTimeout() {
        var s = signedIn()
        #expect(s.outbound(pending: 7_000, now: Self.t0) == .flowing)
        #expect(s.outbound(pending: 7_600, now: Self.t0) == .stalled(until: Self.t0 + .seconds(10)))
        #expect(s.outbound(pending: 9_000, now: Self.t0 + .seconds(5)) == .stalled(until: Self.t0 + .seconds(10)))
        #expect(s.outbound(pending: 100, now: Self.t0 + .seconds(6)) == .flowing)
        #expect(s.outbound(pending: 8_000, now: Self.t0 + .seconds(7)) == .stalled(until: Self.t0 + .seconds(17)))
        guard case .cut = s.outbound(pending: 8_000, now: Self.t0 + .seconds(17)) else { Issue.record("stuck reader not cut"); return }
        guard case .cut = s.outbound(pending: 10_001, now: Self.t0) else { Issue.record("over the bound not cut"); return }
    }

    @Test func shutdownClosesWith1001AndStopsEverything() {
        var s = signedIn()
        _ = s.received(.frame(.subscribe(Subscription(scope: .target(.room("r")), start: .live))))
        _ = s.replayFinished(feed: Self.room, generation: 1, head: 0)
        #expect(Self.describe(s.shutdown()) == ["close goingAway server shutting down"])
        #expect(s.shutdown().isEmpty)
        guard case .none = s.deliver(Self.chunk(1...1), to: Self.room) else { Issue.record("delivered while closing"); return }
        #expect(s.received(.frame(.ping(ref: nil))).isEmpty)
    }

    /// The send rate is a token bucket in the connection's time: a burst, then the rate.
    @Test func sendsOverTheRateAreRefusedWithTheirID() {
        var limits = Self.limits
        limits.sendsPerSecond = 2
        limits.sendBurst = 2
        limits.maxUnackedSends = 100
        var s = ConnectionState(limits: limits, now: Self.t0)
        _ = s.received(.frame(.auth(token: "t")), now: Self.t0)
        _ = s.tokenChecked(Self.alice)
        func send(_ id: String, at t: NIODeadline) -> String {
            Self.describe(s.received(.frame(.send(id: id, to: .room("r"), body: "x")), now: t)).first ?? ""
        }
        #expect(send("1", at: Self.t0).hasPrefix("submit"))
        #expect(send("2", at: Self.t0).hasPrefix("submit"))
        let refused = send("3", at: Self.t0)
        #expect(refused.contains(#""code":"rate_limited""#) && refused.contains(#""id":"3""#))
        #expect(send("3", at: Self.t0 + .milliseconds(500)).hasPrefix("submit"))
        #expect(send("4", at: Self.t0 + .milliseconds(600)).contains("rate_limited"))
        #expect(send("4", at: Self.t0 + .seconds(5)).hasPrefix("submit"))
    }

    @Test func subscriptionsAndHistoryAreCapped() {
        var s = signedIn()
        #expect(Self.describe(s.received(.frame(.subscribe(Subscription(scope: .target(.room("r")), start: .last(51))))))[0].contains("bad_frame"))
        #expect(Self.describe(s.received(.frame(.subscribe(Subscription(scope: .target(.room("a")), start: .live))))).count == 2)
        #expect(Self.describe(s.received(.frame(.subscribe(Subscription(scope: .target(.room("b")), start: .last(50)))))).count == 2)
        #expect(Self.describe(s.received(.frame(.subscribe(Subscription(scope: .target(.room("c")), start: .live)))))[0].contains(#""code":"limit""#))
    }

    @Test func aRevokedSessionIsClosed() {
        var s = signedIn()
        let out = Self.describe(s.revoked())
        #expect(out.count == 2 && out[0].contains("unauthorized") && out[1].hasPrefix("close policyViolation"))
        var anonymous = ConnectionState(limits: Self.limits, now: Self.t0)
        #expect(anonymous.revoked().isEmpty)
    }

    @Test func allDirectUsesMessageIDs() {
        var s = signedIn()
        let feed = Feed.allDirect("alice")
        #expect(Self.describe(s.received(.frame(.subscribe(Subscription(scope: .allDirect, start: .afterID(1001)))))).count == 2)
        #expect(Self.describe(s.replayFinished(feed: feed, generation: 1, head: 1001)) == [#"send {"op":"subscribed","to":"@*","seq":1001}"#])
        guard case .write(let from) = s.deliver(Self.chunk(1...3), to: feed) else { Issue.record("not written"); return }
        #expect(from == 1)  // ids 1001…1003: 1001 was already seen
        let refused = Self.describe(s.received(.frame(.subscribe(Subscription(scope: .allDirect, start: .last(5))))))
        #expect(refused.count == 1 && refused[0].contains("bad_frame"))
    }
}
