import Foundation
import Testing

/// The hardening a user meets through the built binary: terminals, a second server, client ids.
@Suite(.timeLimit(.minutes(3))) struct HardeningTests {
    /// A message cannot drive the reader's terminal: text and --format write control characters out;
    /// --json carries the body exactly.
    @Test func listenOutputCannotDriveATerminal() async throws {
        try await withSandbox { sb in
            let tokens = try await sb.users("alice")
            try await sb.startServer()
            let hostile = "\u{1B}]0;pwned\u{07}\u{1B}[2J\u{9B}31mred\u{7F}\r\nnext"
            let sent = try await sb.imctl(["send", "r", "--token", tokens["alice"]!], stdin: Data(hostile.utf8))
            #expect(sent.status == 0, "\(sent)")
            let text = try await sb.imctl(["listen", "r", "--since", "0", "--count", "1", "--token", tokens["alice"]!])
            let format = try await sb.imctl(["listen", "r", "--since", "0", "--count", "1", "--format", "{from}: {body}", "--token", tokens["alice"]!])
            for r in [text, format] {
                #expect(r.status == 0, "\(r)")
                #expect(!r.out.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n") || (0x7F...0x9F).contains($0.value) },
                        "control characters reached the terminal: \(r.out.debugDescription)")
            }
            // Text writes the newline out too; a template keeps it (the template decides the layout).
            #expect(text.out.contains(#"\x1b]0;pwned\x07\x1b[2J\u{9b}31mred\x7f\nnext"#), "\(text.out.debugDescription)")
            #expect(format.out == "alice: " + #"\x1b]0;pwned\x07\x1b[2J\u{9b}31mred\x7f"# + "\nnext\n", "\(format.out.debugDescription)")
            let json = try await sb.imctl(["listen", "r", "--since", "0", "--count", "1", "--json", "--token", tokens["alice"]!])
            #expect(try json.jsonLines().first?.string("body") == hostile.replacingOccurrences(of: "\r\n", with: "\r\n"))
        }
    }

    @Test func aSecondServerOnOneStoreIsRefused() async throws {
        try await withSandbox { sb in
            try await sb.addUser("alice")
            try await sb.startServer()
            let second = try await sb.imctl(["serve", "--port", "0", "--database", sb.database], timeout: .seconds(20))
            #expect(second.status == 1, "\(second)")
            #expect(second.err.contains("another imctl serve is already using the store"), "\(second.err)")
            // The first one is unharmed.
            #expect(try await sb.imctl("send", "r", "still here", "--token", try await sb.token("alice")).status == 0)
        }
    }

    /// Client ids carry at least 96 random bits: two runs never collide into a silent duplicate.
    @Test func clientIDsAreLongAndRandom() async throws {
        try await withSandbox { sb in
            let tokens = try await sb.users("alice")
            try await sb.startServer()
            var prefixes: Set<String> = []
            for _ in 0..<3 {
                let r = try await sb.imctl(["send", "r", "x", "--json", "--token", tokens["alice"]!])
                let cid = try #require(try r.jsonLines().first?.string("cid"))
                let prefix = String(cid.split(separator: "-").dropLast().joined(separator: "-"))
                // 22 base64url characters: 132 bits, of which 128 random.
                #expect(prefix.count >= 22, "\(cid)")
                prefixes.insert(prefix)
            }
            #expect(prefixes.count == 3)
        }
    }
}
