import ArgumentParser
import IMClient
import IMWire
import Logging

extension IMCtl {
    /// `imctl send TARGET [MESSAGE…]`.
    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "send",
            _superCommandName: "imctl",
            abstract: "Send a message to a room or @user: from arguments, or from stdin (whole, per line, or per NUL).",
            discussion: "Exits 0 only when every message is acknowledged, that is, stored durably by the server.")

        @Argument(help: "A room name, or @user for a direct message.", completion: ConversationCompletion.kind) var target: String
        @Argument(help: "The message; words are joined with single spaces. Without it, stdin is read.") var message: [String] = []
        @Flag(name: [.short, .long], help: "Send each non-empty line of stdin as its own message.") var lines = false
        @Flag(name: [.customShort("0"), .long], help: "Split stdin on NUL bytes.") var null = false
        @Flag(help: "Print one JSON ack per message (id, room, seq, ts).") var json = false
        @Flag(help: "On a lost connection exit 69 instead of reconnecting and resending.") var noReconnect = false
        @Option(help: ArgumentHelp("Give up (exit 75) when not done within this time, e.g. 10s.", valueName: "duration"))
        var timeout: DurationArgument?
        @OptionGroup var client: ClientOptions

        /// How long `send` keeps trying to get back to a lost server before it exits 69.
        static let reconnectWindow: Duration = .seconds(60)

        func validate() throws {
            do { _ = try Target(parsing: target) } catch { throw ValidationError(error.message) }
            if lines && null { throw ValidationError("give --lines or --null, not both") }
            if !message.isEmpty && (lines || null) { throw ValidationError("--lines and --null split stdin; do not give MESSAGE words with them") }
        }

        func run() async throws {
            try await runMapped {
                let target = try Target(parsing: self.target)
                var configuration = try client.configuration(reconnect: !noReconnect)
                // A script should not hang forever on a server that is gone for good.
                configuration.reconnectWindow = Self.reconnectWindow
                var logger = Logger(label: "imctl.send")
                logger.logLevel = .warning
                let sender = Sender(configuration: configuration, target: target, logger: logger)
                let json = self.json
                let onAck: @Sendable (Ack) -> Void = { ack in
                    if json { Output.line(ack.jsonLine()) }
                }
                let mode: MessageSplitter.Mode = lines ? .lines : (null ? .null : .whole)
                let words = message
                let start = ContinuousClock.now
                let body = words.joined(separator: " ")
                if !words.isEmpty {
                    // One message from arguments: one HTTP request first (most of a shell loop's time otherwise
                    // goes to setting up a WebSocket); whatever it did not get done goes the full way below,
                    // with the same client id.
                    let limit = min(timeout?.duration ?? configuration.signInTimeout, configuration.signInTimeout)
                    switch OneShotPost.send(configuration, target: target, body: body, clientID: sender.clientID(ofMessage: 1),
                                            deadline: start + limit) {
                    case .acked(let ack):
                        onAck(ack)
                        return
                    case .notDone(let reason):
                        logger.debug("one-shot post not done (\(reason)); sending over the WebSocket")
                    }
                }
                try await withDeadline(timeout?.duration, from: start, what: "sending") {
                    if words.isEmpty {
                        _ = try await sender.run(source: StdinSource(mode: mode), onAck: onAck)
                    } else {
                        _ = try await sender.run(source: ListSource([body]), onAck: onAck)
                    }
                }
            }
        }
    }
}

/// Runs `body`, failing with a timeout (exit 75) when it is not done within `limit` of `start`.
func withDeadline(_ limit: Duration?, from start: ContinuousClock.Instant = .now, what: String,
                  _ body: @escaping @Sendable () async throws -> Void) async throws {
    guard let limit else {
        try await body()
        return
    }
    if ContinuousClock.now >= start + limit { throw ClientError(.timeout, "timed out after \(limit) \(what)") }
    try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            try await body()
            return true
        }
        group.addTask {
            try await Task.sleep(until: start + limit)
            return false
        }
        let finished = try await group.next() ?? false
        group.cancelAll()
        if !finished { throw ClientError(.timeout, "timed out after \(limit) \(what)") }
    }
}
