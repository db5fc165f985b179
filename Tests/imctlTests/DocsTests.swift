import Foundation
import Testing

/// completions/ and man/imctl.1 are generated from the command definitions (scripts/gen-docs.py) and
/// committed: they must match what the built binary describes, render, and complete.
@Suite(.timeLimit(.minutes(10))) struct DocsTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func run(_ tool: String, _ arguments: [String], env: [String: String] = [:]) async throws -> ProcResult {
        var environment = ProcessInfo.processInfo.environment
        environment.merge(env) { $1 }
        let child = try Child(executable: URL(fileURLWithPath: tool), arguments, env: environment)
        return await child.finish(timeout: .seconds(60))
    }

    static func generator(_ extra: [String]) async throws -> ProcResult {
        try await run("/usr/bin/python3", [root.appendingPathComponent("scripts/gen-docs.py").path, "--imctl", imctlBinary.path] + extra)
    }

    @Test func theCommittedCompletionsAndManPageAreCurrent() async throws {
        let r = try await Self.generator(["--check"])
        #expect(r.status == 0, "regenerate with scripts/gen-docs.py and commit: \(r.err)")
    }

    /// The check is not a formality: a flag added to the definitions without regenerating is caught.
    @Test func aFlagAddedWithoutRegeneratingIsCaught() async throws {
        let dump = try await Self.run(imctlBinary.path, ["--experimental-dump-help"])
        #expect(dump.status == 0)
        var json = try #require(try JSONSerialization.jsonObject(with: Data(dump.out.utf8)) as? [String: Any])
        var root = try #require(json["command"] as? [String: Any])
        var subcommands = try #require(root["subcommands"] as? [[String: Any]])
        let send = try #require(subcommands.firstIndex { $0["commandName"] as? String == "send" })
        var arguments = try #require(subcommands[send]["arguments"] as? [[String: Any]])
        arguments.append(["kind": "flag", "abstract": "A flag nobody documented.", "isOptional": true, "isRepeating": false,
                          "shouldDisplay": true, "valueName": "brand-new",
                          "names": [["kind": "long", "name": "brand-new"]], "preferredName": ["kind": "long", "name": "brand-new"]])
        subcommands[send]["arguments"] = arguments
        root["subcommands"] = subcommands
        json["command"] = root
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-dump-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: json).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let r = try await Self.generator(["--check", "--dump", file.path])
        #expect(r.status == 1, "\(r)")
        #expect(r.err.contains("man/imctl.1"), "\(r.err)")
    }

    /// `man -l` renders the page without a warning, with every section a man page is expected to have
    /// and every command.
    @Test func theManPageRenders() async throws {
        let page = Self.root.appendingPathComponent("man/imctl.1").path
        let r = try await Self.run("/usr/bin/man", ["-l", page], env: ["MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "100", "MAN_KEEP_FORMATTING": ""])
        #expect(r.status == 0, "\(r)")
        #expect(r.err.isEmpty, "man -l warned: \(r.err)")
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "ENVIRONMENT", "FILES", "EXIT STATUS", "EXAMPLES"] {
            #expect(r.out.contains("\n\(section)\n"), "no \(section) section")
        }
        for command in ["serve", "login", "logout", "send", "listen", "users add", "users otp", "compress", "bench"] {
            #expect(r.out.contains("imctl \(command)"), "no \(command)")
        }
        #expect(r.out.contains("--max-sends-per-second"))
        // groff's own check: no warning of any kind.
        let lint = try await Self.run("/usr/bin/groff", ["-man", "-Tutf8", "-ww", "-z", page])
        #expect(lint.status == 0 && lint.err.isEmpty, "\(lint)")
    }

    /// `COMPREPLY` after completing the last of `words` in bash with completions/imctl.bash loaded.
    static func complete(_ words: [String], env: [String: String] = [:]) async throws -> [String] {
        let script = root.appendingPathComponent("completions/imctl.bash").path
        let line = words.joined(separator: " ")
        let program = """
            source '\(script)'
            COMP_WORDS=(\(words.map { "'\($0)'" }.joined(separator: " "))); COMP_CWORD=\(words.count - 1)
            COMP_LINE='\(line)'; COMP_POINT=${#COMP_LINE}
            _imctl imctl '\(words.last!)' '\(words[words.count - 2])'
            printf '%s\\n' "${COMPREPLY[@]}"
            """
        let r = try await run("/bin/bash", ["-c", program], env: env.merging(["PATH": imctlBinary.deletingLastPathComponent().path + ":/usr/bin:/bin"]) { $1 })
        #expect(r.status == 0, "\(r)")
        return r.out.split(separator: "\n").map(String.init)
    }

    /// bash: the script loads, registers `imctl`, and completes subcommands, flags and option values.
    @Test func bashCompletes() async throws {
        let script = Self.root.appendingPathComponent("completions/imctl.bash").path
        let registered = try await Self.run("/bin/bash", ["-c", "source '\(script)'; complete -p imctl"])
        #expect(registered.status == 0 && registered.out.contains("-F _imctl imctl"), "\(registered)")
        #expect(try await Self.complete(["imctl", "li"]) == ["listen"])
        #expect(try await Self.complete(["imctl", "u"]) == ["users"])
        #expect(try await Self.complete(["imctl", "users", "to"]).sorted() == ["token", "tokens"])
        #expect(try await Self.complete(["imctl", "listen", "--js"]) == ["--json"])
        #expect(try await Self.complete(["imctl", "serve", "--log-level", ""]).contains("warning"))
    }

    /// Room and @user names complete from the server the command would talk to, for the user it would
    /// sign in as; with no server there, nothing is offered (and nothing hangs).
    @Test func bashCompletesConversationNamesFromTheServer() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let tokens = try await sb.users("alice", "bob", "carol")
            for (to, token) in [("general", tokens["alice"]!), ("gardening", tokens["bob"]!), ("@bob", tokens["alice"]!), ("@carol", tokens["bob"]!)] {
                let r = try await sb.imctl("send", to, "hello", "--token", token)
                try #require(r.status == 0, "\(r)")
            }
            let env = sb.environment(["IMCTL_TOKEN": tokens["alice"]!])
            #expect(try await Self.complete(["imctl", "listen", "g"], env: env).sorted() == ["gardening", "general"])
            #expect(try await Self.complete(["imctl", "send", "gen"], env: env) == ["general"])
            // alice's direct conversations only, not bob's with carol.
            #expect(try await Self.complete(["imctl", "listen", ""], env: env).sorted() == ["@bob", "gardening", "general"])
            // --token on the line wins, as it would for the command.
            #expect(try await Self.complete(["imctl", "listen", "--token", tokens["carol"]!, ""], env: env).sorted() == ["@bob", "gardening", "general"])
            // bash splits `@b` into `@` and `b` (COMP_WORDBREAKS) and replaces only the `b`.
            #expect(try await Self.complete(["imctl", "listen", "general", "@", "b"], env: env) == ["bob"])
            let nowhere = sb.environment(["IMCTL_TOKEN": tokens["alice"]!, "IMCTL_SERVER": "ws://127.0.0.1:9"])
            #expect(try await Self.complete(["imctl", "listen", "g"], env: nowhere).isEmpty)
        }
    }
}
