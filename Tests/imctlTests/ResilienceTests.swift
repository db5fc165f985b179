import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Durability and reconnection: server crashes (kill -9), restarts, graceful stops.
@Suite struct ResilienceTests {
    @Test func everyAckedMessageSurvivesKill9OfTheServer() async throws {
        try await withSandbox { sb in
            let server = try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let input = (1...5000).map { "durable \($0)" }.joined(separator: "\n") + "\n"
            let sent = try await sb.imctl(["send", "vault", "--lines", "--json", "--token", alice], stdin: Data(input.utf8),
                                          timeout: .seconds(60))
            // Crash the server the moment send has exited.
            await server.kill9()
            #expect(sent.status == 0, "\(sent)")
            let acks = try sent.jsonLines()
            #expect(acks.count == 5000)
            #expect(sequenceMismatch(acks.map { $0.int("seq") ?? -1 }, Array(1...5000)) == nil)

            try await server.restart()
            let r = try await sb.imctl("listen", "vault", "--since", "0", "--count", "5000", "--json", "--timeout", "10s",
                                       "--token", alice, timeout: .seconds(60))
            #expect(r.status == 0, "\(r.err)")
            let messages = try r.jsonLines()
            #expect(sequenceMismatch(messages.map { $0.int("seq") ?? -1 }, acks.map { $0.int("seq") ?? -2 }) == nil)
            #expect(sequenceMismatch(messages.map { $0.int("id") ?? -1 }, acks.map { $0.int("id") ?? -2 }) == nil)
            #expect(sequenceMismatch(messages.map { $0.string("ts") ?? "" }, acks.map { $0.string("ts") ?? "?" }) == nil)
            #expect(sequenceMismatch(messages.map { $0.string("body") ?? "" }, (1...5000).map { "durable \($0)" }) == nil)
        }
    }

    @Test func aListenerSurvivesServerRestartsAndPrintsEveryMessageOnce() async throws {
        try await withSandbox { sb in
            let server = try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let port = server.port
            let listener = try sb.spawn(["listen", "ops", "--since", "0", "--count", "90", "--format", "{seq} {body}",
                                         "--token", alice])
            func send(_ range: ClosedRange<Int>) async throws {
                let r = try await sb.imctl("send", "ops", "--lines", "--token", alice, stdin: numberedLines(range))
                #expect(r.status == 0, "send \(range): \(r)")
            }
            try await send(1...30)
            #expect(await listener.waitForLines(30, timeout: .seconds(20)), "\(listener.out) \(listener.err)")

            // A graceful stop: SIGTERM ends the server with exit 0.
            let stopped = try #require(await server.terminate(), "server did not stop on SIGTERM")
            #expect(stopped.status == 0 && !stopped.signaled, "\(stopped)")
            try await Task.sleep(for: .milliseconds(300))
            #expect(listener.isRunning, "the listener keeps trying: \(listener.err)")
            try await server.restart()
            #expect(server.port == port)
            try await send(31...60)
            #expect(await listener.waitForLines(60, timeout: .seconds(30)), "\(listener.out) \(listener.err)")

            // A crash.
            await server.kill9()
            try await server.restart()
            try await send(61...90)

            let done = await listener.finish(timeout: .seconds(30))
            #expect(done.status == 0, "\(done)")
            #expect(sequenceMismatch(done.lines, (1...90).map { "\($0) \($0)" }) == nil, "every message once, in order")
        }
    }

