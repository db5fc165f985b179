import NIOCore
import NIOWebSocket
import Testing
@testable import IMServer

/// RFC 6455's framing rules for client frames, without sockets (the raw-socket tests check the same
/// rules end to end).
@Suite struct FrameSequencerTests {
    func sequencer(compression: Bool = false, max: Int = 1000) -> FrameSequencer {
        FrameSequencer(compressionNegotiated: compression, maxMessageBytes: max)
    }

    func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    @Test func wholeTextMessage() {
        var s = sequencer()
        #expect(s.receive(firstByte: 0x81, masked: true, payload: buffer("hi")) == .message(buffer("hi"), text: true, compressed: false))
    }

    @Test func unmaskedClientFramesAreRefused() {
        var s = sequencer()
        guard case .fail(let code, _) = s.receive(firstByte: 0x81, masked: false, payload: buffer("hi")) else {
            Issue.record("accepted an unmasked frame")
            return
        }
        #expect(code == .protocolError)
    }

    @Test func fragmentsJoinWithControlFramesBetween() {
        var s = sequencer()
        #expect(s.receive(firstByte: 0x01, masked: true, payload: buffer("hel")) == .partial)
        #expect(s.receive(firstByte: 0x89, masked: true, payload: buffer("p")) == .ping(buffer("p")))
        #expect(s.receive(firstByte: 0x00, masked: true, payload: buffer("lo, ")) == .partial)
        #expect(s.receive(firstByte: 0x8A, masked: true, payload: buffer("")) == .pong)
        #expect(s.receive(firstByte: 0x80, masked: true, payload: buffer("world")) == .message(buffer("hello, world"), text: true, compressed: false))
        // The next message starts afresh.
        #expect(s.receive(firstByte: 0x82, masked: true, payload: buffer("b")) == .message(buffer("b"), text: false, compressed: false))
    }

    @Test(arguments: [
        (UInt8(0x80), "continuation without a message"),
        (UInt8(0xA1), "RSV2"),
        (UInt8(0x91), "RSV3"),
        (UInt8(0xC1), "RSV1 without permessage-deflate"),
        (UInt8(0x83), "opcode 3"), (UInt8(0x87), "opcode 7"), (UInt8(0x8B), "opcode 11"), (UInt8(0x8F), "opcode 15"),
        (UInt8(0x09), "fragmented ping"), (UInt8(0x08), "fragmented close"), (UInt8(0xC9), "RSV1 on a ping"),
    ])
    func protocolErrors(firstByte: UInt8, what: String) {
        var s = sequencer()
        guard case .fail(let code, _) = s.receive(firstByte: firstByte, masked: true, payload: buffer("x")) else {
            Issue.record("\(what) was accepted")
            return
        }
        #expect(code == .protocolError, "\(what)")
    }

    @Test func newMessageInsideAFragmentedOneIsAnError() {
        var s = sequencer()
        #expect(s.receive(firstByte: 0x01, masked: true, payload: buffer("a")) == .partial)
        guard case .fail(.protocolError, _) = s.receive(firstByte: 0x81, masked: true, payload: buffer("b")) else {
            Issue.record("a new text frame interrupted a fragmented message")
            return
        }
    }

    @Test func controlFramesAreAtMost125Bytes() {
        var s = sequencer()
        #expect(s.receive(firstByte: 0x89, masked: true, payload: buffer(String(repeating: "p", count: 125))) != .pong)
        guard case .fail(.protocolError, _) = s.receive(firstByte: 0x89, masked: true, payload: buffer(String(repeating: "p", count: 126))) else {
            Issue.record("a 126-byte ping was accepted")
            return
        }
    }

    @Test func compressedMessagesOnlyWithTheExtension() {
        var s = sequencer(compression: true)
        #expect(s.receive(firstByte: 0x41, masked: true, payload: buffer("z")) == .partial)
        // RSV1 belongs on the first frame only.
        guard case .fail(.protocolError, _) = s.receive(firstByte: 0xC0, masked: true, payload: buffer("z")) else {
            Issue.record("RSV1 on a continuation frame was accepted")
            return
        }
        var t = sequencer(compression: true)
        #expect(t.receive(firstByte: 0xC1, masked: true, payload: buffer("z")) == .message(buffer("z"), text: true, compressed: true))
    }

    @Test func messagesOverTheLimitFailWith1009() {
        var s = sequencer(max: 10)
        guard case .fail(.messageTooLarge, _) = s.receive(firstByte: 0x81, masked: true, payload: buffer(String(repeating: "x", count: 11))) else {
            Issue.record("oversize frame accepted")
            return
        }
        var t = sequencer(max: 10)
        #expect(t.receive(firstByte: 0x01, masked: true, payload: buffer("123456")) == .partial)
        guard case .fail(.messageTooLarge, _) = t.receive(firstByte: 0x80, masked: true, payload: buffer("789012")) else {
            Issue.record("oversize fragmented message accepted")
            return
        }
    }

    @Test func closeFrames() {
        var s = sequencer()
        #expect(s.receive(firstByte: 0x88, masked: true, payload: buffer("")) == .close(nil, ""))
        var ok = ByteBuffer()
        ok.writeInteger(UInt16(1000))
        ok.writeString("bye")
        #expect(s.receive(firstByte: 0x88, masked: true, payload: ok) == .close(1000, "bye"))
        guard case .fail(.protocolError, _) = s.receive(firstByte: 0x88, masked: true, payload: ByteBuffer(bytes: [0x03])) else {
            Issue.record("a 1-byte close payload was accepted")
            return
        }
        for code: UInt16 in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            var b = ByteBuffer()
            b.writeInteger(code)
            guard case .fail(.protocolError, _) = s.receive(firstByte: 0x88, masked: true, payload: b) else {
                Issue.record("close code \(code) was accepted")
                continue
            }
        }
        var badReason = ByteBuffer()
        badReason.writeInteger(UInt16(1000))
        badReason.writeBytes([0xCE, 0xBA, 0xE1, 0xBD, 0xB9, 0xCF, 0x83, 0xCE, 0xBC, 0xCE, 0xB5, 0xED, 0xA0, 0x80])
        guard case .fail(.dataInconsistentWithMessage, _) = s.receive(firstByte: 0x88, masked: true, payload: badReason) else {
            Issue.record("a close reason that is not UTF-8 was accepted")
            return
        }
    }
}
