import IMStorage
import IMWire
import NIOCore
import NIOWebSocket

/// Server-side RFC 6455 framing: unmasked, final frames written straight into byte buffers.
enum WebSocketWire {
    static let text: UInt8 = 0x1
    static let close: UInt8 = 0x8
    static let ping: UInt8 = 0x9
    static let pong: UInt8 = 0xA

    /// Bytes the header of a server frame takes for a payload of `length` bytes (the minimal form, §5.2).
    static func headerSize(payload length: Int) -> Int {
        length < 126 ? 2 : length <= 0xFFFF ? 4 : 10
    }

    /// Writes a FIN frame header. `rsv1` marks a permessage-deflate message.
    static func writeHeader(opcode: UInt8, rsv1: Bool = false, length: Int, into buffer: inout ByteBuffer) {
        buffer.writeInteger(0x80 | (rsv1 ? 0x40 : 0) | opcode)
        if length < 126 {
            buffer.writeInteger(UInt8(length))
        } else if length <= 0xFFFF {
            buffer.writeInteger(UInt8(126))
            buffer.writeInteger(UInt16(length))
        } else {
            buffer.writeInteger(UInt8(127))
            buffer.writeInteger(UInt64(length))
        }
    }

    /// One whole frame around `payload`.
    static func frame(opcode: UInt8, rsv1: Bool = false, payload: some Collection<UInt8>, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: payload.count + 10)
        writeHeader(opcode: opcode, rsv1: rsv1, length: payload.count, into: &buffer)
        buffer.writeBytes(payload)
        return buffer
    }

    /// A text frame holding `text`.
    static func textFrame(_ text: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        frame(opcode: Self.text, payload: text.utf8, allocator: allocator)
    }

    /// A close frame with a status code and a reason cut to fit the 125-byte control frame limit.
    static func closeFrame(_ code: WebSocketErrorCode, reason: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        var payload = allocator.buffer(capacity: 125)
        payload.write(webSocketErrorCode: code)
        var bytes = Array(reason.utf8.prefix(123))
        // Never cut a character in half: the reason must stay valid UTF-8.
        while !bytes.isEmpty && !UTF8Validation.isValid(bytes) { bytes.removeLast() }
        payload.writeBytes(bytes)
        return frame(opcode: close, payload: payload.readableBytesView, allocator: allocator)
    }
}

/// Writes `msg` and `ack` frames straight into byte buffers, with exactly the bytes
/// `ServerFrame.encoded()` gives, but without building strings first.
struct FrameEncoder {
    private var cachedSecond: Int64 = .min
    private var cachedSecondText: [UInt8] = []

