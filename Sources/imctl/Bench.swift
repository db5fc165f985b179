import ArgumentParser
import Foundation
import IMClient
import IMServer
import IMAuth
import IMStorage
import IMWire
import Logging
#if canImport(Glibc)
import Glibc
#endif

extension LoadConfiguration.Balance: ExpressibleByArgument {}

extension IMCtl {
    /// `imctl bench`: load-test a server, or one started in process.
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract: "Load-test a server (or one it starts in process) and report throughput, latency, losses and duplicates.",
            discussion: """
                Without --server it starts its own server on a free loopback port with a temporary store, so it runs \
                on a fresh machine with no set-up. Exits 1 if any message was lost or duplicated.
                """)

        @Option(help: ArgumentHelp("Server to load (default: start one in process).", valueName: "url")) var server: String?
        @Option(help: ArgumentHelp("Several servers, comma-separated; clients are spread with --balance.", valueName: "url,url…"))
        var servers: String?
        @Option(help: ArgumentHelp("How clients are spread over --servers: round-robin, random or least-connections.", valueName: "strategy")) var balance: LoadConfiguration.Balance = .roundRobin
        @OptionGroup var token: TokenOption
        @Option(help: ArgumentHelp("Publishing clients.", valueName: "n")) var publishers = 1
        @Option(help: ArgumentHelp("Subscribing clients.", valueName: "n")) var subscribers = 10
        @Option(help: ArgumentHelp("Rooms; client i uses room i mod N.", valueName: "n")) var rooms = 1
        @Option(help: ArgumentHelp("Messages in all (over all publishers).", valueName: "n")) var messages = 10000
        @Option(help: ArgumentHelp("Message body size in bytes.", valueName: "bytes")) var size = 128
        @Option(help: ArgumentHelp("Messages per second over all publishers; 0 = as fast as acks allow.", valueName: "per-second")) var rate: Double = 0
        @Option(help: ArgumentHelp("Publish for this long instead of --messages.", valueName: "duration")) var duration: DurationArgument?
        @Flag(help: "Do not ask for permessage-deflate.") var noCompression = false
        @OptionGroup var tls: CACertOption
        @Flag(help: "Print the report as one JSON object.") var json = false

        func validate() throws {
            if server != nil && servers != nil { throw ValidationError("give --server or --servers, not both") }
            guard publishers >= 1, subscribers >= 0, rooms >= 1 else {
                throw ValidationError("need at least 1 publisher and 1 room, and 0 or more subscribers")
            }
            guard messages >= 1 else { throw ValidationError("--messages must be at least 1") }
            guard size >= 32 && size <= 16 << 20 else { throw ValidationError("--size must be 32…16777216 (the probe header needs 32 bytes)") }
            guard rate >= 0 else { throw ValidationError("--rate must be >= 0") }
        }

        func run() async throws {
            try await runMapped {
                var logger = Logger(label: "imctl.bench")
                logger.logLevel = .error
                let runID = String(UInt32.random(in: 0...UInt32.max), radix: 36)
                let urls = servers.map { $0.split(separator: ",").map(String.init) } ?? server.map { [$0] }
                let showProgress = Terminal.draws(on: 2)
                let progress: @Sendable (LoadProgress) -> Void = { p in
                    guard showProgress else { return }
                    let fraction = p.expected > 0 ? min(Double(p.delivered) / Double(p.expected), 1) : 0
                    let filled = Int(fraction * 30)
                    Output.write(2, "\r[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: 30 - filled))] "
                        + "sent \(p.sent)  acked \(p.acked)  delivered \(p.delivered)/\(p.expected)   ")
                }
                let report: LoadReport
                if let urls {
                    let token = try self.token.resolved(for: urls[0])
                        ?? { throw ClientError(.unauthorized, "no token for \(urls[0]): give --token, set IMCTL_TOKEN or run imctl login") }()
                    report = try await LoadGenerator(configuration: load(servers: urls, token: token, runID: runID), logger: logger)
                        .run(progress: progress)
                } else {
                    report = try await withInProcessServer(logger: logger) { url, token in
                        try await LoadGenerator(configuration: load(servers: [url], token: token, runID: runID), logger: logger)
                            .run(progress: progress)
                    }
                }
                if showProgress { Output.write(2, "\n") }
                print(report)
                if report.lost > 0 || report.duplicated > 0 {
                    Output.error("\(report.lost) lost and \(report.duplicated) duplicated deliveries")
                    throw ExitCode(1)
                }
            }
        }

        private func load(servers: [String], token: String, runID: String) -> LoadConfiguration {
            LoadConfiguration(servers: servers, balance: balance, token: token, publishers: publishers, subscribers: subscribers, rooms: rooms,
                              messages: messages, size: size, rate: rate, duration: duration?.duration, compression: !noCompression,
                              roomPrefix: "bench-\(runID)", caCertificatePath: tls.resolved)
        }

        /// Starts a server on a free loopback port with a temporary store and one bench user.
        private func withInProcessServer(logger: Logger, _ body: (String, String) async throws -> LoadReport) async throws -> LoadReport {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-bench-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: dir) }
            let store = try await SQLiteStore.open(path: dir.appendingPathComponent("bench.db").path)
            _ = try await store.createUser(name: "bench", passwordHash: "!", isAdmin: false)  // signs in by token only
            let token = Credentials.newToken()
            _ = try await store.createToken(user: "bench", tokenHash: Credentials.tokenHash(token), label: "bench", expiresAt: nil)
            let server: BackgroundServer
            do {
                server = try await BackgroundServer.start(ServerConfiguration(host: "127.0.0.1", port: 0, compression: !noCompression),
                                                          store: store, logger: logger)
            } catch {
                try? await store.close()
                throw ClientError(.server, "\(error)")
            }
            do {
                let report = try await body(server.url, token)
                try? await server.stop()
                try? await store.close()
                return report
            } catch {
                try? await server.stop()
                try? await store.close()
                throw error
            }
        }

        private func print(_ r: LoadReport) {
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                Output.line(String(decoding: (try? encoder.encode(r)) ?? Data("{}".utf8), as: UTF8.self))
                return
            }
            func f(_ v: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", v) }
            let l = r.latencyMs
            Output.line("""
                clients      \(r.publishers) publishers, \(r.subscribers) subscribers, \(r.rooms) room\(r.rooms == 1 ? "" : "s"), \(r.size)-byte messages
                connect      median \(f(r.connectMsMedian)) ms, max \(f(r.connectMsMax)) ms
                publish      \(r.acked) acked in \(f(r.publishSeconds, 2)) s: \(f(r.publishRate, 0)) msgs/s
                delivery     \(r.delivered) of \(r.expected) in \(f(r.deliverySeconds, 2)) s: \(f(r.deliveryRate, 0)) msgs/s, \(f(r.deliveryMBps, 2)) MB/s
                per client   \(f(r.perSubscriberRateMin, 0))–\(f(r.perSubscriberRateMax, 0)) msgs/s
                latency ms   p50 \(f(l["p50"] ?? 0, 2))  p90 \(f(l["p90"] ?? 0, 2))  p99 \(f(l["p99"] ?? 0, 2))  p99.9 \(f(l["p99.9"] ?? 0, 2))  max \(f(l["max"] ?? 0, 2))
                lost         \(r.lost)
                duplicated   \(r.duplicated)
                """)
        }
    }
}
