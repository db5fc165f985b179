import Foundation
import Testing
@testable import IMWire

@Suite struct MessageSplitterTests {
    /// Splits `input` fed in pieces of `chunk` bytes.
    func split(_ input: [UInt8], _ mode: MessageSplitter.Mode, chunk: Int) -> [String] {
        var s = MessageSplitter(mode: mode)
        var out: [[UInt8]] = []
        var i = 0
        while i < input.count {
            out += s.feed(input[i..<min(i + chunk, input.count)])
            i += chunk
        }
        out += s.finish()
        return out.map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every way of cutting the input gives the same messages.
    func check(_ text: String, _ mode: MessageSplitter.Mode, _ expected: [String]) {
        let input = Array(text.utf8)
        for chunk in 1...max(1, input.count) {
            #expect(split(input, mode, chunk: chunk) == expected, "chunk \(chunk)")
        }
        // Split at every single offset into two pieces.
        for cut in 0...input.count {
            var s = MessageSplitter(mode: mode)
            var out = s.feed(input[0..<cut])
            out += s.feed(input[cut...])
            out += s.finish()
            #expect(out.map { String(decoding: $0, as: UTF8.self) } == expected, "cut \(cut)")
        }
    }

    @Test func wholeDropsOneTrailingNewline() {
        check("hello\nworld\n", .whole, ["hello\nworld"])
        check("hello\n\n", .whole, ["hello\n"])
        check("no newline", .whole, ["no newline"])
        check("", .whole, [""])
    }

    @Test func linesSkipsEmptyAndCR() {
        check("a\nb\n\nc\r\nd", .lines, ["a", "b", "c", "d"])
        check("\n\n", .lines, [])
        check("é😀\nx\n", .lines, ["é😀", "x"])
    }

    @Test func nullSplitsOnNUL() {
        check("a\nb\u{0}c\u{0}\u{0}d", .null, ["a\nb", "c", "d"])
        check("one\u{0}", .null, ["one"])
    }
}

@Suite struct SmallParsersTests {
    @Test func durations() {
        #expect(DurationText.parse("500ms") == .milliseconds(500))
        #expect(DurationText.parse("10s") == .seconds(10))
        #expect(DurationText.parse("5m") == .seconds(300))
        #expect(DurationText.parse("2h") == .seconds(7200))
        #expect(DurationText.parse("30d") == .seconds(30 * 86400))
        for bad in ["", "s", "10", "-5s", "1.5s", "10x", "ms", "5 s"] {
            #expect(DurationText.parse(bad) == nil, "\(bad)")
        }
    }

    @Test func names() {
        #expect(Names.isValidUser("alice"))
        #expect(Names.isValidUser("a1_b.c-d"))
        #expect(Names.isValidUser(String(repeating: "a", count: 32)))
        #expect(!Names.isValidUser(String(repeating: "a", count: 33)))
        #expect(!Names.isValidUser("Alice"))
        #expect(!Names.isValidUser("_a"))
        #expect(!Names.isValidUser(""))
        #expect(Names.isValidRoom(String(repeating: "r", count: 64)))
        #expect(!Names.isValidRoom(String(repeating: "r", count: 65)))
        #expect(!Names.isValidRoom("a:b"))
    }

    @Test func conversationKeys() {
        let ab = ConversationKey(target: .direct("bob"), user: "alice")
        let ba = ConversationKey(target: .direct("alice"), user: "bob")
        #expect(ab == ba)
        #expect(ab.label(for: "alice") == "@bob")
        #expect(ab.label(for: "bob") == "@alice")
        #expect(ab.admits("alice") && ab.admits("bob") && !ab.admits("carol"))
        #expect(ConversationKey(storageKey: ab.description) == ab)
        #expect(ConversationKey(storageKey: "general") == .room("general"))
    }

    @Test func templates() throws {
        let m = MessageView(id: 7, room: "general", seq: 3, from: "alice", ts: "2026-01-01T00:00:00.000Z", body: "hi\nthere")
        // A template keeps the body's newlines (it may want multi-line output); text lines write them out.
        #expect(try OutputTemplate("{seq}|{from}|{body}").render(m) == "3|alice|hi\nthere")
        #expect(try OutputTemplate("{id}\\t{room}").render(m) == "7\tgeneral")
        #expect(OutputTemplate.textLine(m) == "2026-01-01T00:00:00.000Z general alice: hi\\nthere")
        #expect(throws: OutputTemplate.Invalid.self) { try OutputTemplate("{nope}") }
    }

    /// No body can drive the reader's terminal: every control character is written out, in text and
    /// --format alike, and nothing else changes.
    @Test(arguments: [
        ("plain", "plain"),
        ("é😀 中文", "é😀 中文"),
        ("a\r\nb\nc\rd", "a\\nb\\nc\\rd"),
        ("tab\there", "tab\\there"),
        ("\u{1B}[2J\u{1B}]0;pwned\u{07}", "\\x1b[2J\\x1b]0;pwned\\x07"),
        ("nul\u{0}del\u{7F}", "nul\\x00del\\x7f"),
        ("c1 csi \u{9B}31m and \u{85}", "c1 csi \\u{9b}31m and \\u{85}"),
        ("\u{A0}nbsp stays", "\u{A0}nbsp stays"),
    ])
    func terminalSafety(body: String, shown: String) throws {
        let m = MessageView(id: 1, room: "r", seq: 1, from: "a", ts: "t", body: body)
        #expect(OutputTemplate.terminalSafe(body) == shown)
        #expect(OutputTemplate.textLine(m) == "t r a: " + shown)
        #expect(!shown.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) })
        // --format keeps newlines and tabs, and nothing else that could drive a terminal.
        let formatted = try OutputTemplate("{body}").render(m)
        #expect(formatted == shown.replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(of: "\\t", with: "\t"))
        #expect(!formatted.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F...0x9F).contains($0.value) })
    }

    @Test func timestamps() {
        #expect(Timestamp.rfc3339(millis: 0) == "1970-01-01T00:00:00.000Z")
        #expect(Timestamp.rfc3339(millis: 1_795_789_582_123) == "2026-11-27T14:26:22.123Z")
    }
}
