import Foundation
import IMTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// sysexits: 64 usage, 65 bad data, 69 unreachable, 75 timed out, 77 not authorised.
@Suite struct ExitCodeTests {
    @Test func usageErrorsExit64WithAReasonAndTheUsage() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let cases: [(args: [String], reason: String)] = [
                (["send", "lobby", "hi", "--no-such-flag"], "--no-such-flag"),
                (["listen", "lobby", "--bogus"], "--bogus"),
                (["send", "Not A Room!", "hi"], "Not A Room!"),
                (["send", "@UPPER", "hi"], "@UPPER"),
                (["listen", "bad/room"], "bad/room"),
                (["listen", "one", "two", "--since", "0"], "--since"),
                (["listen", "--since", "0"], "--since"),
                (["listen", "lobby", "--timeout", "soon"], "soon"),
                (["listen", "lobby", "--count", "0"], "--count"),
            ]
            for c in cases {
                let r = try await sb.imctl(c.args + ["--token", alice])
                #expect(r.status == 64, "\(c.args): \(r)")
                #expect(r.out.isEmpty, "\(c.args): nothing on stdout")
                #expect(r.err.contains(c.reason), "\(c.args): the reason names \(c.reason): \(r.err)")
                #expect(r.err.contains("Usage: imctl \(c.args[0])"), "\(c.args): \(r.err)")
            }
        }
    }

    @Test func aMessageOverTheLimitExits65NamingTheLimitAndWhatWasStored() async throws {
        try await withSandbox { sb in
            try await sb.startServer(["--max-message-bytes", "100"])
            let alice = try await sb.users("alice")["alice"]!
            let long = String(repeating: "x", count: 101)
            let r = try await sb.imctl("send", "capped", "--lines", "--json", "--token", alice,
                                       stdin: "first\nsecond\n\(long)\nfourth\n")
            #expect(r.status == 65, "\(r)")
            #expect(r.err.contains("100"), "names the limit: \(r.err)")
            #expect(r.err.contains("2 messages"), "says 2 messages were stored: \(r.err)")
            #expect(try r.jsonLines().count == 2, "the two acks are printed")
            let stored = try await sb.imctl("listen", "capped", "--since", "0", "--format", "{body}", "--timeout", "1s",
                                            "--token", alice)
            #expect(stored.lines == ["first", "second"], "nothing after the bad message is sent")
            // Exactly at the limit is fine.
            let fits = try await sb.imctl("send", "capped", String(repeating: "y", count: 100), "--token", alice)
            #expect(fits.status == 0, "\(fits)")
            // A single argument message over the limit, too.
            let one = try await sb.imctl("send", "capped", long, "--token", alice)
            #expect(one.status == 65, "\(one)")
        }
    }

    @Test func anUnreachableServerExits69() async throws {
        try await withSandbox { sb in
            // A port that nothing listens on: bind one, note it, close it.
            let port = try freeLoopbackPort()
            let r = try await sb.imctl("send", "lobby", "hi", "--server", "ws://127.0.0.1:\(port)", "--token", "imt_whatever")
            #expect(r.status == 69, "\(r)")
            #expect(r.err.contains("127.0.0.1:\(port)"), "\(r.err)")
            let l = try await sb.imctl("listen", "lobby", "--no-reconnect", "--server", "ws://127.0.0.1:\(port)",
                                       "--token", "imt_whatever")
            #expect(l.status == 69, "\(l)")
        }
    }

    @Test func listenTimesOutWith75WhenCountIsNotReachedAnd0Otherwise() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let started = ContinuousClock.now
            let r = try await sb.imctl("listen", "empty", "--count", "5", "--timeout", "500ms", "--token", alice)
            let took = ContinuousClock.now - started
            #expect(r.status == 75, "\(r)")
            #expect(r.out.isEmpty)
            #expect(took >= .milliseconds(500) && took < .seconds(10), "\(took)")
            // Some messages, still short of --count.
            let s = try await sb.imctl("send", "few", "--lines", "--token", alice, stdin: "a\nb\n")
            #expect(s.status == 0, "\(s)")
            let short = try await sb.imctl("listen", "few", "--since", "0", "--count", "5", "--timeout", "500ms", "--token", alice)
            #expect(short.status == 75, "\(short)")
            #expect(short.lines.count == 2, "prints what came before giving up: \(short.out)")
            // Without --count a timeout is a normal end.
            let plain = try await sb.imctl("listen", "empty", "--timeout", "500ms", "--token", alice)
            #expect(plain.status == 0, "\(plain)")
        }
    }

    @Test func badCredentialsExit77() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            try await sb.addUser("alice", password: "correct horse")
            for args in [["send", "lobby", "hi"], ["listen", "lobby", "--since", "0", "--timeout", "1s"]] {
                let r = try await sb.imctl(args + ["--token", "imt_not-a-real-token"])
                #expect(r.status == 77, "\(args): \(r)")
                #expect(!r.err.isEmpty)
            }
            // Also through the environment.
            let env = try await sb.imctl("send", "lobby", "hi", env: ["IMCTL_TOKEN": "imt_nope"])
            #expect(env.status == 77, "\(env)")
            // No token at all.
            let none = try await sb.imctl("send", "lobby", "hi")
            #expect(none.status == 77, "\(none)")

            let wrong = try await sb.imctl("login", "--user", "alice", "--password-stdin", stdin: "wrong horse\n")
            #expect(wrong.status == 77, "\(wrong)")
            let unknown = try await sb.imctl("login", "--user", "mallory", "--password-stdin", stdin: "correct horse\n")
            #expect(unknown.status == 77, "\(unknown)")
            #expect(unknown.err == wrong.err, "an unknown user gets the same answer as a wrong password")
            #expect(!wrong.err.isEmpty)
            let credentials = sb.dir.appendingPathComponent("config/imctl/credentials.json")
            #expect(!((try? String(contentsOf: credentials, encoding: .utf8)) ?? "").contains("alice"), "a failed login stores nothing")
            let right = try await sb.imctl("login", "--user", "alice", "--password-stdin", stdin: "correct horse\n")
            #expect(right.status == 0, "\(right)")
        }
    }
}

