import Foundation
import Testing

/// Cut-off means cut off: a session that is revoked in any way ends within seconds, open sockets
/// included, whichever process made the change; and a removed user's name is never given again.
@Suite(.timeLimit(.minutes(10))) struct SessionTests {
    enum Revocation: String, CaseIterable {
        case revokeAll, passwd, disable, remove, logout, remoteRevoke
    }

    /// An open `listen` and an open `send --lines` both end with 77 within seconds of the change.
    @Test(arguments: Revocation.allCases)
    func revokingReachesOpenConnections(_ how: Revocation) async throws {
        try await withSandbox { sb in
            try await sb.addUser("root", admin: true)
            let rootToken = try await sb.token("root")
            try await sb.addUser("alice")
            try await sb.startServer()
            var env: [String: String] = [:]
            if how == .logout {
                let login = try await sb.imctl(["login", "--user", "alice", "--password-stdin"], stdin: Data((Sandbox.password("alice") + "\n").utf8))
                try #require(login.status == 0, "\(login)")
            } else {
                env["IMCTL_TOKEN"] = try await sb.token("alice")
            }
            let listener = try sb.spawn(["listen", "r", "--since", "0"], env: env)
            let sender = try sb.spawn(["send", "r", "--lines"], stdin: .pipe, env: env)
            sender.write("before\n")
            #expect(await listener.waitForLines(1, timeout: .seconds(20)), "listener never got the first line: \(listener.err)")

            let change: ProcResult
            switch how {
            case .revokeAll: change = try await sb.imctl("users", "revoke", "alice", "--all")
            case .passwd: change = try await sb.imctl(["users", "passwd", "alice", "--password-stdin"], stdin: Data("a-new-password\n".utf8))
            case .disable: change = try await sb.imctl("users", "disable", "alice")
            case .remove: change = try await sb.imctl("users", "remove", "alice")
            case .logout: change = try await sb.imctl("logout")
            case .remoteRevoke:
                change = try await sb.imctl(["users", "revoke", "alice", "--all", "--server", try sb.serverURL, "--token", rootToken])
            }
            try #require(change.status == 0, "\(how): \(change)")

            let listened = await listener.finish(timeout: .seconds(10))
            #expect(listened.status == 77, "\(how): listen did not end with 77: \(listened)")
            #expect(!listened.timedOut, "\(how): listen kept running")
            let sent = await sender.finish(timeout: .seconds(10))
            #expect(sent.status == 77, "\(how): send did not end with 77: \(sent)")
        }
    }

    /// After `users remove bob`, a new bob would read the old bob's direct messages: the name stays taken.
    @Test func aRemovedNameIsNotGivenAgain() async throws {
        try await withSandbox { sb in
            let tokens = try await sb.users("alice", "bob")
            try await sb.startServer()
            let dm = try await sb.imctl("send", "@bob", "for the first bob only", "--token", tokens["alice"]!)
            #expect(dm.status == 0, "\(dm)")
            #expect(try await sb.imctl("users", "remove", "bob").status == 0)

            let again = try await sb.imctl("users", "add", "bob", "--password-stdin", stdin: "another-password\n")
            #expect(again.status != 0, "a removed name was given again: \(again)")
            #expect(again.err.contains("removed"), "\(again.err)")
            // Not listed, cannot sign in, unknown as a target.
            let list = try await sb.imctl("users", "list", "--json")
            #expect(!list.out.contains("\"bob\""), "\(list.out)")
            #expect(try await sb.imctl("send", "r", "hi", "--token", tokens["bob"]!).status == 77)
            let toBob = try await sb.imctl("send", "@bob", "hello?", "--token", tokens["alice"]!)
            #expect(toBob.status == 65, "\(toBob)")
            let login = try await sb.imctl(["login", "--user", "bob", "--password-stdin"], stdin: Data((Sandbox.password("bob") + "\n").utf8))
            #expect(login.status == 77, "\(login)")
        }
    }
}
