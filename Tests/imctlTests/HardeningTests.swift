import Foundation
import Testing

/// The hardening a user meets through the built binary: terminals, a second server, client ids.
@Suite(.timeLimit(.minutes(10))) struct HardeningTests {
    /// A message cannot drive the reader's terminal: text and --format write control characters out;
    /// --json carries the body exactly.
    @Test func listenOutputCannotDriveATerminal() async throws {
        try await withSandbox { sb in
            let tokens = try await sb.users("alice")
            try await sb.startServer()
            let hostile = "\u{1B}]0;pwned\u{07}\u{1B}[2J\u{9B}31mred\u{7F}\r\nnext"
            let sent = try await sb.imctl(["send", "r", "--token", tokens["alice"]!], stdin: Data(hostile.utf8))
            #expect(sent.status == 0, "\(sent)")
            let text = try await sb.imctl(["listen", "r", "--since", "0", "--count", "1", "--token", tokens["alice"]!])
            let format = try await sb.imctl(["listen", "r", "--since", "0", "--count", "1", "--format", "{from}: {body}", "--token", tokens["alice"]!])
            for r in [text, format] {
                #expect(r.status == 0, "\(r)")
                #expect(!r.out.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) },
                        "control characters reached the terminal: \(r.out.debugDescription)")
            }
            // Text writes the newline out too; a template keeps it (the template decides the layout).
            #expect(text.out.contains(#"\x1b]0;pwned\x07\x1b[2J\u{9b}31mred\x7f\nnext"#), "\(text.out.debugDescription)")
            #expect(format.out == "alice: " + #"\x1b]0;pwned\x07\x1b[2J\u{9b}31mred\x7f"# + "\nnext\n", "\(format.out.debugDescription)")
            let json = try await sb.imctl(["listen", "r", "--since", "0", "--count", "1", "--json", "--token", tokens["alice"]!])
            #expect(try json.jsonLines().first?.string("body") == hostile.replacingOccurrences(of: "\r\n", with: "\r\n"))
        }
    }

    @Test func aSecondServerOnOneStoreIsRefused() async throws {
        try await withSandbox { sb in
            try await sb.addUser("alice")
            try await sb.startServer()
            let second = try await sb.imctl(["serve", "--port", "0", "--database", sb.database], timeout: .seconds(20))
            #expect(second.status == 1, "\(second)")
            #expect(second.err.contains("another imctl serve is already using the store"), "\(second.err)")
            // The first one is unharmed.
            #expect(try await sb.imctl("send", "r", "still here", "--token", try await sb.token("alice")).status == 0)
        }
    }

    /// Client ids carry at least 96 random bits: two runs never collide into a silent duplicate.
    @Test func clientIDsAreLongAndRandom() async throws {
        try await withSandbox { sb in
            let tokens = try await sb.users("alice")
            try await sb.startServer()
            var prefixes: Set<String> = []
            for _ in 0..<3 {
                let r = try await sb.imctl(["send", "r", "x", "--json", "--token", tokens["alice"]!])
                let cid = try #require(try r.jsonLines().first?.string("cid"))
                let prefix = String(cid.split(separator: "-").dropLast().joined(separator: "-"))
                // 22 base64url characters: 132 bits, of which 128 random.
                #expect(prefix.count >= 22, "\(cid)")
                prefixes.insert(prefix)
            }
            #expect(prefixes.count == 3)
        }
    }

    /// A server that refuses sends (here over its rate; a full disk answers the same way) on a connection
    /// that stays up: `send` resends on that connection after a pause, and everything is stored once, in
    /// order. It used to wait forever for a reconnect.
    @Test func aSenderRefusedOnALiveConnectionResendsInOrder() async throws {
        try await withSandbox { sb in
            let tokens = try await sb.users("alice")
            let server = try await sb.startServer(["--max-sends-per-second", "40"])
            let lines = (1...200).map { "line \($0)" }
            let sent = try await sb.imctl(["send", "r", "--lines", "--token", tokens["alice"]!],
                                          stdin: Data((lines.joined(separator: "\n") + "\n").utf8), timeout: .seconds(90))
            #expect(sent.status == 0, "\(sent)")
            // Refusals did happen (each is an error frame), and the sender got past them.
            let errors = try await onOwnThread { httpGet(port: server.port, path: "/metrics") }.split(separator: "\n")
                .first { $0.hasPrefix("imctl_frame_errors_total ") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
            #expect(errors > 0, "the rate limit never refused a send")
            let read = try await sb.imctl(["listen", "r", "--since", "0", "--count", "200", "--json", "--timeout", "30s",
                                           "--token", tokens["alice"]!], timeout: .seconds(60))
            #expect(read.status == 0, "\(read)")
            let messages = try read.jsonLines()
            #expect(messages.map { $0.string("body") } == lines)
            #expect(messages.map { $0.int("seq") } == (1...200).map { Optional($0) })
        }
    }

    /// Durations and lifetimes that overflow are usage errors (64), locally and through the server.
    @Test func hugeLifetimesAreUsageErrors() async throws {
        try await withSandbox { sb in
            try await sb.addUser("alice")
            try await sb.addUser("root", admin: true)
            try await sb.startServer()
            for ttl in ["9999999999999999d", "3651d", "0s"] {
                let login = try await sb.imctl(["login", "--user", "alice", "--password-stdin", "--ttl", ttl],
                                               stdin: Data((Sandbox.password("alice") + "\n").utf8))
                #expect(login.status == 64, "login --ttl \(ttl): \(login)")
                let local = try await sb.imctl(["users", "token", "alice", "--ttl", ttl])
                #expect(local.status == 64, "users token --ttl \(ttl): \(local)")
            }
            // Still serving, and a sane lifetime works.
            let ok = try await sb.imctl(["login", "--user", "alice", "--password-stdin", "--ttl", "1h"],
                                        stdin: Data((Sandbox.password("alice") + "\n").utf8))
            #expect(ok.status == 0, "\(ok)")
        }
    }
}
