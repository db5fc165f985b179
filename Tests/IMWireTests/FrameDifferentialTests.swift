import Foundation
import Testing
@testable import IMWire

/// The flat-JSON fast path and Foundation's decoder must agree on every input: the same frame, or the
/// same error code. Seeded, so a failure replays; `scripts/fuzz-frames.sh` runs the same check under
/// libFuzzer with a kept corpus.
@Suite struct FrameDifferentialTests {
    /// SplitMix64: small, seeded, the same on every machine.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
        mutating func pick<T>(_ items: [T]) -> T { items[int(items.count)] }
    }

    static let keys = ["op", "op", "id", "to", "body", "token", "after", "after_id", "history", "ref", "extra", "Op", "o\\u0070", ""]
    static let values = [
        #""send""#, #""sub""#, #""auth""#, #""ping""#, #""unsub""#, #""nope""#, #""r""#, #""@bob""#, #""@*""#, #""NOT A ROOM""#,
        #""hello""#, #""é😀""#, #""a\"b\\c""#, #""\u0041\u00e9""#, #""\ud83d\ude00""#, #""\ud800""#, #""tab\there""#, #""\/""#,
        "0", "7", "-1", "-0", "01", "1.0", "1e3", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "true", "false", "null", "[]", "{}", #"["x"]"#, #"{"a":1}"#, #""""#,
    ]

    static func check(_ bytes: [UInt8]) {
        let fast = bytes.withUnsafeBytes { b in Result { () throws(WireError) in try ClientFrame.decode(b, maxBodyBytes: 64, fastPath: true) } }
        let slow = bytes.withUnsafeBytes { b in Result { () throws(WireError) in try ClientFrame.decode(b, maxBodyBytes: 64, fastPath: false) } }
        switch (fast, slow) {
        case (.success(let a), .success(let b)):
            #expect(a == b, "\(String(decoding: bytes, as: UTF8.self))")
        case (.failure(let a), .failure(let b)):
            #expect(a.code == b.code, "\(String(decoding: bytes, as: UTF8.self)): \(a) vs \(b)")
        default:
            Issue.record("the paths disagree on \(String(decoding: bytes, as: UTF8.self)): \(fast) vs \(slow)")
        }
    }

    static func frame(_ r: inout Random) -> String {
        var members: [String] = []
        for _ in 0..<r.int(6) {
            let space = r.pick(["", " ", "\n\t "])
            members.append("\(space)\"\(r.pick(keys))\"\(space):\(space)\(r.pick(values))\(space)")
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    @Test func randomFrames() {
        var r = Random(state: 0x1D_C7_2026)
        for _ in 0..<20_000 { Self.check(Array(Self.frame(&r).utf8)) }
    }

    @Test func mutatedFrames() {
        var r = Random(state: 0xF00D)
        let seeds = [
            #"{"op":"send","id":"a-1","to":"general","body":"hello, world"}"#, #"{"op":"sub","to":"@bob","after":17}"#,
            #"{"op":"auth","token":"imt_x"}"#, #"{"op":"sub","to":"@*","after_id":3}"#, #"{"op":"ping","ref":"42"}"#,
        ]
        let alphabet = Array(#"{}[]":,\ "0123456789-+.eEtrufalsn\u{0}"#.utf8) + [0x80, 0xC3, 0xA9, 0xFF]
        for _ in 0..<20_000 {
            var bytes = Array(r.pick(seeds).utf8)
            for _ in 0..<(1 + r.int(3)) {
                let at = r.int(bytes.count + 1)
                switch r.int(3) {
                case 0 where at < bytes.count: bytes.remove(at: at)
                case 1: bytes.insert(r.pick(alphabet), at: at)
                default: if at < bytes.count { bytes[at] = r.pick(alphabet) }
                }
            }
            // The server validates UTF-8 before decoding; the decoder only ever sees valid text.
            guard UTF8Validation.isValid(bytes) else { continue }
            Self.check(bytes)
        }
    }

    /// Inputs that once disagreed, or nearly: kept, as the fuzzer's corpus keeps its finds.
    @Test(arguments: [
        #"{"op":"send","op":"ping"}"#,  // a repeated key (the fast path used to take the last, Foundation decides)
        #"{"op":"ping","ref":"a","ref":"b"}"#,
        #"{"o\u0070":"ping"}"#,  // an escaped key
        #"{"op":"sub","to":"r","after":1.0}"#,
        #"{"op":"sub","to":"r","after":-0}"#,
        #"{"op":"ping","ref":"\ud800"}"#,
        #"{"op":"ping","ref":"\u0000"}"#,
        #"  {"op":"ping"}  "#,
        #"{"op":"ping"}x"#,
    ])
    func kept(_ frame: String) {
        Self.check(Array(frame.utf8))
    }
}
