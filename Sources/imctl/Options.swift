import ArgumentParser
import Foundation
import IMClient
import IMStorage
import IMWire
import Logging

/// `--cacert`: the CA certificates to trust for `wss://` and `https://`, for every command that talks
/// to a server.
struct CACertOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("PEM file of CA certificates to trust for wss:// (default: $IMCTL_CACERT, else the system's).",
                                            valueName: "file"))
    var cacert: String?

    /// flag > `IMCTL_CACERT` > none (the system's trust roots).
    var resolved: String? { Defaults.resolveCACert(cacert) }
}

/// `--token`, for every command that signs in to a server with a token.
struct TokenOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("API token (default: $IMCTL_TOKEN, else the one `imctl login` stored for the server).",
                                            valueName: "token"))
    var token: String?

    /// flag > `IMCTL_TOKEN` > the token stored for `server` > none.
    func resolved(for server: String) -> String? { Defaults.resolveToken(token, for: server) }
}

/// `--server` and `--cacert`: the server a user works with (`send`, `listen`, `login`, `logout`).
/// `users --server` (remote administration instead of the store) and `bench --server` (instead of an
/// in-process server) mean something else and keep their own `--server`, with the same `--token` and
/// `--cacert`.
struct ServerOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Server URL, or several comma-separated (nodes of one service, tried in turn) (default: $IMCTL_SERVER, else the last one signed in to, else ws://127.0.0.1:7700).",
        valueName: "url"))
    var server: String?

    @OptionGroup var tls: CACertOption

    /// The server URL: flag > environment > the server last signed in to > default.
    var resolved: String { Defaults.resolveServer(server) }

    /// The HTTP API of the server, with `token` (or none, to sign in).
    func api(token: String?) -> APIClient {
        APIClient(server: resolved, token: token, caCertificatePath: tls.resolved)
    }
}

/// Everything a client command needs to connect and sign in: `--server`, `--cacert`, `--token` and
/// `--no-compression`; one configuration for `send` and `listen`.
struct ClientOptions: ParsableArguments {
    @OptionGroup var server: ServerOptions
    @OptionGroup var token: TokenOption

    @Flag(name: .long, help: "Do not ask for permessage-deflate.")
    var noCompression = false

    /// The token: flag > environment > stored credentials for the server.
    func resolvedToken() throws -> String {
        if let token = token.resolved(for: server.resolved) { return token }
        throw ClientError(.unauthorized, "not signed in to \(server.resolved): run `imctl login --user NAME`, or give --token or IMCTL_TOKEN")
    }

    func configuration(reconnect: Bool) throws -> ClientConfiguration {
        ClientConfiguration(server: server.resolved, token: try resolvedToken(), compression: !noCompression, reconnect: reconnect,
                            caCertificatePath: server.tls.resolved)
    }
}

/// `--database`, shared by `serve` and local `users`: a SQLite file, or a `postgres://` URL.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "SQLite file, or postgres://user:password@host:port/database (default: $IMCTL_DATABASE, else $XDG_DATA_HOME/imctl/imctl.db or ~/.local/share/imctl/imctl.db).",
        valueName: "path|url"))
    var database: String?

    var resolvedDatabase: String {
        database ?? Environment.value("IMCTL_DATABASE") ?? Defaults.databasePath
    }

    var isPostgres: Bool { PostgresStore.isURL(resolvedDatabase) }

    /// How the store is named in messages (a URL without its password).
    var shownDatabase: String { isPostgres ? PostgresStore.redacted(resolvedDatabase) : resolvedDatabase }


    func open() async throws -> any ChatStore {
        let logger = Logger(label: "imctl.store")
        if isPostgres { return try await PostgresStore.open(url: resolvedDatabase, logger: logger) }
        return try await SQLiteStore.open(path: resolvedDatabase, logger: logger)
    }
}

enum Defaults {
    static let server = "ws://127.0.0.1:7700"

    /// What `imctl login` stored, read once (on first use) for the defaults below; `login` and `logout`
    /// read and write the file themselves.
    static let stored = CredentialsFile.load()

    /// flag > `IMCTL_SERVER` > the server of the last `imctl login` > `ws://127.0.0.1:7700`.
    static func resolveServer(_ flag: String?) -> String {
        flag ?? Environment.value("IMCTL_SERVER") ?? stored.currentURL ?? server
    }

    /// flag > `IMCTL_TOKEN` > the token `imctl login` stored for `server` > none.
    static func resolveToken(_ flag: String?, for server: String) -> String? {
        flag ?? Environment.value("IMCTL_TOKEN") ?? stored.servers[CredentialsFile.key(server)]?.token
    }

    /// flag > `IMCTL_CACERT` > none (the system's trust roots).
    static func resolveCACert(_ flag: String?) -> String? {
        flag ?? Environment.value("IMCTL_CACERT")
    }

    static var databasePath: String {
        if let data = Environment.value("XDG_DATA_HOME") { return data + "/imctl/imctl.db" }
        return home + "/.local/share/imctl/imctl.db"
    }

    static var configDirectory: String {
        if let config = Environment.value("XDG_CONFIG_HOME") { return config + "/imctl" }
        return home + "/.config/imctl"
    }

    static var home: String {
        Environment.value("HOME") ?? NSHomeDirectory()
    }
}

enum Environment {
    /// A non-empty environment variable.
    static func value(_ name: String) -> String? {
        // getenv, not ProcessInfo: that copies the whole environment into a dictionary on every call.
        guard let v = getenv(name), v.pointee != 0 else { return nil }
        return String(cString: v)
    }
}

/// Parses `500ms`, `10s`, `5m`, `2h`, `30d` for ArgumentParser.
struct DurationArgument: ExpressibleByArgument {
    let duration: Duration
    init?(argument: String) {
        guard let d = DurationText.parse(argument) else { return nil }
        duration = d
    }
    static var defaultCompletionKind: CompletionKind { .default }
}

/// A token's `--ttl`: one second to ten years (past that it is a usage error, not an overflow).
func validateTokenLifetime(_ ttl: DurationArgument?) throws {
    guard let ttl = ttl?.duration else { return }
    guard ttl >= .seconds(1), ttl <= DurationText.maxTokenLifetime else {
        throw ValidationError("--ttl must be between 1s and \(DurationText.maxTokenLifetime.components.seconds / 86_400)d")
    }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
