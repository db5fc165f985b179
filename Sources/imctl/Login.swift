import ArgumentParser
import IMClient
import IMWire

extension IMCtl {
    /// `imctl login`: trade a password for a token and keep it.
    struct Login: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "login",
            abstract: "Sign in: trade a password for a token, kept in $XDG_CONFIG_HOME/imctl/credentials.json (0600).")

        @OptionGroup var where_: ServerOptions
        @Option(help: ArgumentHelp("User name.", valueName: "name")) var user: String
        @Flag(help: "Read the password from the first line of stdin.") var passwordStdin = false
        @Option(help: ArgumentHelp("One-time code, for a user with two-factor sign-in (asked for on a terminal).", valueName: "code"))
        var otp: String?
        @Option(help: ArgumentHelp("Lifetime of the token, e.g. 12h or 90d (default: 30d).", valueName: "duration"))
        var ttl: DurationArgument?

        func validate() throws {
            guard Names.isValidUser(user) else { throw ValidationError("invalid user name '\(user)'") }
            try validateTokenLifetime(ttl)
        }

        func run() async throws {
            try await runMapped {
                let server = where_.resolved
                let password = try PasswordInput.read(fromStdin: passwordStdin, confirm: false, purpose: "login")
                let api = where_.api(token: nil)
                let token: String
                do {
                    token = try await api.login(user: user, password: password, otp: otp, ttl: ttl?.duration)
                } catch let e as ClientError where e.kind == .otpRequired {
                    guard otp == nil, PasswordInput.terminalAvailable else {
                        throw ClientError(.unauthorized, "user '\(user)' signs in with a one-time code: give --otp CODE")
                    }
                    guard let code = PasswordInput.promptVisible("One-time code: ") else { throw ClientError(.unauthorized, "no code given") }
                    token = try await api.login(user: user, password: password, otp: code, ttl: ttl?.duration)
                }
                var file = CredentialsFile.load()
                file.servers[CredentialsFile.key(server)] = .init(user: user, token: token, url: server)
                file.current = CredentialsFile.key(server)
                try file.save()
                Output.error("signed in to \(CredentialsFile.key(server)) as \(user)")
            }
        }
    }

    /// `imctl logout`: revoke the stored token and forget it.
    struct Logout: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "logout", abstract: "Revoke the stored token for a server and forget it.")

        @OptionGroup var where_: ServerOptions

        func run() async throws {
            try await runMapped {
                let server = where_.resolved
                var file = CredentialsFile.load()
                let key = CredentialsFile.key(server)
                guard let entry = file.servers[key] else {
                    Output.error("not signed in to \(key)")
                    return
                }
                do {
                    try await where_.api(token: entry.token).logout()
                } catch let e as ClientError where e.kind == .unreachable {
                    Output.error("could not reach \(key) to revoke the token (\(e.message)); forgetting it anyway")
                } catch let e as ClientError where e.kind == .unauthorized {
                    // Already revoked or expired: forgetting it is all that is left.
                }
                file.servers[key] = nil
                if file.current == key { file.current = nil }
                try file.save()
                Output.error("signed out of \(key)")
            }
        }
    }
}
