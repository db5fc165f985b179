import Foundation
import IMTestSupport
import Testing

/// `imctl users` (on the store and through a server), `imctl login` / `logout`, and `serve`'s first-run hint.
@Suite struct UsersTests {
    @Test func addingUsersNeedsAPasswordFromSomewhereAndALongOne() async throws {
        try await withSandbox { sb in
            // No terminal (a new session, stdin /dev/null) and no --password-stdin: a usage error.
            let noTerminal = try await sb.imctl(["users", "add", "bob"], detached: true)
            #expect(noTerminal.status == 64, "\(noTerminal)")
            #expect(noTerminal.err.contains("--password-stdin"), "says how to give the password: \(noTerminal.err)")
            // Too short.
            let short = try await sb.imctl("users", "add", "bob", "--password-stdin", stdin: "1234567\n")
            #expect(short.status != 0, "\(short)")
            #expect(short.err.contains("8"), "names the minimum length: \(short.err)")
            // Neither created a user.
            let list = try await sb.imctl("users", "list", "--json")
            #expect(list.status == 0, "\(list)")
            #expect(list.out.isEmpty, "\(list.out)")
            // Eight characters is enough; a bad name is a usage error; a second add of the same name fails.
            let ok = try await sb.imctl("users", "add", "bob", "--password-stdin", stdin: "12345678\n")
            #expect(ok.status == 0, "\(ok)")
            let badName = try await sb.imctl("users", "add", "Bob!", "--password-stdin", stdin: "12345678\n")
            #expect(badName.status == 64, "\(badName)")
            let again = try await sb.imctl("users", "add", "bob", "--password-stdin", stdin: "12345678\n")
            #expect(again.status != 0, "\(again)")
        }
    }

    @Test func listShowsUsersAsJSON() async throws {
        try await withSandbox { sb in
            try await sb.addUser("alice", admin: true)
            try await sb.addUser("bob")
            // --database works as well as IMCTL_DATABASE.
            let r = try await sb.imctl(["users", "list", "--json", "--database", sb.database], env: ["IMCTL_DATABASE": ""])
            #expect(r.status == 0, "\(r)")
            let users = try r.jsonLines()
            let byName = Dictionary(uniqueKeysWithValues: users.compactMap { u in u.string("name").map { ($0, u) } })
            #expect(Set(byName.keys) == ["alice", "bob"])
            #expect(byName["alice"]?["admin"] as? Bool == true)
            #expect(byName["bob"]?["admin"] as? Bool == false)
            #expect(byName["bob"]?["disabled"] as? Bool == false)
            // The table names both, too.
            let table = try await sb.imctl("users", "list")
            #expect(table.status == 0)
            #expect(table.out.contains("alice") && table.out.contains("bob"), "\(table.out)")
        }
    }

    @Test func tokensCanBeLabelledListedAndRevoked() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            try await sb.addUser("alice")
            let r = try await sb.imctl("users", "token", "alice", "--label", "ci-bot")
            #expect(r.status == 0, "\(r)")
            let labelled = r.out.trimmingCharacters(in: .newlines)
            #expect(!labelled.isEmpty && !labelled.contains("\n") && !labelled.contains(" "), "one token, on stdout: \(r.out)")
            let other = try await sb.token("alice")
            #expect(other != labelled)
            // Both work.
            for token in [labelled, other] {
                let s = try await sb.imctl("send", "lobby", "hi", "--token", token)
                #expect(s.status == 0, "\(s)")
            }
            let listed = try await sb.imctl("users", "tokens", "alice")
            #expect(listed.status == 0, "\(listed)")
            #expect(listed.out.contains("ci-bot"), "\(listed.out)")
            #expect(!listed.out.contains(labelled), "the token itself is shown only once")
            let json = try await sb.imctl("users", "tokens", "alice", "--json")
            let tokens = try json.jsonLines()
            #expect(tokens.count == 2, "\(json.out)")
            #expect(tokens.contains { $0.string("label") == "ci-bot" })

