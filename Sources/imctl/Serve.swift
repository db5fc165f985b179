import ArgumentParser
import Foundation
import IMServer
import IMStorage
import Logging
import ServiceLifecycle
import UnixSignals

extension IMCtl {
    /// `imctl serve`: run the server.
    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "serve",
            abstract: "Run the instant-messaging server (WebSocket at /v1/ws, HTTP JSON beside it).")

        @Option(help: ArgumentHelp("Address to listen on.", valueName: "address")) var host = "127.0.0.1"
        @Option(help: ArgumentHelp("Port to listen on; 0 picks a free one (named on stderr when ready).", valueName: "port")) var port = 7700
        @OptionGroup var store: StoreOptions
        @Option(name: .customLong("tls-cert"), help: ArgumentHelp("PEM certificate chain for TLS.", valueName: "pem")) var tlsCert: String?
        @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key for TLS.", valueName: "pem")) var tlsKey: String?
        @Flag(help: "Do not offer permessage-deflate.") var noCompression = false
        @Option(help: ArgumentHelp("Largest permessage-deflate window, 9–15 bits: smaller saves memory per connection.",
                                   valueName: "bits")) var compressionWindowBits = 15
        @Option(help: ArgumentHelp("Largest message body in bytes.", valueName: "bytes")) var maxMessageBytes = 65536
        @Option(help: ArgumentHelp("Memory for recent messages served to history and resume without the store (0: off).",
                                   valueName: "bytes")) var historyCacheBytes = ServerConfiguration.historyCacheBytes
        @Option(help: ArgumentHelp("Open connections in all; past it new ones are closed at once.", valueName: "n"))
        var maxConnections = ServerConfiguration.defaultMaxConnections
        @Option(help: ArgumentHelp("Open connections from one address.", valueName: "n"))
        var maxConnectionsPerAddress = ServerConfiguration.defaultMaxConnectionsPerAddress
        @Option(help: ArgumentHelp("Sends per second one connection may make (0: no limit); over it sends get a rate_limited error.", valueName: "n"))
        var maxSendsPerSecond = ServerConfiguration.defaultMaxSendsPerSecond
        @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical.", valueName: "level"),
                completion: .list(["trace", "debug", "info", "notice", "warning", "error", "critical"])) var logLevel = "info"
        @Option(help: ArgumentHelp("text or json.", valueName: "format"), completion: .list(["text", "json"])) var logFormat = "text"

        func validate() throws {
            guard (0...65535).contains(port) else { throw ValidationError("--port must be 0…65535") }
            guard maxMessageBytes >= 1 && maxMessageBytes <= 16 << 20 else {
                throw ValidationError("--max-message-bytes must be 1…16777216")
            }
            guard maxConnections >= 1, maxConnectionsPerAddress >= 1 else { throw ValidationError("connection limits must be at least 1") }
            guard maxSendsPerSecond >= 0 else { throw ValidationError("--max-sends-per-second must be 0 or more") }
            guard historyCacheBytes >= 0 else { throw ValidationError("--history-cache-bytes must be 0 or more") }
            guard (9...15).contains(compressionWindowBits) else { throw ValidationError("--compression-window-bits must be 9…15") }
            guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level '\(logLevel)'") }
            guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format is text or json") }
            guard (tlsCert == nil) == (tlsKey == nil) else { throw ValidationError("give both --tls-cert and --tls-key, or neither") }
            for path in [tlsCert, tlsKey].compactMap({ $0 }) where !FileManager.default.isReadableFile(atPath: path) {
                throw ValidationError("cannot read \(path)")
            }
        }

        func run() async throws {
            let level = Logger.Level(rawValue: logLevel) ?? .info
            let json = logFormat == "json"
            LoggingSystem.bootstrap { label in
                var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "imctl.serve")
            try await runMapped {
                let path = store.shownDatabase
                // One server per SQLite file: a second one would assign the same seqs.
                var lock: ServerLock?
                if !store.isPostgres {
                    do {
                        lock = try ServerLock.claim(databasePath: path)
                    } catch let e as ServerLock.Held {
                        throw CommandFailure.failure("\(e)")
                    }
                }
                defer { lock?.release() }
                // On PostgreSQL any number of servers share the store (they hear of each other's messages).
                let db = try await store.open()
                if try await !db.hasUsers() {
                    let flag = store.database.map { " --database \($0)" } ?? ""
                    Output.error("the store at \(path) has no users yet; create the first one with:\n"
                        + "  imctl users add NAME --admin\(flag)\n"
                        + "then sign in with: imctl login --user NAME")
                }
                let host = self.host
                let config = ServerConfiguration(host: host, port: port, maxMessageBytes: maxMessageBytes, compression: !noCompression,
                                                 compressionWindowBits: compressionWindowBits, historyCacheBytes: historyCacheBytes,
                                                 maxConnections: maxConnections, maxConnectionsPerAddress: maxConnectionsPerAddress,
                                                 maxSendsPerSecond: maxSendsPerSecond,
                                                 tlsCertificatePath: tlsCert, tlsKeyPath: tlsKey)
                let (ws, http) = tlsCert == nil ? ("ws", "http") : ("wss", "https")
                let server = ChatServer(configuration: config, store: db, logger: logger) { port in
                    let shown = host.contains(":") ? "[\(host)]" : host
                    Output.error("listening on \(ws)://\(shown):\(port)/v1/ws (\(http)://\(shown):\(port)), store \(path)")
                }
                // SIGHUP: load the TLS certificate and key again (new connections get them; a bad pair is
                // logged and the one in use kept), so certificates rotate without a restart.
                let reloads = tlsCert == nil ? nil : Task {
                    for await _ in await UnixSignalsSequence(trapping: .sighup) {
                        do {
                            try server.reloadTLS()
                            Output.error("reloaded the TLS certificate and key")
                        } catch {
                            Output.error("could not reload the TLS certificate and key, keeping the ones in use: \(error)")
                        }
                    }
                }
                defer { reloads?.cancel() }
                let group = ServiceGroup(configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint],
                                                              logger: logger))
                do {
                    try await group.run()
                } catch {
                    try? await db.close()
                    let text = String(describing: error)
                    if let e = error as? TLSFileError {
                        throw CommandFailure.usage("TLS: \(e)")
                    }
                    if text.contains("Address already in use") || text.contains("EADDRINUSE") {
                        throw CommandFailure.failure("cannot listen on \(host):\(port): the address is already in use")
                    }
                    throw CommandFailure.failure("server stopped: \(text)")
                }
                try? await db.close()
            }
        }
    }
}

/// One JSON object per log line on stderr.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: String] = [
            "ts": ISO8601DateFormatter().string(from: Date()), "level": event.level.rawValue, "label": label,
            "message": "\(event.message)",
        ]
        for (k, v) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) { object[k] = "\(v)" }
        if let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
            FileHandle.standardError.write(data + Data("\n".utf8))
        }
    }
}
