import IMStorage
import IMWire
import NIOCore
import NIOWebSocket
import Testing
@testable import IMServer

/// The fast frame writer produces exactly the JSON of `ServerFrame.encoded()`, inside correct frames.
@Suite struct FrameEncoderTests {
    /// Splits a buffer of server frames into (first byte, payload) pairs, checking the minimal length form.
    static func frames(_ buffer: ByteBuffer) -> [(UInt8, [UInt8])] {
        var b = buffer
        var out: [(UInt8, [UInt8])] = []
        while b.readableBytes > 0 {
            let first: UInt8 = b.readInteger()!
            let len7: UInt8 = b.readInteger()!
            #expect(len7 & 0x80 == 0, "server frames are not masked")
            var length = Int(len7)
            if len7 == 126 {
                length = Int(b.readInteger(as: UInt16.self)!)
                #expect(length >= 126, "non-minimal 16-bit length")
            } else if len7 == 127 {
                length = Int(b.readInteger(as: UInt64.self)!)
                #expect(length > 0xFFFF, "non-minimal 64-bit length")
            }
            out.append((first, b.readBytes(length: length)!))
        }
        return out
    }

    static let bodies = [
        "", "hello", "quote \" backslash \\ newline \n tab \t cr \r bell \u{7} nul \u{0}", "é😀中文",
        String(repeating: "x", count: 50), String(repeating: "y", count: 120),
        // Escapes push the payload from the 7-bit into the 16-bit length form.
        String(repeating: "\u{1}", count: 20), String(repeating: "\"", count: 60),
        String(repeating: "z", count: 70_000),  // the 64-bit length form
        String(repeating: "\u{2}", count: 11_000),  // escapes push it past 65,535
    ]

    @Test(arguments: bodies)
    func messageFramesMatchTheEncoder(body: String) {
        let m = StoredMessage(id: 1042, conversation: .direct("alice", "bob"), seq: 17, sender: "bob", clientID: "c-1",
                              ts: 1_764_253_582_123, body: body)
        var encoder = FrameEncoder()
        var buffer = ByteBuffer()
        _ = encoder.appendMessage(m, label: "@bob", into: &buffer)
        encoder.appendAck(cid: "c-\"1", message: m, label: "@alice", duplicate: true, into: &buffer)
        let frames = Self.frames(buffer)
        #expect(frames.count == 2)
        #expect(frames.allSatisfy { $0.0 == 0x81 })
        #expect(String(decoding: frames[0].1, as: UTF8.self) == ServerFrame.message(m.view(for: "alice")).encoded())
        let ack = Ack(cid: "c-\"1", id: 1042, room: "@alice", seq: 17, ts: Timestamp.rfc3339(millis: m.ts), duplicate: true)
        #expect(String(decoding: frames[1].1, as: UTF8.self) == ServerFrame.ack(ack).encoded())
    }

    @Test func timestampsAcrossSecondsAndMilliseconds() {
        var encoder = FrameEncoder()
        for ts: Int64 in [0, 999, 1000, 1_764_253_582_000, 1_764_253_582_001, 1_764_253_582_999, 1_764_253_583_050, 1_764_253_582_500] {
            let m = StoredMessage(id: 1, conversation: .room("r"), seq: 1, sender: "a", clientID: "c", ts: ts, body: "b")
            var buffer = ByteBuffer()
            _ = encoder.appendMessage(m, label: "r", into: &buffer)
            #expect(String(decoding: Self.frames(buffer)[0].1, as: UTF8.self) == ServerFrame.message(m.view(for: "a")).encoded())
        }
    }

    @Test func chunkSlicesFromAPosition() {
        var encoder = FrameEncoder()
        var chunk = Chunk()
        for seq in Int64(5)...9 {
            chunk.append(StoredMessage(id: seq + 100, conversation: .room("r"), seq: seq, sender: "a", clientID: "\(seq)", ts: 0, body: "m\(seq)"),
                         label: "r", encoder: &encoder)
        }
        #expect(chunk.firstIndex(after: 0, byID: false) == 0)
        #expect(chunk.firstIndex(after: 6, byID: false) == 2)
        #expect(chunk.firstIndex(after: 9, byID: false) == nil)
        #expect(chunk.firstIndex(after: 106, byID: true) == 2)
        let tail = Self.frames(chunk.frames(from: 2)).map { try? ServerFrame.decode($0.1) }
        #expect(tail.compactMap { (f: ServerFrame?) -> Int64? in if case .message(let m)? = f { m.seq } else { nil } } == [7, 8, 9])
        #expect(String(buffer: chunk.payload(4)) == ServerFrame.decodeBody(chunk.frames(from: 4)))
    }

    @Test func closeFramesStayWithinTheControlLimit() {
        let long = String(repeating: "é", count: 100)  // 200 bytes
        let frame = WebSocketWire.closeFrame(.policyViolation, reason: long, allocator: ByteBufferAllocator())
        let (first, payload) = Self.frames(frame)[0]
        #expect(first == 0x88)
        #expect(payload.count <= 125)
        #expect(UTF8Validation.isValid(payload.dropFirst(2)))
        #expect(payload[0] == 0x03 && payload[1] == 0xF0)  // 1008
    }
}

extension ServerFrame {
    /// The text of the first frame in `buffer`.
    static func decodeBody(_ buffer: ByteBuffer) -> String {
        String(decoding: FrameEncoderTests.frames(buffer)[0].1, as: UTF8.self)
    }
}
