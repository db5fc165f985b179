import Foundation
import Testing
@testable import IMWire

@Suite struct FlatJSONTests {
    func parse(_ text: String) -> [(key: String, value: FlatJSON.Value)]? {
        FlatJSON.parse(contiguous: Array(text.utf8))
    }

    @Test func readsFlatObjects() throws {
        let m = try #require(parse(#" { "a" : "x\"y\\z\/\n\t\u00e9\ud83d\ude00" , "n":-42, "z": 0, "t":true,"f":false,"u":null } "#))
        #expect(m.map(\.key) == ["a", "n", "z", "t", "f", "u"])
        #expect(m[0].value == .string("x\"y\\z/\n\té😀"))
        #expect(m[1].value == .int(-42))
        #expect(m[2].value == .int(0))
        #expect(m[3].value == .bool(true) && m[4].value == .bool(false) && m[5].value == .null)
        #expect(parse("{}")?.isEmpty == true)
    }

    /// Anything outside the flat subset, or invalid, is left to the full decoder.
    @Test(arguments: [
        "", "[]", "{", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":01}", "{\"a\":1.5}", "{\"a\":1e3}", "{\"a\":{}}", "{\"a\":[1]}",
        "{\"a\":\"\\x\"}", "{\"a\":\"\\ud83d\"}", "{\"a\":\"\\ude00\"}", "{\"a\":tru}", "{\"a\":1} x", "{a:1}", "{\"a\":\"\u{1}\"}",
        "{\"a\":99999999999999999999}", "{\"a\":-}",
    ])
    func refusesWhatItDoesNotHandle(text: String) {
        #expect(parse(text) == nil, "\(text)")
    }

    /// Every frame the server writes reads back through the fast path, bodies of any content included.
    @Test func serverFramesRoundTripThroughTheFastPath() throws {
        var rng = SystemRandomNumberGenerator()
        let alphabet: [Character] = ["a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}", "é", "😀", "中", "\u{2028}"]
        for _ in 0..<500 {
            let body = String((0..<Int.random(in: 0..<40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            let m = MessageView(id: Int64.random(in: 0...Int64.max, using: &rng), room: "@bob", seq: Int64.random(in: 1...1_000_000, using: &rng),
                                from: "alice", ts: "2026-11-27T14:26:22.123Z", body: body)
            let frame = ServerFrame.message(m).encoded()
            #expect(FlatJSON.parse(contiguous: Array(frame.utf8)) != nil, "fast path refused \(frame)")
            #expect(try ServerFrame.decode(frame.utf8) == .message(m))
            let send = ClientFrame.send(id: "c-\(m.seq)", to: .room("general"), body: body)
            #expect(try ClientFrame.decode(send.encoded().utf8, maxBodyBytes: 1000) == send)
        }
    }

    /// The fast path and Foundation's decoder agree on what Foundation writes (which escapes `/` and uses other forms).
    @Test func agreesWithFoundationOnItsOutput() throws {
        let samples: [[String: Any]] = [
            ["op": "send", "id": "1/2", "to": "general", "body": "a/b\u{1}\"\\é😀"],
            ["op": "send", "id": "x", "to": "@bob", "body": "", "extra": "ignored"],
            ["op": "sub", "to": "general", "after": 12],
            ["op": "sub", "to": "@*", "after_id": 7],
        ]
        for sample in samples {
            let data = try JSONSerialization.data(withJSONObject: sample)
            let fast = try #require(FlatJSON.parse(contiguous: Array(data)), "\(String(decoding: data, as: UTF8.self))")
            for (key, value) in fast {
                switch value {
                case .string(let s): #expect(sample[key] as? String == s)
                case .int(let n): #expect((sample[key] as? Int).map(Int64.init) == n)
                default: Issue.record("unexpected \(value)")
                }
            }
        }
    }
}
