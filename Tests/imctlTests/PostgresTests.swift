import Foundation
import IMTestSupport
import Testing

/// The built binary on PostgreSQL, as an operator would run it: `--database postgres://…` for `serve` (two
/// nodes) and local `users`; users, tokens, two-factor sign-in and revocation work as on SQLite.
@Suite(.enabled(if: !TestPostgres.skipped), .timeLimit(.minutes(3))) struct PostgresTests {
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
            let bodies = heard.out.split(separator: "\n").compactMap { line -> String? in
                (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["body"] as? String
            }
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

    /// RFC 6238 with Python's standard library: the current 6-digit code of a base32 secret.
    static let totp = """
        import base64, hmac, struct, sys, time
        key = base64.b32decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 8))
        mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), "sha1").digest()
        o = mac[-1] & 15
        print("%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000), end="")
        """
}