            // Revoke one by id: that one fails (77), the other still works.
            let ci = try #require(tokens.first { $0.string("label") == "ci-bot" }?.int("id"))
            let one = try await sb.imctl("users", "revoke", "alice", "\(ci)")
            #expect(one.status == 0, "\(one)")
            #expect(try await sb.imctl("send", "lobby", "hi", "--token", labelled).status == 77)
            #expect(try await sb.imctl("send", "lobby", "hi", "--token", other).status == 0)
            // --all: the rest fail too.
            let all = try await sb.imctl("users", "revoke", "alice", "--all")
            #expect(all.status == 0, "\(all)")
            let after = try await sb.imctl("send", "lobby", "hi", "--token", other)
            #expect(after.status == 77, "\(after)")
            let listenAfter = try await sb.imctl("listen", "lobby", "--since", "0", "--timeout", "1s", "--token", other)
            #expect(listenAfter.status == 77, "\(listenAfter)")
        }
    }

    @Test func disablingAUserStopsLoginAndTokensUntilEnabled() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            try await sb.addUser("bob", password: "bob-password")
            let token = try await sb.token("bob")
            #expect(try await sb.imctl("send", "lobby", "before", "--token", token).status == 0)
            let d = try await sb.imctl("users", "disable", "bob")
            #expect(d.status == 0, "\(d)")
            let send = try await sb.imctl("send", "lobby", "while disabled", "--token", token)
            #expect(send.status == 77, "\(send)")
            let login = try await sb.imctl("login", "--user", "bob", "--password-stdin", stdin: "bob-password\n")
            #expect(login.status == 77, "\(login)")
            let wrong = try await sb.imctl("login", "--user", "bob", "--password-stdin", stdin: "not-bobs-password\n")
            #expect(login.err == wrong.err, "a disabled user gets the same answer as a wrong password")
            let listed = try await sb.imctl("users", "list", "--json")
            #expect(try listed.jsonLines().first { $0.string("name") == "bob" }?["disabled"] as? Bool == true)

            let e = try await sb.imctl("users", "enable", "bob")
            #expect(e.status == 0, "\(e)")
            let back = try await sb.imctl("login", "--user", "bob", "--password-stdin", stdin: "bob-password\n")
            #expect(back.status == 0, "\(back)")
        }
    }

    @Test func changingAPasswordRevokesTokens() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            try await sb.addUser("carol", password: "old-password")
            let token = try await sb.token("carol")
            #expect(try await sb.imctl("send", "lobby", "hi", "--token", token).status == 0)
            let p = try await sb.imctl("users", "passwd", "carol", "--password-stdin", stdin: "new-password\n")
            #expect(p.status == 0, "\(p)")
            let old = try await sb.imctl("send", "lobby", "hi", "--token", token)
            #expect(old.status == 77, "\(old)")
            let oldPassword = try await sb.imctl("login", "--user", "carol", "--password-stdin", stdin: "old-password\n")
            #expect(oldPassword.status == 77, "\(oldPassword)")
            let newPassword = try await sb.imctl("login", "--user", "carol", "--password-stdin", stdin: "new-password\n")
            #expect(newPassword.status == 0, "\(newPassword)")
            let short = try await sb.imctl("users", "passwd", "carol", "--password-stdin", stdin: "short\n")
            #expect(short.status != 0, "\(short)")
        }
    }

    @Test func remoteUserManagementNeedsAnAdminToken() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let admin = try await sb.users("root", admin: true)["root"]!
            let plain = try await sb.users("dave")["dave"]!
            let url = try sb.serverURL
            // The store is out of reach for the remote commands: give them a database path that does not exist.
            let remote = ["IMCTL_DATABASE": sb.dir.appendingPathComponent("nowhere/none.db").path]
            let list = try await sb.imctl(["users", "list", "--json", "--server", url, "--token", admin], env: remote)
            #expect(list.status == 0, "\(list)")
            #expect(Set(try list.jsonLines().compactMap { $0.string("name") }) == ["root", "dave"])
            let add = try await sb.imctl(["users", "add", "erin", "--password-stdin", "--server", url, "--token", admin],
                                         stdin: Data("erin-password\n".utf8), env: remote)
            #expect(add.status == 0, "\(add)")
            let login = try await sb.imctl("login", "--user", "erin", "--password-stdin", stdin: "erin-password\n")
            #expect(login.status == 0, "a user added remotely can sign in: \(login)")

            let denied = try await sb.imctl(["users", "list", "--server", url, "--token", plain], env: remote)
            #expect(denied.status == 77, "\(denied)")
            #expect(denied.out.isEmpty)
            let deniedAdd = try await sb.imctl(["users", "add", "frank", "--password-stdin", "--server", url, "--token", plain],
                                               stdin: Data("frank-password\n".utf8), env: remote)
            #expect(deniedAdd.status == 77, "\(deniedAdd)")
            let bogus = try await sb.imctl(["users", "list", "--server", url, "--token", "imt_bogus"], env: remote)
            #expect(bogus.status == 77, "\(bogus)")
        }
    }

    @Test func serveOnAnEmptyStoreSaysHowToCreateTheFirstUser() async throws {
        try await withSandbox { sb in
            let server = try await sb.startServer()
            #expect(server.stderr.contains("imctl users add"), "\(server.stderr)")
            #expect(server.stderr.contains("listening on ws://127.0.0.1:\(server.port)/v1/ws"))
            // Once there is a user, no hint.
            try await sb.addUser("alice")
            try await server.restart()
            let second = try #require(server.child).err
            #expect(!second.contains("users add"), "\(second)")
        }
    }

    @Test func loginKeepsATokenPerServerAndLogoutRevokesIt() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            try await sb.addUser("alice", password: "alice-password")
            let url = try sb.serverURL
            let login = try await sb.imctl(["login", "--server", url, "--user", "alice", "--password-stdin"],
                                           stdin: Data("alice-password\n".utf8), env: ["IMCTL_SERVER": ""])
            #expect(login.status == 0, "\(login)")
            let file = sb.dir.appendingPathComponent("config/imctl/credentials.json")
            let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
            #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
            let text = try String(contentsOf: file, encoding: .utf8)
            #expect(text.contains("alice"))

            // The stored token is used for that server: no --token, no IMCTL_TOKEN.
            let send = try await sb.imctl("send", "lobby", "signed in", "--server", url, env: ["IMCTL_SERVER": ""])
            #expect(send.status == 0, "\(send)")
            let viaEnv = try await sb.imctl("listen", "lobby", "--since", "0", "--count", "1", "--format", "{from}: {body}",
                                            "--timeout", "5s")
            #expect(viaEnv.status == 0, "\(viaEnv)")
            #expect(viaEnv.out == "alice: signed in\n")
            // Another server has no stored token.
            let other = try await sb.imctl("send", "lobby", "hi", "--server", "ws://127.0.0.1:\(try freeLoopbackPort())")
            #expect(other.status == 77 || other.status == 69, "\(other)")

            // Logout revokes the token on the server and forgets it.
            let token = try #require(text.firstMatch(of: /"token"\s*:\s*"([^"]+)"/)).1
            #expect(try await sb.imctl("send", "lobby", "x", "--token", String(token)).status == 0)
            let logout = try await sb.imctl("logout")
            #expect(logout.status == 0, "\(logout)")
            #expect(try await sb.imctl("send", "lobby", "x", "--token", String(token)).status == 77, "the token is revoked")
            #expect(try await sb.imctl("send", "lobby", "x").status == 77, "and forgotten")
        }
    }

    /// Settings resolve flag > environment > stored credentials > default: after `login --server URL`, the
    /// next commands use that server without being told again (as in the SPEC's walkthrough).
    @Test func afterLoginTheStoredServerIsUsedWithoutServerFlag() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            try await sb.addUser("alice", password: "alice-password")
            let noEnv = ["IMCTL_SERVER": ""]
            let login = try await sb.imctl(["login", "--server", try sb.serverURL, "--user", "alice", "--password-stdin"],
                                           stdin: Data("alice-password\n".utf8), env: noEnv)
            #expect(login.status == 0, "\(login)")
            let send = try await sb.imctl(["send", "general", "hello"], env: noEnv)
            #expect(send.status == 0, "\(send)")
            let listen = try await sb.imctl(["listen", "general", "--since", "0", "--count", "1", "--format", "{body}",
                                             "--timeout", "5s"], env: noEnv)
            #expect(listen.status == 0, "\(listen)")
            #expect(listen.out == "hello\n")
        }
    }
}
