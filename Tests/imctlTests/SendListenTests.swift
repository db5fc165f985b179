import Foundation
import Testing

/// `imctl send` and `imctl listen` between separate processes, through a real `imctl serve`.
@Suite struct SendListenTests {
    /// Sends probe messages until every live listener has printed something, so that what is sent
    /// next is known to go to subscribed listeners. Returns how many probes were sent.
    @discardableResult
    static func probe(_ sb: Sandbox, _ target: String, token: String, until listeners: [Child],
                      sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(20)
        var sent = 0
        while !listeners.allSatisfy({ !$0.lines.isEmpty }) {
            try #require(ContinuousClock.now < deadline, "listeners never printed a probe: \(listeners.map(\.err))",
                         sourceLocation: sourceLocation)
            for l in listeners {
                try #require(l.isRunning, "listener \(l.arguments) exited: \(l.err)", sourceLocation: sourceLocation)
            }
            sent += 1
            let r = try await sb.imctl(["send", target, "probe \(sent)", "--token", token])
            try #require(r.status == 0, "probe send: \(r)", sourceLocation: sourceLocation)
            _ = await listeners[0].waitUntil(timeout: .milliseconds(300)) { _ in listeners.allSatisfy { !$0.lines.isEmpty } }
        }
        return sent
    }

    @Test func messagesFromArgumentsStdinLinesAndNulReachLiveListenersInEveryFormat() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let text = try sb.spawn(["listen", "lobby", "--token", alice])
            let json = try sb.spawn(["listen", "lobby", "--json", "--token", alice])
            let format = try sb.spawn(["listen", "lobby", "--format", "{seq} {from} {body}", "--token", alice])
            let probes = try await Self.probe(sb, "lobby", token: alice, until: [text, json, format])

            // MESSAGE words are joined with single spaces.
            var r = try await sb.imctl("send", "lobby", "hello", "big  world", "--token", alice)
            #expect(r.status == 0, "\(r)")
            #expect(r.out.isEmpty, "send without --json prints nothing on stdout: \(r.out)")
            // Whole stdin is one message: one trailing newline dropped, inner newlines kept.
            r = try await sb.imctl("send", "lobby", "--token", alice, stdin: "line one\nline two\n")
            #expect(r.status == 0, "\(r)")
            r = try await sb.imctl("send", "lobby", "--token", alice, stdin: "ends with blank\n\n")
            #expect(r.status == 0, "\(r)")
            // --lines: each non-empty line, in order; --json prints one ack each.
            let lines = try await sb.imctl("send", "lobby", "--lines", "--json", "--token", alice,
                                           stdin: "first\n\nsecond\n\n\nthird")
            #expect(lines.status == 0, "\(lines)")
            // --null: split on NUL, newlines inside kept.
            let nul = try await sb.imctl(["send", "lobby", "-0", "--json", "--token", alice],
                                         stdin: Data("n1\0n2 with\nnewline\0".utf8))
            #expect(nul.status == 0, "\(nul)")

            let expectedBodies = ["hello big  world", "line one\nline two", "ends with blank\n", "first", "second", "third",
                                  "n1", "n2 with\nnewline"]
            // Each listener subscribed at its own moment, so each saw some of the probes, then everything else.
            for l in [text, json, format] {
                #expect(await l.waitUntil(timeout: .seconds(20)) { $0.out.contains("n2 with") && $0.out.hasSuffix("newline\n") || $0.out.hasSuffix("newline\"}\n") },
                        "listener \(l.arguments) got \(l.out.debugDescription)")
            }

            // JSON: every field; seq 1, 2, 3 …; after the probes, the bodies in order.
            let all = try parseJSONLines(json.out)
            #expect(all.map { $0.int("seq") ?? -1 } == Array((probes + expectedBodies.count - all.count + 1)...(probes + expectedBodies.count)))
            #expect(all.prefix { $0.string("body")!.hasPrefix("probe ") }.count == all.count - expectedBodies.count)
            let messages = Array(all.suffix(expectedBodies.count))
            #expect(messages.map { $0.string("body") } == expectedBodies)
            for m in all {
                #expect(Set(m.keys) == ["id", "room", "seq", "from", "ts", "body"], "\(m)")
                #expect(m.string("room") == "lobby")
                #expect(m.string("from") == "alice")
                #expect(m.int("id") != nil)
                #expect(isServerTimestamp(m.string("ts") ?? ""), "\(m)")
            }
            #expect(Set(messages.compactMap { $0.int("id") }).count == expectedBodies.count, "ids are unique")

            // Acks of send --json: id, room, seq, ts; they match the listener's messages.
            let acks = try lines.jsonLines() + nul.jsonLines()
            try #require(acks.count == 5, "\(lines) \(nul)")
            for (ack, message) in zip(acks, messages.suffix(5)) {
                #expect(Set(ack.keys).isSuperset(of: ["id", "room", "seq", "ts"]), "\(ack)")
                #expect(ack.int("id") == message.int("id"), "\(ack) vs \(message)")
                #expect(ack.string("room") == "lobby")
                #expect(ack.int("seq") == message.int("seq"))
                #expect(ack.string("ts") == message.string("ts"))
            }

            // Text: `TS ROOM FROM: BODY`, newlines in the body written as \n, one line per message.
            let textLines = text.lines.drop { $0.contains(" lobby alice: probe ") }
            #expect(Array(textLines) == messages.map { m in
                "\(m.string("ts")!) lobby alice: \(m.string("body")!.replacingOccurrences(of: "\n", with: "\\n"))"
            })
            #expect(textLines.contains { $0.hasSuffix(" lobby alice: line one\\nline two") }, "\(text.out)")
            #expect(text.lines.allSatisfy { isServerTimestamp(String($0.prefix { $0 != " " })) }, "\(text.out)")

            // --format: the template, once per message (bodies as they are).
            let formatted = format.lines.drop { $0.wholeMatch(of: /\d+ alice probe \d+/) != nil }.joined(separator: "\n") + "\n"
            #expect(formatted == messages.map { "\($0.int("seq")!) alice \($0.string("body")!)\n" }.joined())
        }
    }

    @Test func seqIsGapFreePerConversationWithInterleavedAndConcurrentSenders() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let t = try await sb.users("alice", "bob")
            // Two rooms, interleaved one message at a time.
            for i in 1...6 {
                for room in ["red", "blue"] {
                    let r = try await sb.imctl("send", room, "\(room) \(i)", "--json", "--token", i % 2 == 0 ? t["alice"]! : t["bob"]!)
                    #expect(r.status == 0, "\(r)")
                    #expect(try r.jsonLines().first?.int("seq") == i, "\(room) \(i): \(r.out)")
                }
            }
            // Then two senders at once into each room, streaming lines.
            var senders: [(room: String, who: String, child: Child)] = []
            for room in ["red", "blue"] {
                for who in ["alice", "bob"] {
                    let input = (1...300).map { "\(who) \($0)" }.joined(separator: "\n") + "\n"
                    senders.append((room, who, try sb.spawn(["send", room, "--lines", "--json", "--token", t[who]!],
                                                            stdin: .data(Data(input.utf8)))))
                }
            }
            for s in senders {
                let r = await s.child.finish(timeout: .seconds(60))
                #expect(r.status == 0, "\(s.room) \(s.who): \(r)")
                let seqs = try r.jsonLines().compactMap { $0.int("seq") }
                #expect(seqs.count == 300)
                #expect(seqs == seqs.sorted(), "one sender's acks come in seq order")
                #expect(Set(seqs).count == 300)
            }
            for room in ["red", "blue"] {
                let r = try await sb.imctl("listen", room, "--since", "0", "--count", "606", "--json", "--timeout", "10s",
                                           "--token", t["alice"]!)
                #expect(r.status == 0, "\(r)")
                let messages = try r.jsonLines()
                #expect(sequenceMismatch(messages.map { $0.int("seq") ?? -1 }, Array(1...606)) == nil, "\(room): seq 1…606 with no gap")
                #expect(messages.prefix(6).compactMap { $0.string("body") } == (1...6).map { "\(room) \($0)" })
                for who in ["alice", "bob"] {
                    let mine = messages.dropFirst(6).filter { $0.string("from") == who }.compactMap { $0.string("body") }
                    #expect(sequenceMismatch(mine, (1...300).map { "\(who) \($0)" }) == nil, "\(room): \(who)'s lines in order, once")
                }
            }
        }
    }

    @Test func sinceReplaysThenFollowsLiveWithNoGapOrDuplicateAtTheSeam() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            // A sender streaming lines, fed by the test so the listeners start while it is mid-stream.
            let sender = try sb.spawn(["send", "stream", "--lines", "--json", "--token", alice], stdin: .pipe)
            sender.write(numberedLines(1...1000))
            #expect(await sender.waitForLines(300, timeout: .seconds(30)), "acks: \(sender.lines.count) \(sender.err)")
            let fromStart = try sb.spawn(["listen", "stream", "--since", "0", "--count", "2000", "--format", "{seq} {body}",
                                          "--token", alice])
            let fromMiddle = try sb.spawn(["listen", "stream", "--since", "700", "--count", "1300", "--json", "--token", alice])
            // Keep the stream flowing while the listeners connect and catch up.
            for chunk in stride(from: 1001, through: 2000, by: 25) {
                sender.write(numberedLines(chunk...(chunk + 24)))
                try await Task.sleep(for: .milliseconds(8))
            }
            sender.closeStdin()
            let sent = await sender.finish(timeout: .seconds(60))
            #expect(sent.status == 0, "\(sent)")
            #expect(sequenceMismatch(try sent.jsonLines().map { $0.int("seq") ?? -1 }, Array(1...2000)) == nil)

            let a = await fromStart.finish(timeout: .seconds(30))
            #expect(a.status == 0, "\(a)")
            #expect(sequenceMismatch(a.lines, (1...2000).map { "\($0) \($0)" }) == nil, "exactly 1…2000 once, in order")
            let b = await fromMiddle.finish(timeout: .seconds(30))
            #expect(b.status == 0, "\(b)")
            let bodies = try b.jsonLines().compactMap { $0.string("body") }
            #expect(sequenceMismatch(bodies, (701...2000).map(String.init)) == nil, "exactly 701…2000 once, in order")
        }
    }

    @Test func historyPrintsTheLastNThenFollowsLive() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let r = try await sb.imctl("send", "hist", "--lines", "--token", alice, stdin: numberedLines(1...50))
            #expect(r.status == 0, "\(r)")
            let listener = try sb.spawn(["listen", "hist", "--history", "5", "--count", "8", "--format", "{seq}:{body}",
                                         "--token", alice])
            #expect(await listener.waitForLines(5, timeout: .seconds(20)), "\(listener.out) \(listener.err)")
            #expect(listener.lines == (46...50).map { "\($0):\($0)" })
            let more = try await sb.imctl("send", "hist", "--lines", "--token", alice, stdin: "x\ny\nz\n")
            #expect(more.status == 0, "\(more)")
            let done = await listener.finish(timeout: .seconds(20))
            #expect(done.status == 0, "\(done)")
            #expect(done.lines == (46...50).map { "\($0):\($0)" } + ["51:x", "52:y", "53:z"])
        }
    }

    @Test func directMessagesAreReadableByTheirTwoUsersOnly() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let t = try await sb.users("alice", "bob", "carol")
            // Bob follows all his direct conversations (no target) before anything is sent.
            let bobAll = try sb.spawn(["listen", "--json", "--token", t["bob"]!])
            let carolAll = try sb.spawn(["listen", "--json", "--token", t["carol"]!])
            let probes = try await Self.probe(sb, "@bob", token: t["alice"]!, until: [bobAll])

            var r = try await sb.imctl("send", "@bob", "secret for bob", "--json", "--token", t["alice"]!)
            #expect(r.status == 0, "\(r)")
            let ack = try #require(try r.jsonLines().first)
            #expect(ack.int("seq") == probes + 1)
            #expect(await bobAll.waitUntil(timeout: .seconds(20)) { $0.out.contains("secret for bob") }, "\(bobAll.out) \(bobAll.err)")
            let live = try #require(try parseJSONLines(bobAll.out).last)
            #expect(live.string("room") == "@alice", "bob sees the conversation as @alice: \(live)")
            #expect(live.string("from") == "alice")
            #expect(live.string("body") == "secret for bob")

            // Bob reading @alice gets it, with room @alice.
            r = try await sb.imctl("listen", "@alice", "--since", "0", "--json", "--timeout", "1s", "--token", t["bob"]!)
            #expect(r.status == 0, "\(r)")
            let bobView = try r.jsonLines()
            #expect(bobView.count == probes + 1)
            #expect(bobView.allSatisfy { $0.string("room") == "@alice" }, "\(r.out)")
            #expect(bobView.last?.string("body") == "secret for bob")
            // Alice sees it too, as @bob.
            r = try await sb.imctl("listen", "@bob", "--since", "0", "--count", "\(probes + 1)", "--json", "--timeout", "5s",
                                   "--token", t["alice"]!)
            #expect(r.status == 0, "\(r)")
            #expect(try r.jsonLines().last?.string("room") == "@bob")
            #expect(try r.jsonLines().last?.string("body") == "secret for bob")

            // Carol: @alice and @bob are her own (empty) conversations with them.
            for peer in ["@alice", "@bob"] {
                r = try await sb.imctl("listen", peer, "--since", "0", "--json", "--timeout", "1s", "--token", t["carol"]!)
                #expect(r.status == 0, "\(r)")
                #expect(r.out.isEmpty, "carol must not read alice↔bob via \(peer): \(r.out)")
            }
            // A message in carol's own conversation shows up for her, in place of nothing.
            r = try await sb.imctl("send", "@carol", "hi carol", "--token", t["bob"]!)
            #expect(r.status == 0, "\(r)")
            r = try await sb.imctl("listen", "@bob", "--since", "0", "--json", "--count", "1", "--timeout", "5s", "--token", t["carol"]!)
            #expect(r.status == 0, "\(r)")
            #expect(try r.jsonLines().map { $0.string("body") } == ["hi carol"])
            #expect(try r.jsonLines().first?.int("seq") == 1, "carol↔bob is its own conversation")
            // Her all-conversations listener got only that one.
            #expect(await carolAll.waitForLines(1, timeout: .seconds(10)))
            try await Task.sleep(for: .milliseconds(300))
            #expect(try parseJSONLines(carolAll.out).map { $0.string("body") } == ["hi carol"], "\(carolAll.out)")
        }
    }
}
