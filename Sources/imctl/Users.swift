import ArgumentParser
import Foundation
import IMClient
import IMStorage
import IMWire

/// Where `users` subcommands work: the store (default) or a server (`--server`).
struct AdminOptions: ParsableArguments {
    @OptionGroup var store: StoreOptions
    @Option(help: ArgumentHelp("Manage users through this server (with an admin token) instead of the store.", valueName: "url"))
    var server: String?
    @OptionGroup var token: TokenOption
    @OptionGroup var tls: CACertOption

    func open() async throws -> any UserAdmin {
        if let server {
            guard let token = token.resolved(for: server) else {
                throw ClientError(.unauthorized, "no admin token for \(server): run `imctl login --server \(server) --user ADMIN` or give --token")
            }
            return RemoteAdmin(api: APIClient(server: server, token: token, caCertificatePath: tls.resolved))
        }
        return LocalAdmin(store: try await store.open())
    }
}

/// Runs `body` with an admin backend, closing it afterwards.
func withAdmin(_ options: AdminOptions, _ body: (any UserAdmin) async throws -> Void) async throws {
    try await runMapped {
        let admin = try await options.open()
        do {
            try await body(admin)
        } catch {
            await admin.close()
            throw error
        }
        await admin.close()
    }
}

func validateUserName(_ name: String) throws {
    guard Names.isValidUser(name) else { throw ValidationError("invalid user name '\(name)': expected [a-z0-9][a-z0-9_.-]{0,31}") }
}

func formatTime(_ millis: Int64?) -> String {
    millis.map(Timestamp.rfc3339) ?? "-"
}

