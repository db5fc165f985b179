import ArgumentParser
import IMClient
import IMWire
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

extension IMCtl {
    /// `imctl listen [TARGET…]`.
    struct Listen: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "listen",
            abstract: "Print messages of rooms and @user conversations as they arrive (every direct conversation when no target).",
            discussion: "Text lines are `TS ROOM FROM: BODY`; --json prints id, room, seq, from, ts, body per line.")

        @Argument(help: "Rooms and @user conversations to follow.", completion: ConversationCompletion.kind) var targets: [String] = []
        @Flag(help: "One JSON object per message.") var json = false
        @Option(help: ArgumentHelp("Template with {id} {room} {seq} {from} {ts} {body}.", valueName: "template")) var format: String?
        @Option(name: [.customShort("n"), .long], help: ArgumentHelp("Exit 0 after this many messages.", valueName: "n")) var count: Int?
        @Option(help: ArgumentHelp("End after this long without a message (exit 75 if --count was not reached).", valueName: "duration"))
        var timeout: DurationArgument?
        @Option(help: ArgumentHelp("First print stored messages after this seq (one target).", valueName: "seq")) var since: Int64?
        @Option(help: ArgumentHelp("First print the last N stored messages of each target.", valueName: "n")) var history: Int?
        @Flag(help: "On a lost connection exit 69 instead of reconnecting.") var noReconnect = false
        @OptionGroup var client: ClientOptions

        func validate() throws {
            for t in targets {
                do { _ = try Target(parsing: t) } catch { throw ValidationError(error.message) }
            }
            if json && format != nil { throw ValidationError("give --json or --format, not both") }
            if let format { do { _ = try OutputTemplate(format) } catch { throw ValidationError(error.message) } }
            if let count, count < 1 { throw ValidationError("--count must be at least 1") }
            if since != nil && history != nil { throw ValidationError("give --since or --history, not both") }
            if since != nil && targets.count != 1 { throw ValidationError("--since needs exactly one target") }
            if let since, since < 0 { throw ValidationError("--since must be >= 0") }
            if let history, history < 0 { throw ValidationError("--history must be >= 0") }
            if history != nil && targets.isEmpty { throw ValidationError("--history needs at least one target") }
        }

        func run() async throws {
            try await runMapped {
                let configuration = try client.configuration(reconnect: !noReconnect)
                var logger = Logger(label: "imctl.listen")
                logger.logLevel = .warning
                let scopes: [Subscription.Scope] = try targets.isEmpty ? [.allDirect] : targets.map { .target(try Target(parsing: $0)) }
                let start: Subscription.Start = since.map { .afterSeq($0) } ?? history.map { .last($0) } ?? .live
                let listener = Listener(configuration: configuration, scopes: scopes, start: start, logger: logger)
                let render: @Sendable (MessageView) -> String
                if json {
                    render = Self.jsonLine
                } else if let format {
                    let template = try OutputTemplate(format)
                    render = { template.render($0) }
                } else if Terminal.draws(on: 1) {
                    render = Terminal.colouredLine
                } else {
                    render = OutputTemplate.textLine
                }
                let limit = count
                let progress = Progress()
                let idle = timeout?.duration
                let timedOut = try await withThrowingTaskGroup(of: Bool.self) { group in
                    group.addTask {
                        try await listener.run { message in
                            Output.line(render(message))
                            progress.lastActivity.store(Self.now(), ordering: .relaxed)
                            let n = progress.printed.add(1, ordering: .relaxed).newValue
                            return limit.map { n < $0 } ?? true
                        }
                        return false
                    }
                    if let idle {
                        group.addTask {
                            let limitNanos = idle.milliseconds * 1_000_000
                            while true {
                                let quiet = Self.now() - progress.lastActivity.load(ordering: .relaxed)
                                if quiet >= limitNanos { return true }
                                try await Task.sleep(for: .nanoseconds(min(limitNanos - quiet, 50_000_000)))
                            }
                        }
                    }
                    let result = try await group.next() ?? false
                    group.cancelAll()
                    return result
                }
                if timedOut, let limit, progress.printed.load(ordering: .relaxed) < limit {
                    throw ClientError(.timeout, "timed out after \(idle!) with \(progress.printed.load(ordering: .relaxed)) of \(limit) messages")
                }
            }
        }

        /// Monotonic nanoseconds.
        static func now() -> Int64 { Timestamp.monotonicNanos() }

        /// The `--json` line: `id`, `room`, `seq`, `from`, `ts`, `body`. The CLI's promise, written here so
        /// that a field added to the wire's `msg` frame does not change it.
        static func jsonLine(_ m: MessageView) -> String {
            var w = JSONObjectWriter()
            w.add("id", m.id); w.add("room", m.room); w.add("seq", m.seq); w.add("from", m.from); w.add("ts", m.ts); w.add("body", m.body)
            return w.finish()
        }

        /// Messages printed and when the last arrived, shared with the idle watchdog.
        final class Progress: Sendable {
            let printed = Atomic<Int>(0)
            let lastActivity = Atomic<Int64>(Timestamp.monotonicNanos())
        }
    }
}