    /// Appends one text frame holding the `msg` frame of `m` as `label` names its conversation.
    /// - Returns: where the frame and where its payload start in `buffer`.
    mutating func appendMessage(_ m: StoredMessage, label: String, into buffer: inout ByteBuffer) -> (frame: Int, payload: Int) {
        // Escaping only grows the text, so a header sized for the unescaped length is never too big.
        let estimate = 72 + label.utf8.count + m.sender.utf8.count + m.body.utf8.count
        let second = secondText(m.ts)
        return Self.appendFrame(estimate: estimate, into: &buffer) { b in
            b.writeStaticString(#"{"op":"msg","id":"#)
            Self.writeDecimal(m.id, into: &b)
            b.writeStaticString(#","room":"#)
            Self.writeJSONString(label, into: &b)
            b.writeStaticString(#","seq":"#)
            Self.writeDecimal(m.seq, into: &b)
            b.writeStaticString(#","from":"#)
            Self.writeJSONString(m.sender, into: &b)
            b.writeStaticString(#","ts":""#)
            Self.writeTimestamp(m.ts, second: second, into: &b)
            b.writeStaticString(#"","body":"#)
            Self.writeJSONString(m.body, into: &b)
            b.writeInteger(UInt8(ascii: "}"))
        }
    }

    /// Appends one text frame holding the `ack` of a stored message.
    mutating func appendAck(cid: String, message m: StoredMessage, label: String, duplicate: Bool, into buffer: inout ByteBuffer) {
        let estimate = 80 + cid.utf8.count + label.utf8.count
        let second = secondText(m.ts)
        _ = Self.appendFrame(estimate: estimate, into: &buffer) { b in
            b.writeStaticString(#"{"op":"ack","cid":"#)
            Self.writeJSONString(cid, into: &b)
            b.writeStaticString(#","id":"#)
            Self.writeDecimal(m.id, into: &b)
            b.writeStaticString(#","room":"#)
            Self.writeJSONString(label, into: &b)
            b.writeStaticString(#","seq":"#)
            Self.writeDecimal(m.seq, into: &b)
            b.writeStaticString(#","ts":""#)
            Self.writeTimestamp(m.ts, second: second, into: &b)
            b.writeInteger(UInt8(ascii: "\""))
            if duplicate { b.writeStaticString(#","duplicate":true"#) }
            b.writeInteger(UInt8(ascii: "}"))
        }
    }

    private static func appendFrame(estimate: Int, into buffer: inout ByteBuffer,
                                      _ body: (inout ByteBuffer) -> Void) -> (frame: Int, payload: Int) {
        let start = buffer.writerIndex
        let reserved = WebSocketWire.headerSize(payload: estimate)
        buffer.writeRepeatingByte(0, count: reserved)
        let payloadStart = buffer.writerIndex
        body(&buffer)
        let length = buffer.writerIndex - payloadStart
        let needed = WebSocketWire.headerSize(payload: length)
        if needed != reserved {
            // Rare: escapes pushed the payload into a longer length form. Move it along.
            let payload = buffer.getBytes(at: payloadStart, length: length)!
            buffer.moveWriterIndex(to: start)
            WebSocketWire.writeHeader(opcode: WebSocketWire.text, length: length, into: &buffer)
            let moved = buffer.writerIndex
            buffer.writeBytes(payload)
            return (start, moved)
        }
        var header = ByteBuffer()
        WebSocketWire.writeHeader(opcode: WebSocketWire.text, length: length, into: &header)
        buffer.setBuffer(header, at: start)
        return (start, payloadStart)
    }

    /// `2026-11-27T14:26:22`, the part of a timestamp before its milliseconds, kept for the current second.
    private mutating func secondText(_ millis: Int64) -> [UInt8] {
        let second = millis >= 0 ? millis / 1000 : (millis - 999) / 1000
        if second != cachedSecond {
            let text = Timestamp.rfc3339(millis: second * 1000)  // …T14:26:22.000Z
            cachedSecondText = Array(text.utf8.dropLast(5))
            cachedSecond = second
        }
        return cachedSecondText
    }

    private static func writeTimestamp(_ millis: Int64, second: [UInt8], into buffer: inout ByteBuffer) {
        buffer.writeBytes(second)
        let ms = Int(millis - (millis >= 0 ? millis / 1000 : (millis - 999) / 1000) * 1000)
        buffer.writeInteger(UInt8(ascii: "."))
        buffer.writeInteger(UInt8(48 + ms / 100))
        buffer.writeInteger(UInt8(48 + ms / 10 % 10))
        buffer.writeInteger(UInt8(48 + ms % 10))
        buffer.writeInteger(UInt8(ascii: "Z"))
    }

    static func writeDecimal(_ value: Int64, into buffer: inout ByteBuffer) {
        if value < 0 {
            buffer.writeString(String(value))
            return
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch: enough for any Int64
        var v = UInt64(value)
        withUnsafeMutableBytes(of: &digits) { scratch in
            var i = scratch.count
            repeat {
                i -= 1
                scratch[i] = UInt8(48 + v % 10)
                v /= 10
            } while v > 0
            buffer.writeBytes(UnsafeRawBufferPointer(rebasing: scratch[i...]))
        }
    }

    /// Writes `s` as a JSON string literal with the escapes `JSONObjectWriter` uses.
    static func writeJSONString(_ s: String, into buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { u in
            var runStart = 0
            for i in 0..<u.count {
                let c = u[i]
                guard c < 0x20 || c == 0x22 || c == 0x5C else { continue }
                buffer.writeBytes(UnsafeBufferPointer(rebasing: u[runStart..<i]))
                runStart = i + 1
                switch c {
                case 0x22: buffer.writeStaticString(#"\""#)
                case 0x5C: buffer.writeStaticString(#"\\"#)
                case 0x0A: buffer.writeStaticString(#"\n"#)
                case 0x0D: buffer.writeStaticString(#"\r"#)
                case 0x09: buffer.writeStaticString(#"\t"#)
                default:
                    let hex: [UInt8] = Array("0123456789abcdef".utf8)
                    buffer.writeStaticString(#"\u00"#)
                    buffer.writeInteger(hex[Int(c >> 4)])
                    buffer.writeInteger(hex[Int(c & 0xF)])
                }
            }
            buffer.writeBytes(UnsafeBufferPointer(rebasing: u[runStart...]))
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }
}
