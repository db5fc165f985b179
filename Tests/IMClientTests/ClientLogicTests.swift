@testable import IMClient
import IMWire
import Testing

/// The client's logic that needs no socket: reconnect pauses, URLs, what server errors become.
@Suite struct ClientLogicTests {
    /// Pauses double from 100 ms, stay within [half, whole] of the step (full jitter on the upper half),
    /// never pass the cap, and start over after a reset.
    @Test func backoffDoublesWithJitterUpToItsCap() {
        var backoff = Backoff(cap: .seconds(2))
        let steps: [Duration] = [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                                 .milliseconds(1600), .seconds(2), .seconds(2), .seconds(2)]
        for (n, step) in steps.enumerated() {
            let pause = backoff.next()
            #expect(pause >= step / 2 && pause <= step, "pause \(n): \(pause) outside [\(step / 2), \(step)]")
        }
        for _ in 0..<100 { #expect(backoff.next() <= .seconds(2)) }   // no overflow however long it goes
        backoff.reset()
        #expect(backoff.next() <= .milliseconds(100))
        var spread = Set<Duration>()
        for _ in 0..<50 {
            var fresh = Backoff(cap: .seconds(5))
            _ = fresh.next()
            spread.insert(fresh.next())
        }
        #expect(spread.count > 5, "no jitter: \(spread)")
    }

    @Test(arguments: [
        ("ws://127.0.0.1:7700", "ws://127.0.0.1:7700/v1/ws", "http://127.0.0.1:7700", false),
        ("wss://chat.example.com", "wss://chat.example.com/v1/ws", "https://chat.example.com", true),
        ("http://h:1", "ws://h:1/v1/ws", "http://h:1", false),
        ("https://h:1/", "wss://h:1/v1/ws", "https://h:1", true),
        ("ws://h:1/custom/path", "ws://h:1/custom/path", "http://h:1", false),
    ])
    func urlsForTheSocketAndTheHTTPAPI(server: String, socket: String, http: String, tls: Bool) {
        let configuration = ClientConfiguration(server: server, token: "imt_x")
        #expect(configuration.webSocketURL == socket)
        #expect(configuration.httpBase == http)
        #expect(configuration.usesTLS == tls)
    }

    /// What the WebSocket connects to; an IPv6 literal loses its brackets (a name lookup of `[::1]` fails).
    @Test func webSocketEndpoints() throws {
        let v6 = try #require(ChatClientChannel.endpoint(of: "ws://[::1]:7700/v1/ws"))
        #expect(v6.host == "::1" && v6.port == 7700 && v6.path == "/v1/ws" && !v6.secure)
        let named = try #require(ChatClientChannel.endpoint(of: "wss://chat.example.com/x/v1/ws?a=1"))
        #expect(named.host == "chat.example.com" && named.port == 443 && named.path == "/x/v1/ws?a=1" && named.secure)
        #expect(ChatClientChannel.endpoint(of: "http://h:1/v1/ws") == nil)
        #expect(ChatClientChannel.endpoint(of: "ws:///v1/ws") == nil)
    }

    @Test func serverErrorsBecomeTheRightKinds() {
        let cases: [(WireError.Code, ClientError.Kind)] = [
            (.unauthorized, .unauthorized), (.forbidden, .unauthorized), (.tooLarge, .tooLarge), (.badTarget, .badInput),
            (.notFound, .badInput), (.badFrame, .badInput), (.badJSON, .badInput), (.internal, .server),
            (.unavailable, .server), (.limit, .server),
        ]
        for (code, kind) in cases {
            let error = ClientError.fromServer(code, "because")
            #expect(error.kind == kind, "\(code) → \(error.kind)")
            #expect(error.message.contains("because"))
        }
    }

    @Test func httpErrorBodiesGiveTheirMessage() {
        #expect(APIClient.errorMessage(#"{"error":{"message":"no such user"}}"#) == "no such user")
        #expect(APIClient.errorMessage(#"{"message":"flat"}"#) == "flat")
        #expect(APIClient.errorMessage("<html>bad gateway</html>") == nil)
    }
}

/// The reconnect loop's decisions with the time given: no sleeps.
@Suite struct ReconnectPlanTests {
    @Test func pausesGrowUntilAConnectionWorksAndTheWindowEndsAnOutage() {
        let t0 = ContinuousClock.now
        var plan = ReconnectPlan(maxBackoff: .seconds(5), window: .seconds(60))
        #expect(!plan.everConnected)
        plan.connected()
        #expect(plan.everConnected)
        var pauses: [Duration] = []
        for s in [0, 1, 3, 7, 15, 30, 60] {
            guard case .retry(let pause) = plan.lost(at: t0 + .seconds(s)) else {
                Issue.record("gave up \(s) s into the outage")
                return
            }
            pauses.append(pause)
        }
        #expect(pauses[0] <= .milliseconds(100) && pauses.allSatisfy { $0 <= .seconds(5) })
        #expect(pauses[4] >= .milliseconds(800), "pauses do not grow: \(pauses)")
        // Past the window, counted from the first loss.
        #expect(plan.lost(at: t0 + .milliseconds(60_001)) == .giveUp(window: .seconds(60)))
        // A connection that works starts both over.
        plan.connected()
        #expect(plan.lost(at: t0 + .seconds(200)) != .giveUp(window: .seconds(60)))
        guard case .retry(let first) = plan.lost(at: t0 + .seconds(259)) else {
            Issue.record("the window did not start over")
            return
        }
        #expect(first <= .milliseconds(200), "the backoff did not start over: \(first)")
        #expect(plan.lost(at: t0 + .seconds(261)) == .giveUp(window: .seconds(60)))
    }

    @Test func withoutAWindowItNeverGivesUp() {
        let t0 = ContinuousClock.now
        var plan = ReconnectPlan(maxBackoff: .seconds(1), window: nil)
        plan.connected()
        for hours in 0..<48 {
            guard case .retry(let pause) = plan.lost(at: t0 + .seconds(hours * 3600)) else {
                Issue.record("gave up after \(hours) h")
                return
            }
            #expect(pause <= .seconds(1))
        }
    }
}

@Suite struct ServerListTests {
    @Test func aListOfServersIsTakenInTurn() {
        let c = ClientConfiguration(server: "ws://a:1, ws://b:2,,ws://c:3", token: "t")
        #expect(c.servers == ["ws://a:1", "ws://b:2", "ws://c:3"])
        #expect((0..<5).map { c.aimed(at: $0).server } == ["ws://a:1", "ws://b:2", "ws://c:3", "ws://a:1", "ws://b:2"])
        #expect(c.aimed(at: 1).webSocketURL == "ws://b:2/v1/ws")
        let one = ClientConfiguration(server: "ws://a:1", token: "t")
        #expect(one.aimed(at: 3).server == "ws://a:1")
        #expect(OneShotPost.endpoint(of: c)?.host == "a")
        #expect(APIClient(server: "ws://a:1,ws://b:2", token: nil).base == "http://a:1")
    }
}
