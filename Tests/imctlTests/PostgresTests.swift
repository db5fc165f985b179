import Foundation
import IMTestSupport
import Testing

/// The built binary on PostgreSQL, as an operator would run it: `--database postgres://…` for `serve` (two
/// nodes) and local `users`; users, tokens, two-factor sign-in and revocation work as on SQLite.
@Suite(.enabled(if: !TestPostgres.skipped), .timeLimit(.minutes(10))) struct PostgresTests {
    @Test func serveAndUsersRunOnPostgreSQL() async throws {
        let url = try TestPostgres.database()
        try await withSandbox(database: url) { sb in
            try await sb.addUser("root", admin: true)
            let tokens = try await sb.users("alice", "bob")
            // Two nodes on one database: a listener on B hears what is sent through A (the default server).
            let nodeB = try await sb.startServer()
            try await sb.startServer()
            let listenerOnB = try sb.spawn(["listen", "general", "-n", "4", "--json", "--server", nodeB.url], env: ["IMCTL_TOKEN": tokens["bob"]!])
            try await Task.sleep(for: .milliseconds(500))   // signed in and subscribed

            let listener = try sb.spawn(["listen", "general", "--since", "0", "-n", "4", "--json"], env: ["IMCTL_TOKEN": tokens["bob"]!])
            let one = try await sb.imctl(["send", "general", "one", "--json"], env: ["IMCTL_TOKEN": tokens["alice"]!])
            #expect(one.status == 0 && one.out.contains("\"seq\":1"), "\(one)")
            let lines = try await sb.imctl(["send", "general", "--lines"], stdin: Data("two\nthree\nnul \u{0} inside\n".utf8),
                                           env: ["IMCTL_TOKEN": tokens["alice"]!])
            #expect(lines.status == 0, "\(lines)")
            let heard = await listener.finish(timeout: .seconds(20))
            #expect(heard.status == 0, "\(heard)")
            let bodies = try heard.jsonLines().compactMap { $0["body"] as? String }
            #expect(bodies == ["one", "two", "three", "nul \u{0} inside"])
            let onB = await listenerOnB.finish(timeout: .seconds(20))
            #expect(onB.status == 0 && onB.out == heard.out, "node B: \(onB)")

            // A direct message, and the conversation list, from the store.
            #expect(try await sb.imctl(["send", "@bob", "psst"], env: ["IMCTL_TOKEN": tokens["alice"]!]).status == 0)
            let history = try await sb.imctl(["listen", "@alice", "--since", "0", "-n", "1"], env: ["IMCTL_TOKEN": tokens["bob"]!])
            #expect(history.out.contains("psst"), "\(history)")

            // Two-factor sign-in: the code from the otpauth URI, once.
            let otp = try await sb.imctl("users", "otp", "bob", "--enable")
            try #require(otp.status == 0, "\(otp)")
            let secret = try #require(otp.out.split(separator: "secret=").last?.split(separator: "&").first.map(String.init))
            let withoutCode = try await sb.imctl(["login", "--user", "bob", "--password-stdin"], stdin: Data((Sandbox.password("bob") + "\n").utf8))
            #expect(withoutCode.status == 77, "\(withoutCode)")
            let python = try Child(executable: URL(fileURLWithPath: "/usr/bin/python3"), ["-c", Self.totp, secret], env: sb.environment(),
                                   stdin: .null)
            let code = await python.finish(timeout: .seconds(10)).out
            let login = try await sb.imctl(["login", "--user", "bob", "--password-stdin", "--otp", code],
                                           stdin: Data((Sandbox.password("bob") + "\n").utf8))
            #expect(login.status == 0, "\(login)")

            // Revocation reaches an open connection, whichever process changed the store.
            let open = try sb.spawn(["listen", "general"], env: ["IMCTL_TOKEN": tokens["alice"]!])
            try await Task.sleep(for: .milliseconds(500))   // signed in and subscribed
            #expect(try await sb.imctl("users", "revoke", "alice", "--all").status == 0)
            let ended = await open.finish(timeout: .seconds(15))
            #expect(ended.status == 77 && !ended.timedOut, "\(ended)")
            let refused = try await sb.imctl(["send", "general", "after"], env: ["IMCTL_TOKEN": tokens["alice"]!])
            #expect(refused.status == 77, "\(refused)")
        }
    }

    /// The shipped `deploy/nginx.conf` in front of two nodes (only the addresses changed): listeners
    /// connected through it land on both nodes and each gets every message, once, in order.
    @Test func throughNginxListenersOnTwoNodesGetEveryMessageInOrder() async throws {
        let nginx = "/usr/sbin/nginx"
        try #require(FileManager.default.isExecutableFile(atPath: nginx), "nginx is not installed (apt-get install nginx-light)")
        let url = try TestPostgres.database()
        try await withSandbox(database: url) { sb in
            let tokens = try await sb.users("alice", "bob")
            let a = try await sb.startServer()
            let b = try await sb.startServer()
            let port = try freeLoopbackPort()
            let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            var conf = try String(contentsOf: root.appendingPathComponent("deploy/nginx.conf"), encoding: .utf8)
            for (from, to) in [("127.0.0.1:7700", "127.0.0.1:\(a.port)"), ("127.0.0.1:7701", "127.0.0.1:\(b.port)"),
                               ("listen 8080;", "listen 127.0.0.1:\(port);"), ("worker_processes auto;", "worker_processes 1;")] {
                try #require(conf.contains(from), "deploy/nginx.conf has no '\(from)'")
                conf = conf.replacingOccurrences(of: from, with: to)
            }
            let confPath = sb.dir.appendingPathComponent("nginx.conf").path
            try conf.write(toFile: confPath, atomically: true, encoding: .utf8)
            let proxy = try Child(executable: URL(fileURLWithPath: nginx),
                                  ["-c", confPath, "-p", sb.dir.path, "-e", sb.dir.appendingPathComponent("nginx.err").path,
                                   "-g", "daemon off; master_process off; pid \(sb.dir.path)/nginx.pid;"], env: sb.environment())
            // One process (no master and workers): ending it ends nginx, nothing is left behind.
            defer { proxy.signal(SIGTERM) }
            let front = "ws://127.0.0.1:\(port)"
            // Up when it answers the health check through to a node.
            var up = false
            for _ in 0..<100 where !up {
                up = (try? await httpGet("http://127.0.0.1:\(port)/healthz").contains("ok")) ?? false
                if !up { try await Task.sleep(for: .milliseconds(100)) }
            }
            try #require(up, "nginx did not come up: \(proxy.err)")

            let listeners = try (0..<4).map { _ in
                try sb.spawn(["listen", "general", "-n", "50", "--server", front], env: ["IMCTL_TOKEN": tokens["bob"]!])
            }
            // Spread over both nodes (least_conn), each signed in and subscribed.
            var spread = false
            for _ in 0..<100 where !spread {
                let counts = try await [a, b].asyncMap { node in try await connections(of: "http://127.0.0.1:\(node.port)") }
                spread = counts.allSatisfy { $0 >= 1 } && counts.reduce(0, +) >= 4
                if !spread { try await Task.sleep(for: .milliseconds(100)) }
            }
            #expect(spread, "listeners not spread over both nodes")
            try await Task.sleep(for: .milliseconds(300))
            let sent = try await sb.imctl(["send", "general", "--lines", "--server", front],
                                          stdin: Data((1...50).map { "m\($0)\n" }.joined().utf8), env: ["IMCTL_TOKEN": tokens["alice"]!])
            #expect(sent.status == 0, "\(sent)")
            for listener in listeners {
                let heard = await listener.finish(timeout: .seconds(20))
                let bodies = heard.out.split(separator: "\n").map { $0.split(separator: " ").last.map(String.init) ?? "" }
                #expect(bodies == (1...50).map { "m\($0)" }, "\(heard)")
            }
        }
    }

    /// Two senders on two nodes to one room, 2,000 messages each: seqs 1…4,000 with no gap, each
    /// sender's messages in its own order; a resend with the same id through the other node is a duplicate.
    @Test func twoSendersOnTwoNodesShareOneGapFreeSequence() async throws {
        let url = try TestPostgres.database()
        try await withSandbox(database: url) { sb in
            let tokens = try await sb.users("alice", "bob")
            let a = try await sb.startServer()
            let b = try await sb.startServer()
            let lines = { (who: String) in Data((1...2000).map { "\(who) \($0)\n" }.joined().utf8) }
            let fromA = try sb.spawn(["send", "general", "--lines", "--server", a.url], stdin: .data(lines("alice")),
                                     env: ["IMCTL_TOKEN": tokens["alice"]!])
            let fromB = try sb.spawn(["send", "general", "--lines", "--server", b.url], stdin: .data(lines("bob")),
                                     env: ["IMCTL_TOKEN": tokens["bob"]!])
            let (ra, rb) = (await fromA.finish(timeout: .seconds(60)), await fromB.finish(timeout: .seconds(60)))
            #expect(ra.status == 0 && rb.status == 0, "\(ra) \(rb)")
            let all = try await sb.imctl(["listen", "general", "--since", "0", "-n", "4000", "--json", "--server", b.url],
                                         env: ["IMCTL_TOKEN": tokens["bob"]!], timeout: .seconds(60))
            let rows = try all.jsonLines().compactMap { o -> (seq: Int, from: String, body: String)? in
                guard let seq = o["seq"] as? Int, let from = o["from"] as? String, let body = o["body"] as? String else { return nil }
                return (seq, from, body)
            }
            #expect(rows.map(\.seq) == Array(1...4000))
            for who in ["alice", "bob"] {
                let own: [String] = rows.filter { $0.from == who }.map(\.body)
                let expected: [String] = (1...2000).map { "\(who) \($0)" }
                #expect(own == expected, "\(who)'s messages out of order or missing")
            }
            // The same client id through the other node: the first ack again, nothing stored.
            let post = """
                import json, sys, urllib.request
                def post(base):
                    r = urllib.request.Request(base + "/v1/messages", data=json.dumps({"to": "general", "body": "once", "id": "same-id"}).encode(),
                                               headers={"Authorization": "Bearer " + sys.argv[3], "Content-Type": "application/json"})
                    with urllib.request.urlopen(r, timeout=10) as answer:
                        return answer.status, json.load(answer)
                (s1, a1), (s2, a2) = post(sys.argv[1]), post(sys.argv[2])
                print(s1, s2, a1["seq"] == a2["seq"] == 4001, a2.get("duplicate", False))
                """
            let python = try Child(executable: URL(fileURLWithPath: "/usr/bin/python3"),
                                   ["-c", post, a.url.replacingOccurrences(of: "ws://", with: "http://"),
                                    b.url.replacingOccurrences(of: "ws://", with: "http://"), tokens["alice"]!], env: sb.environment())
            let answer = await python.finish(timeout: .seconds(20))
            #expect(answer.out.trimmingCharacters(in: .whitespacesAndNewlines) == "201 200 True True", "\(answer)")
        }
    }

    /// A node that loses its LISTEN connection (here: PostgreSQL ends it) catches up from the store when
    /// it listens again: its listeners still get every message once, in order.
    @Test func aNodeThatLosesItsNotificationsCatchesUp() async throws {
        let url = try TestPostgres.database()
        try await withSandbox(database: url) { sb in
            let tokens = try await sb.users("alice", "bob")
            let b = try await sb.startServer()
            let a = try await sb.startServer()
            let listener = try sb.spawn(["listen", "general", "-n", "10", "--json", "--server", b.url], env: ["IMCTL_TOKEN": tokens["bob"]!])
            try await Task.sleep(for: .milliseconds(500))
            let terminate = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE query ILIKE 'LISTEN%'"
            let psql = try Child(executable: URL(fileURLWithPath: "/usr/bin/psql"), [url, "-qtAc", terminate], env: sb.environment())
            let ended = await psql.finish(timeout: .seconds(10))
            #expect(ended.status == 0 && (Int(ended.out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 2, "\(ended)")
            // Sent through A while B is not listening.
            let sent = try await sb.imctl(["send", "general", "--lines", "--server", a.url], stdin: Data((1...10).map { "m\($0)\n" }.joined().utf8),
                                          env: ["IMCTL_TOKEN": tokens["alice"]!])
            #expect(sent.status == 0, "\(sent)")
            let heard = await listener.finish(timeout: .seconds(20))
            let seqs = try heard.jsonLines().compactMap { $0["seq"] as? Int }
            #expect(seqs == Array(1...10), "\(heard)")
        }
    }

    /// `kill -9` of node A: every message it acked is readable from node B, and a listener given both
    /// (`--server A,B`) moves to B and resumes with nothing lost or doubled; a sender given both gets
    /// through B.
    @Test func whenANodeDiesItsClientsMoveOnAndNothingAckedIsLost() async throws {
        let url = try TestPostgres.database()
        try await withSandbox(database: url) { sb in
            let tokens = try await sb.users("alice", "bob")
            let b = try await sb.startServer()
            let a = try await sb.startServer()
            let both = "\(a.url),\(b.url)"
            let listener = try sb.spawn(["listen", "general", "--since", "0", "-n", "20", "--json", "--server", both],
                                        env: ["IMCTL_TOKEN": tokens["bob"]!])
            try await Task.sleep(for: .milliseconds(500))
            let first = try await sb.imctl(["send", "general", "--lines", "--json", "--server", a.url],
                                           stdin: Data((1...10).map { "m\($0)\n" }.joined().utf8), env: ["IMCTL_TOKEN": tokens["alice"]!])
            #expect(first.status == 0 && first.out.split(separator: "\n").count == 10, "\(first)")
            #expect(await listener.waitForLines(10, timeout: .seconds(20)), "\(listener.out)")

            a.child?.kill9()
            _ = await a.child?.waitExit(timeout: .seconds(10))
            let fromB = try await sb.imctl(["listen", "general", "--since", "0", "-n", "10", "--server", b.url],
                                           env: ["IMCTL_TOKEN": tokens["bob"]!])
            let readFromB: [String] = fromB.out.split(separator: "\n").map { line in String(line.split(separator: " ").last ?? "") }
            let expected: [String] = (1...10).map { "m\($0)" }
            #expect(readFromB == expected, "acked on A, read from B: \(fromB)")
            for i in 11...20 {
                let sent = try await sb.imctl(["send", "general", "m\(i)", "--server", both], env: ["IMCTL_TOKEN": tokens["alice"]!])
                #expect(sent.status == 0, "\(sent)")
            }
            let heard = await listener.finish(timeout: .seconds(30))
            #expect(heard.status == 0, "\(heard)")
            let seqs = try heard.jsonLines().compactMap { $0["seq"] as? Int }
            #expect(seqs == Array(1...20), "\(heard)")
        }
    }

    /// RFC 6238 with Python's standard library: the current 6-digit code of a base32 secret.
    static let totp = """
        import base64, hmac, struct, sys, time
        key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
        mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), "sha1").digest()
        o = mac[-1] & 15
        print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000), end="")
        """
}

/// The body of an HTTP GET (Python's urllib: Foundation reads no http:// URLs without FoundationNetworking).
func httpGet(_ url: String) async throws -> String {
    let get = "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())"
    let child = try Child(executable: URL(fileURLWithPath: "/usr/bin/python3"), ["-c", get, url], env: ProcessInfo.processInfo.environment)
    let result = await child.finish(timeout: .seconds(10))
    guard result.status == 0 else { throw TestError("GET \(url): \(result.err)") }
    return result.out
}

/// Open WebSocket connections of a node, from its /metrics.
func connections(of base: String) async throws -> Int {
    let metrics = try await httpGet(base + "/metrics")
    guard let line = metrics.split(separator: "\n").first(where: { $0.hasPrefix("imctl_connections ") }),
          let value = Double(line.split(separator: " ").last ?? "") else { return 0 }
    return Int(value)
}

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await transform(e)) }
        return out
    }
}
