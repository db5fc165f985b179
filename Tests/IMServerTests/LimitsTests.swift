import Foundation
import IMClient
import IMServer
import IMStorage
import IMWire
import NIOCore
import NIOPosix
import Testing

/// Every resource has a bound, and hitting it gets a clear answer, not a crash or silent loss.
@Suite(.timeLimit(.minutes(10))) struct LimitsTests {
    static func auth(_ token: String) -> String { ClientFrame.auth(token: token).encoded() }

    /// Sends over the connection's rate get `rate_limited` with their id and are not stored; `imctl`'s
    /// sender resends them after a pause, so a bulk send still stores everything exactly once.
    @Test func sendsOverTheRateAreRefusedAndResent() async throws {
        try await withServer(configure: { $0.maxSendsPerSecond = 20 }) { server in
            let token = try await server.user("alice")
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x81, Self.auth(token))
                _ = try await ws.nextServerFrame()
                for i in 0..<60 { try await ws.send(0x81, ClientFrame.send(id: "m\(i)", to: .room("r"), body: "\(i)").encoded()) }
                var acked = 0, limited = 0
                while acked + limited < 60 {
                    switch try await ws.nextServerFrame() {
                    case .ack?: acked += 1
                    case .error(.rateLimited, _, let id)?:
                        #expect(id != nil)
                        limited += 1
                    case let other: Issue.record("unexpected \(String(describing: other))"); return
                    }
                }
                #expect(acked >= 20 && acked < 60, "\(acked) acked, \(limited) refused")
                #expect(try await server.store.messages(in: .room("r"), afterSeq: 0, limit: 100).count == acked)
            }
            // The client library resends what was refused: all of them, once each.
            let acks = try await send((0..<100).map { "bulk \($0)" }, to: .room("bulk"), server.client(token))
            #expect(acks.count == 100)
            let stored = try await server.store.messages(in: .room("bulk"), afterSeq: 0, limit: 200)
            #expect(stored.map(\.body) == (0..<100).map { "bulk \($0)" })
        }
    }

    @Test func subscriptionsAndHistoryAreCapped() async throws {
        try await withServer { server in
            let token = try await server.user("alice")
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x81, Self.auth(token))
                _ = try await ws.nextServerFrame()
                try await ws.send(0x81, #"{"op":"sub","to":"r","history":\#(ServerConfiguration.maxHistory + 1)}"#)
                guard case .error(.badFrame, let message, _)? = try await ws.nextServerFrame() else { Issue.record("history not capped"); return }
                #expect(message.contains("\(ServerConfiguration.maxHistory)"))
                for i in 0..<ServerConfiguration.maxSubscriptions { try await ws.send(0x81, #"{"op":"sub","to":"room\#(i)"}"#) }
                for _ in 0..<ServerConfiguration.maxSubscriptions {
                    guard case .subscribed? = try await ws.nextServerFrame() else { Issue.record("a subscription failed"); return }
                }
                try await ws.send(0x81, #"{"op":"sub","to":"one-too-many"}"#)
                guard case .error(.limit, _, _)? = try await ws.nextServerFrame() else { Issue.record("subscriptions not capped"); return }
                // Re-subscribing to one it has is still fine, and so is anything after an unsub.
                try await ws.send(0x81, #"{"op":"sub","to":"room0"}"#)
                guard case .subscribed? = try await ws.nextServerFrame() else { Issue.record("re-subscribing failed"); return }
                try await ws.send(0x81, #"{"op":"unsub","to":"room1"}"#)
                try await ws.send(0x81, #"{"op":"sub","to":"one-too-many"}"#)
                guard case .subscribed? = try await ws.nextServerFrame() else { Issue.record("sub after unsub failed"); return }
            }
        }
    }

    /// Past the cap for its address a connection is closed at once; another address still gets in.
    @Test func connectionsPerAddressAreCapped() async throws {
        try await withServer(configure: { $0.maxConnectionsPerAddress = 3 }) { server in
            var held: [Int32] = []
            defer { for fd in held { close(fd) } }
            for _ in 0..<3 { held.append(try #require(Self.connect(server.port, from: "127.0.0.1"))) }
            // Wait (bounded) until the server has taken all three.
            let deadline = ContinuousClock.now + .seconds(30)
            while !(try await rawHTTP(port: server.port, method: "GET", path: "/metrics", body: "", from: "127.0.0.6").body
                .contains("imctl_tcp_connections 4")), ContinuousClock.now < deadline {  // the three, and this request
                try await Task.sleep(for: .milliseconds(50))
            }
            let fourth = try #require(Self.connect(server.port, from: "127.0.0.1"))
            defer { close(fourth) }
            #expect(await Self.readsEOF(fourth), "a fourth connection from one address stayed open")
            let other = try await rawHTTP(port: server.port, method: "GET", path: "/healthz", body: "", from: "127.0.0.5")
            #expect(other.status == 200, "\(other)")
            let metrics = try await rawHTTP(port: server.port, method: "GET", path: "/metrics", body: "", from: "127.0.0.5")
            #expect(metrics.body.contains("imctl_connections_refused_total 1"), "\(metrics.body.prefix(200))")
        }
    }

    /// Deadlines: a socket that does not sign in, an idle HTTP keep-alive, a TLS handshake that never starts.
    @Test func deadlines() async throws {
        try await withServer(configure: { $0.signInTimeout = .seconds(1); $0.httpIdleTimeout = .seconds(1) }) { server in
            try await RawWebSocket.with(server) { ws in
                let code = try await ws.closeCode()
                #expect(code == 1008, "a socket that never signed in was not closed")
            }
            let idle = try #require(Self.connect(server.port, from: "127.0.0.1"))
            defer { close(idle) }
            let request = Array("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            _ = send(idle, request, request.count, 0)
            #expect(await Self.readsEOF(idle), "an idle HTTP connection was not closed")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-tls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tls = try await selfSignedCertificate(in: dir)
        let server = try await TestServer.start(tls: tls, configure: { $0.tlsHandshakeTimeout = .seconds(1) })
        let silent = try #require(Self.connect(server.port, from: "127.0.0.1"))
        #expect(await Self.readsEOF(silent), "a TLS connection that never said hello was not closed")
        close(silent)
        try await server.stop()
    }

    /// `unsub`, or a second `sub` to the same room, stops a replay in progress: the old replay's pages
    /// stop, and only the new subscription says `subscribed`.
    @Test func aSecondSubOrAnUnsubStopsAReplay() async throws {
        try await withServer(historyCacheBytes: 0) { server in
            let token = try await server.user("alice")
            let n = 6_000
            _ = try await send((1...n).map { "m\($0)" }, to: .room("long"), server.client(token))
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x81, Self.auth(token))
                _ = try await ws.nextServerFrame()
                try await ws.send(0x81, #"{"op":"sub","to":"long","after":0}"#)
                try await ws.send(0x81, #"{"op":"sub","to":"long","after":\#(n - 10)}"#)
                var seqs: [Int64] = []
                var subscribed: [Int64] = []
                while subscribed.isEmpty {
                    switch try await ws.nextServerFrame() {
                    case .message(let m)?: seqs.append(m.seq)
                    case .subscribed(_, let seq)?: subscribed.append(seq)
                    default: Issue.record("unexpected frame"); return
                    }
                }
                #expect(subscribed == [Int64(n)])
                #expect(Array(seqs.suffix(10)) == Array(Int64(n - 9)...Int64(n)), "the new replay's messages come last, in order")
                // Then nothing more from either replay: the next frame is the answer to a ping.
                try await ws.send(0x81, #"{"op":"ping","ref":"end"}"#)
                #expect(try await ws.nextServerFrame() == .pong(ref: "end"))

                try await ws.send(0x81, #"{"op":"sub","to":"long","after":0}"#)
                try await ws.send(0x81, #"{"op":"unsub","to":"long"}"#)
                try await ws.send(0x81, #"{"op":"ping","ref":"after-unsub"}"#)
                var replayed: [Int64] = []
                while true {
                    let frame = try await ws.nextServerFrame()
                    if case .message(let m)? = frame { replayed.append(m.seq); continue }
                    #expect(frame == .pong(ref: "after-unsub"), "a stray \(String(describing: frame)) after unsub")
                    break
                }
                #expect(replayed == Array(replayed.sorted()) && Set(replayed).count == replayed.count)
                try await ws.send(0x81, #"{"op":"ping","ref":"quiet"}"#)
                #expect(try await ws.nextServerFrame() == .pong(ref: "quiet"), "the stopped replay went on")
            }
        }
    }

    /// Store failures are `unavailable` (retry), never `unauthorized` or `not_found`.
    @Test func storeFailuresAreReportedAsUnavailable() async throws {
        let server = try await TestServer.start()
        let token = try await server.user("alice")
        try await server.store.close()  // every query fails from now on
        try await RawWebSocket.with(server) { ws in
            try await ws.send(0x81, Self.auth(token))
            guard case .error(.unavailable, _, _)? = try await ws.nextServerFrame() else { Issue.record("not unavailable"); return }
            #expect(try await ws.closeCode() == 1011)
        }
        let me = try await rawHTTP(port: server.port, method: "GET", path: "/v1/me", body: "", headers: ["Authorization: Bearer \(token)"])
        #expect(me.status == 503, "\(me)")
        try? await server.background.stop()
    }

    static func connect(_ port: Int, from source: String) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { close(fd); return nil }
        return fd
    }

    /// Reads (discarding) until the server closes the connection; false if it stays open for 15 s. The
    /// blocking reads run on NIO's thread pool, not on the cooperative pool the in-process servers need.
    static func readsEOF(_ fd: Int32) async -> Bool {
        (try? await NIOThreadPool.singleton.runIfActive { blockingReadsEOF(fd) }) ?? false
    }

    static func blockingReadsEOF(_ fd: Int32) -> Bool {
        var timeout = timeval(tv_sec: 15, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { return true }
            if n < 0 { return errno == ECONNRESET }
        }
    }
}
