import Foundation
import Testing
@testable import IMWire

@Suite struct ClientFrameTests {
    func decode(_ text: String, max: Int = 100) throws(WireError) -> ClientFrame {
        try ClientFrame.decode(Array(text.utf8), maxBodyBytes: max)
    }

    @Test func decodesEveryOp() throws {
        #expect(try decode(#"{"op":"auth","token":"t"}"#) == .auth(token: "t"))
        #expect(try decode(#"{"op":"send","id":"1","to":"general","body":"hi"}"#) == .send(id: "1", to: .room("general"), body: "hi"))
        #expect(try decode(#"{"op":"send","id":"1","to":"@bob","body":""}"#) == .send(id: "1", to: .direct("bob"), body: ""))
        #expect(try decode(#"{"op":"sub","to":"general"}"#) == .subscribe(.init(scope: .target(.room("general")), start: .live)))
        #expect(try decode(#"{"op":"sub","to":"general","after":5}"#) == .subscribe(.init(scope: .target(.room("general")), start: .afterSeq(5))))
        #expect(try decode(#"{"op":"sub","to":"general","history":3}"#) == .subscribe(.init(scope: .target(.room("general")), start: .last(3))))
        #expect(try decode(#"{"op":"sub","to":"@*","after_id":9}"#) == .subscribe(.init(scope: .allDirect, start: .afterID(9))))
        #expect(try decode(#"{"op":"unsub","to":"general"}"#) == .unsubscribe(to: "general"))
        #expect(try decode(#"{"op":"ping","ref":"x"}"#) == .ping(ref: "x"))
    }

    @Test func encodeDecodeRoundTrip() throws {
        let frames: [ClientFrame] = [
            .auth(token: "imt_abc"),
            .send(id: "c-1", to: .room("r.1"), body: "line1\nline2 \"quoted\" \\ tab\t \u{1} é 😀"),
            .send(id: "c-2", to: .direct("bob"), body: ""),
            .subscribe(.init(scope: .target(.room("general")), start: .afterSeq(12))),
            .subscribe(.init(scope: .target(.direct("carol")), start: .last(5))),
            .subscribe(.init(scope: .allDirect, start: .afterID(7))),
            .subscribe(.init(scope: .allDirect, start: .live)),
            .unsubscribe(to: "general"),
            .ping(ref: nil),
        ]
        for f in frames {
            #expect(try decode(f.encoded(), max: 1000) == f)
        }
    }

    @Test(arguments: [
        ("not json", WireError.Code.badJSON),
        ("[1,2]", .badJSON),
        ("{}", .badFrame),
        (#"{"op":5}"#, .badFrame),
        (#"{"op":"fly"}"#, .unknownOp),
        (#"{"op":"send","id":1,"to":"general","body":"x"}"#, .badFrame),
        (#"{"op":"send","id":"1","to":"general"}"#, .badFrame),
        (#"{"op":"send","id":"1","to":"General!","body":"x"}"#, .badTarget),
        (#"{"op":"send","id":"1","to":"@","body":"x"}"#, .badTarget),
        (#"{"op":"send","id":"","to":"general","body":"x"}"#, .badFrame),
        (#"{"op":"send","id":"1","to":"general","body":null}"#, .badFrame),
        (#"{"op":"sub","to":"general","after":-1}"#, .badFrame),
        (#"{"op":"sub","to":"general","after":1,"history":2}"#, .badFrame),
        (#"{"op":"sub","to":"@*","after":1}"#, .badFrame),
        (#"{"op":"auth"}"#, .badFrame),
    ])
    func rejectsMalformed(text: String, code: WireError.Code) {
        #expect(throws: WireError.self) { try decode(text) }
        do { _ = try decode(text) } catch { #expect(error.code == code, "\(text) gave \(error)") }
    }

    @Test func bodyLimitCountsUTF8Bytes() throws {
        let ok = String(repeating: "é", count: 50)  // 100 bytes
        #expect(try decode(#"{"op":"send","id":"1","to":"r","body":"\#(ok)"}"#) == .send(id: "1", to: .room("r"), body: ok))
        do {
            _ = try decode(#"{"op":"send","id":"1","to":"r","body":"\#(ok)x"}"#)
            Issue.record("expected too_large")
        } catch {
            #expect(error.code == .tooLarge)
            #expect(error.message.contains("101"))
        }
    }

    @Test func longClientIDIsRefused() {
        let id = String(repeating: "x", count: maxClientIDLength + 1)
        #expect(throws: WireError.self) { try decode(#"{"op":"send","id":"\#(id)","to":"r","body":"x"}"#) }
    }
}

@Suite struct ServerFrameTests {
    @Test func roundTrip() throws {
        let frames: [ServerFrame] = [
            .authed(user: "alice", maxMessageBytes: 65536),
            .authed(user: "bob", maxMessageBytes: nil),
            .ack(Ack(cid: "c1", id: 10, room: "general", seq: 3, ts: "2026-01-01T00:00:00.000Z", duplicate: false)),
            .ack(Ack(cid: "c1", id: 10, room: "@bob", seq: 3, ts: "2026-01-01T00:00:00.000Z", duplicate: true)),
            .message(MessageView(id: 1, room: "@bob", seq: 1, from: "bob", ts: "2026-01-01T00:00:00.000Z", body: "a\"b\\c\nd")),
            .subscribed(to: "general", seq: 42),
            .error(code: .tooLarge, message: "too big", id: "c9"),
            .error(code: .badJSON, message: "nope", id: nil),
            .pong(ref: "p"),
        ]
        for f in frames {
            #expect(try ServerFrame.decode(Array(f.encoded().utf8)) == f)
        }
    }

    @Test func encodedFramesAreValidJSON() throws {
        let m = MessageView(id: 1, room: "r", seq: 1, from: "a", ts: "t", body: "\u{0}\u{1f}\u{7f}\"\\\r\n\t😀")
        let data = Data(m.jsonLine().utf8)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["body"] as? String == m.body)
    }
}

@Suite struct AckObjectTests {
    /// What `POST /v1/messages` answers is the `send --json` line, and it reads back to the same ack.
    @Test func theJSONLineReadsBack() throws {
        for duplicate in [false, true] {
            let ack = Ack(cid: "c \"1\"", id: 9, room: "@bob", seq: 4, ts: "2026-11-28T20:00:00.000Z", duplicate: duplicate)
            #expect(Ack(jsonObject: Array(ack.jsonLine().utf8)) == ack)
        }
        #expect(Ack(jsonObject: Array(#"{"id":9,"room":"r","seq":4,"ts":"t"}"#.utf8)) == nil)   // no cid
        #expect(Ack(jsonObject: Array(#"{"id":"9","room":"r","seq":4,"ts":"t","cid":"c"}"#.utf8)) == nil)
        #expect(Ack(jsonObject: Array("not json".utf8)) == nil)
    }
}