extension IMCtl {
    /// `imctl users …`: accounts and tokens.
    struct Users: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "users",
            abstract: "Manage users and API tokens, on the store directly or through a server with --server.",
            subcommands: [Add.self, List.self, Remove.self, Passwd.self, Disable.self, Enable.self, Token.self, Tokens.self, Revoke.self, OTP.self])

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "add", abstract: "Create a user (asks for the password twice on a terminal).")
            @Argument(help: "User name: [a-z0-9][a-z0-9_.-]{0,31}.") var name: String
            @Flag(help: "Make the user an admin.") var admin = false
            @Flag(help: "Read the password from the first line of stdin.") var passwordStdin = false
            @OptionGroup var where_: AdminOptions

            func validate() throws { try validateUserName(name) }

            func run() async throws {
                try await withAdmin(where_) { backend in
                    let password = try PasswordInput.read(fromStdin: passwordStdin, confirm: true, purpose: "new")
                    // The rule is checked where the password is set: the store here, or the server.
                    try await backend.add(name, password: password, admin: admin)
                    Output.error("user '\(name)' added\(admin ? " (admin)" : "")")
                }
            }
        }

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "list", abstract: "List users.")
            @Flag(help: "One JSON object per user.") var json = false
            @OptionGroup var where_: AdminOptions

            func run() async throws {
                try await withAdmin(where_) { backend in
                    let users = try await backend.list()
                    if json {
                        for u in users {
                            var w = JSONObjectWriter()
                            w.add("name", u.name); w.add("admin", u.isAdmin); w.add("disabled", u.isDisabled)
                            w.add("created", Timestamp.rfc3339(millis: u.createdAt))
                            Output.line(w.finish())
                        }
                        return
                    }
                    let rows = [["NAME", "ADMIN", "STATUS", "CREATED"]] + users.map {
                        [$0.name, $0.isAdmin ? "yes" : "no", $0.isDisabled ? "disabled" : "active", Timestamp.rfc3339(millis: $0.createdAt)]
                    }
                    Table.print(rows)
                }
            }
        }

        struct Remove: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "remove", abstract: "Remove a user and their tokens (their messages stay).")
            @Argument var name: String
            @OptionGroup var where_: AdminOptions
            func validate() throws { try validateUserName(name) }
            func run() async throws {
                try await withAdmin(where_) { try await $0.remove(name); Output.error("user '\(name)' removed") }
            }
        }

        struct Passwd: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "passwd", abstract: "Set a user's password; revokes all their tokens.")
            @Argument var name: String
            @Flag(help: "Read the password from the first line of stdin.") var passwordStdin = false
            @OptionGroup var where_: AdminOptions
            func validate() throws { try validateUserName(name) }
            func run() async throws {
                try await withAdmin(where_) { backend in
                    let password = try PasswordInput.read(fromStdin: passwordStdin, confirm: true, purpose: "new")
                    // The rule is checked where the password is set: the store here, or the server.
                    try await backend.passwd(name, password: password)
                    Output.error("password of '\(name)' changed; their tokens are revoked")
                }
            }
        }

        struct Disable: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "disable", abstract: "Stop a user from signing in or using tokens.")
            @Argument var name: String
            @OptionGroup var where_: AdminOptions
            func validate() throws { try validateUserName(name) }
            func run() async throws {
                try await withAdmin(where_) { try await $0.setDisabled(name, true); Output.error("user '\(name)' disabled") }
            }
        }

        struct Enable: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "enable", abstract: "Let a disabled user sign in again.")
            @Argument var name: String
            @OptionGroup var where_: AdminOptions
            func validate() throws { try validateUserName(name) }
            func run() async throws {
                try await withAdmin(where_) { try await $0.setDisabled(name, false); Output.error("user '\(name)' enabled") }
            }
        }

        struct Token: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "token", abstract: "Create an API token for a user and print it once, on stdout.")
            @Argument var name: String
            @Option(help: ArgumentHelp("Lifetime, e.g. 30d (default: no expiry).", valueName: "duration")) var ttl: DurationArgument?
            @Option(help: ArgumentHelp("A label to recognise the token by.", valueName: "text")) var label: String?
            @OptionGroup var where_: AdminOptions
            func validate() throws {
                try validateUserName(name)
                try validateTokenLifetime(ttl)
            }
            func run() async throws {
                try await withAdmin(where_) { backend in
                    let (token, _) = try await backend.token(name, ttl: ttl?.duration, label: label)
                    Output.line(token)
                }
            }
        }

        struct Tokens: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "tokens", abstract: "List a user's tokens (id, label, created, expires, last used).")
            @Argument var name: String
            @Flag(help: "One JSON object per token.") var json = false
            @OptionGroup var where_: AdminOptions
            func validate() throws { try validateUserName(name) }
            func run() async throws {
                try await withAdmin(where_) { backend in
                    let tokens = try await backend.tokens(name)
                    if json {
                        for t in tokens {
                            var w = JSONObjectWriter()
                            w.add("id", t.id); w.add("user", t.user)
                            if let l = t.label { w.add("label", l) }
                            w.add("created", Timestamp.rfc3339(millis: t.createdAt))
                            if let e = t.expiresAt { w.add("expires", Timestamp.rfc3339(millis: e)) }
                            if let u = t.lastUsedAt { w.add("last_used", Timestamp.rfc3339(millis: u)) }
                            Output.line(w.finish())
                        }
                        return
                    }
                    Table.print([["ID", "LABEL", "CREATED", "EXPIRES", "LAST USED"]] + tokens.map {
                        [String($0.id), $0.label ?? "-", formatTime($0.createdAt), formatTime($0.expiresAt), formatTime($0.lastUsedAt)]
                    })
                }
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke one token by id, or all with --all.")
            @Argument var name: String
            @Argument(help: "The token id (see `users tokens`).") var tokenID: Int64?
            @Flag(help: "Revoke every token of the user.") var all = false
            @OptionGroup var where_: AdminOptions
            func validate() throws {
                try validateUserName(name)
                if all == (tokenID != nil) { throw ValidationError("give a TOKEN_ID or --all") }
            }
            func run() async throws {
                try await withAdmin(where_) { backend in
                    if all {
                        let n = try await backend.revokeAll(name)
                        Output.error("revoked \(n) token\(n == 1 ? "" : "s") of '\(name)'")
                    } else if let tokenID {
                        try await backend.revoke(name, id: tokenID)
                        Output.error("revoked token \(tokenID) of '\(name)'")
                    }
                }
            }
        }
    }
}

extension IMCtl.Users {
    struct OTP: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "otp",
            abstract: "Turn two-factor sign-in (TOTP: SHA-1, 6 digits, 30 s) on or off for a user.",
            discussion: "--enable prints the secret once, as an otpauth:// URI for an authenticator app.")
        @Argument var name: String
        @Flag(help: "Turn it on and print the otpauth:// URI.") var enable = false
        @Flag(help: "Turn it off.") var disable = false
        @OptionGroup var where_: AdminOptions
        func validate() throws {
            try validateUserName(name)
            if enable == disable { throw ValidationError("give --enable or --disable") }
        }
        func run() async throws {
            try await withAdmin(where_) { backend in
                if let uri = try await backend.setOTP(name, enabled: enable) {
                    Output.line(uri)
                } else {
                    Output.error("two-factor sign-in turned off for '\(name)'")
                }
            }
        }
    }
}

/// Left-aligned columns separated by two spaces.
enum Table {
    static func print(_ rows: [[String]]) {
        guard let first = rows.first else { return }
        var widths = Array(repeating: 0, count: first.count)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
        for r in rows {
            var line = ""
            for (i, c) in r.enumerated() {
                line += i == r.count - 1 ? c : c.padding(toLength: widths[i] + 2, withPad: " ", startingAt: 0)
            }
            Output.line(line)
        }
    }
}