    @Test func aSenderReconnectsAndResendsWithoutLossOrDuplicates() async throws {
        try await withSandbox { sb in
            let server = try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let sender = try sb.spawn(["send", "relay", "--lines", "--json", "--token", alice], stdin: .pipe)
            sender.write(numberedLines(1...400))
            #expect(await sender.waitForLines(100, timeout: .seconds(30)), "\(sender.err)")
            await server.kill9()
            // More input while the server is down, then the server comes back.
            sender.write(numberedLines(401...800))
            try await Task.sleep(for: .milliseconds(200))
            try await server.restart()
            sender.write(numberedLines(801...1000))
            sender.closeStdin()
            let sent = await sender.finish(timeout: .seconds(60))
            #expect(sent.status == 0, "\(sent)")
            let acks = try sent.jsonLines()
            #expect(sequenceMismatch(acks.map { $0.int("seq") ?? -1 }.sorted(), Array(1...1000)) == nil, "one ack per message")

            let r = try await sb.imctl("listen", "relay", "--since", "0", "--json", "--timeout", "1500ms", "--token", alice)
            #expect(r.status == 0, "\(r.err)")
            let messages = try r.jsonLines()
            #expect(sequenceMismatch(messages.map { $0.int("seq") ?? -1 }, Array(1...1000)) == nil)
            #expect(sequenceMismatch(messages.map { $0.string("body") ?? "" }, (1...1000).map(String.init)) == nil,
                    "nothing lost, nothing doubled")
        }
    }

    /// `--no-reconnect`: the server dies mid-stream, more input follows; send exits 69 after printing the acks it
    /// got, and those are all stored. `stdinStaysOpen`: the input is a live stream (`tail -f log | imctl send …`)
    /// that has not ended when the connection goes.
    @Test(arguments: [false, true])
    func sendWithNoReconnectExits69WhenTheServerDiesMidStream(stdinStaysOpen: Bool) async throws {
        try await withSandbox { sb in
            let server = try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let sender = try sb.spawn(["send", "fragile", "--lines", "--json", "--no-reconnect", "--token", alice], stdin: .pipe)
            defer { sender.closeStdin() }
            sender.write(numberedLines(1...300))
            #expect(await sender.waitForLines(300, timeout: .seconds(30)), "\(sender.err)")
            await server.kill9()
            // The stream goes on: these cannot be delivered.
            sender.write(numberedLines(301...600))
            if !stdinStaysOpen { sender.closeStdin() }
            let r = await sender.finish(timeout: .seconds(15))
            #expect(r.status == 69 && !r.signaled, "\(r)")
            #expect(r.err.contains("300"), "names how many were acknowledged: \(r.err)")
            // The acks it printed are all stored.
            let acks = try r.jsonLines()
            #expect(acks.count >= 300)
            try await server.restart()
            let stored = try await sb.imctl("listen", "fragile", "--since", "0", "--json", "--timeout", "1s", "--token", alice)
            #expect(stored.status == 0, "\(stored.err)")
            let ids = try stored.jsonLines().map { $0.int("id") ?? -1 }
            #expect(sequenceMismatch(Array(ids.prefix(acks.count)), acks.map { $0.int("id") ?? -2 }) == nil)
        }
    }

    /// A live input stream (stdin still open) across a server crash and restart: everything written is
    /// delivered, and when the input ends send exits 0.
    @Test func aStreamingSenderFinishesOnceItsInputEndsAfterAServerRestart() async throws {
        try await withSandbox { sb in
            let server = try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let sender = try sb.spawn(["send", "tail", "--lines", "--json", "--token", alice], stdin: .pipe)
            defer { sender.closeStdin() }
            sender.write(numberedLines(1...300))
            #expect(await sender.waitForLines(300, timeout: .seconds(30)), "\(sender.err)")
            await server.kill9()
            try await server.restart()
            sender.write(numberedLines(301...600))
            #expect(await sender.waitForLines(600, timeout: .seconds(30)), "acks \(sender.lines.count): \(sender.err)")
            sender.closeStdin()
            let r = await sender.finish(timeout: .seconds(15))
            #expect(r.status == 0 && !r.signaled, "send must exit once its input ended and all is acknowledged: \(r)")
            let stored = try await sb.imctl("listen", "tail", "--since", "0", "--format", "{body}", "--timeout", "1s",
                                            "--token", alice)
            #expect(sequenceMismatch(stored.lines, (1...600).map(String.init)) == nil)
        }
    }

    @Test func listenWithNoReconnectExits69WhenTheServerGoesAway() async throws {
        try await withSandbox { sb in
            let server = try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let listener = try sb.spawn(["listen", "quiet", "--since", "0", "--no-reconnect", "--token", alice])
            let r = try await sb.imctl("send", "quiet", "one", "--token", alice)
            #expect(r.status == 0, "\(r)")
            #expect(await listener.waitForLines(1, timeout: .seconds(20)), "\(listener.err)")
            await server.kill9()
            let done = await listener.finish(timeout: .seconds(20))
            #expect(done.status == 69, "\(done)")
        }
    }
}
