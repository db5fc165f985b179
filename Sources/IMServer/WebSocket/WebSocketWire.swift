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
/// `ServerFrame.encoded()` gives, but without building strings first: one capacity check per frame,
/// then plain stores into the buffer's memory.
struct FrameEncoder {
    private var cachedSecond: Int64 = .min
    private var cachedSecondText: [UInt8] = []

    /// Appends one text frame holding the `msg` frame of `m` as `label` names its conversation.
    /// - Returns: where the frame and where its payload start in `buffer`.
    mutating func appendMessage(_ m: StoredMessage, label: String, into buffer: inout ByteBuffer) -> (frame: Int, payload: Int) {
        let strings = label.utf8.count + m.sender.utf8.count + m.body.utf8.count
        let second = secondText(m.ts)
        return Self.appendFrame(unescaped: 72 + strings, worstCase: 160 + 6 * strings, into: &buffer) { w in
            w.ascii(#"{"op":"msg","id":"#)
            w.decimal(m.id)
            w.ascii(#","room":"#)
            w.json(label)
            w.ascii(#","seq":"#)
            w.decimal(m.seq)
            w.ascii(#","from":"#)
            w.json(m.sender)
            w.ascii(#","ts":""#)
            w.timestamp(m.ts, second: second)
            w.ascii(#"","body":"#)
            w.json(m.body)
            w.byte(UInt8(ascii: "}"))
        }
    }

    /// Appends one text frame holding the `ack` of a stored message.
    mutating func appendAck(cid: String, message m: StoredMessage, label: String, duplicate: Bool, into buffer: inout ByteBuffer) {
        let strings = cid.utf8.count + label.utf8.count
        let second = secondText(m.ts)
        _ = Self.appendFrame(unescaped: 80 + strings, worstCase: 180 + 6 * strings, into: &buffer) { w in
            w.ascii(#"{"op":"ack","cid":"#)
            w.json(cid)
            w.ascii(#","id":"#)
            w.decimal(m.id)
            w.ascii(#","room":"#)
            w.json(label)
            w.ascii(#","seq":"#)
            w.decimal(m.seq)
            w.ascii(#","ts":""#)
            w.timestamp(m.ts, second: second)
            w.byte(UInt8(ascii: "\""))
            if duplicate { w.ascii(#","duplicate":true"#) }
            w.byte(UInt8(ascii: "}"))
        }
    }

    /// Writes a text frame whose payload `body` writes.
    /// - Parameters:
    ///   - unescaped: a lower bound of the payload size, to guess the header size (escapes only add).
    ///   - worstCase: an upper bound of the payload size (every string byte escaped as `\u00XX`).
    private static func appendFrame(unescaped: Int, worstCase: Int, into buffer: inout ByteBuffer,
                                    _ body: (inout RawWriter) -> Void) -> (frame: Int, payload: Int) {
        let start = buffer.writerIndex
        var payloadStart = 0
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: worstCase + 10) { raw in
            let reserved = WebSocketWire.headerSize(payload: unescaped)
            var w = RawWriter(base: raw.baseAddress!, at: reserved)
            body(&w)
            let length = w.at - reserved
            let needed = WebSocketWire.headerSize(payload: length)
            if needed != reserved {
                // Rare: escapes pushed the payload into a longer length form. Move it along.
                (raw.baseAddress! + needed).copyMemory(from: raw.baseAddress! + reserved, byteCount: length)
            }
            var h = RawWriter(base: raw.baseAddress!, at: 0)
            h.byte(0x80 | WebSocketWire.text)
            if length < 126 {
                h.byte(UInt8(length))
            } else if length <= 0xFFFF {
                h.byte(126)
                h.byte(UInt8(length >> 8))
                h.byte(UInt8(length & 0xFF))
            } else {
                h.byte(127)
                for shift in stride(from: 56, through: 0, by: -8) { h.byte(UInt8((length >> shift) & 0xFF)) }
            }
            payloadStart = needed
            return needed + length
        }
        return (start, start + payloadStart)
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
}

/// Stores bytes at a cursor in memory whose capacity the caller has checked.
struct RawWriter {
    let base: UnsafeMutableRawPointer
    var at: Int

    mutating func byte(_ b: UInt8) {
        base.storeBytes(of: b, toByteOffset: at, as: UInt8.self)
        at += 1
    }

    mutating func ascii(_ s: StaticString) {
        (base + at).copyMemory(from: s.utf8Start, byteCount: s.utf8CodeUnitCount)
        at += s.utf8CodeUnitCount
    }

    mutating func bytes(_ p: UnsafeRawBufferPointer) {
        guard let source = p.baseAddress, p.count > 0 else { return }
        (base + at).copyMemory(from: source, byteCount: p.count)
        at += p.count
    }

    mutating func decimal(_ value: Int64) {
        var v = value.magnitude
        if value < 0 { byte(UInt8(ascii: "-")) }
        var digits = 1
        var probe = v
        while probe >= 10 {
            probe /= 10
            digits += 1
        }
        at += digits
        var i = at
        repeat {
            i -= 1
            base.storeBytes(of: UInt8(48 + v % 10), toByteOffset: i, as: UInt8.self)
            v /= 10
        } while v > 0
    }

    /// `…T14:26:22` + `.123Z`.
    mutating func timestamp(_ millis: Int64, second: [UInt8]) {
        second.withUnsafeBytes { bytes($0) }
        let ms = Int(millis - (millis >= 0 ? millis / 1000 : (millis - 999) / 1000) * 1000)
        byte(UInt8(ascii: "."))
        byte(UInt8(48 + ms / 100))
        byte(UInt8(48 + ms / 10 % 10))
        byte(UInt8(48 + ms % 10))
        byte(UInt8(ascii: "Z"))
    }

    private static let hex: StaticString = "0123456789abcdef"

    /// `s` as a JSON string literal, with the escapes `JSONObjectWriter` uses.
    mutating func json(_ s: String) {
        byte(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { u in
            var runStart = 0
            for i in 0..<u.count {
                let c = u[i]
                guard c < 0x20 || c == 0x22 || c == 0x5C else { continue }
                bytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: u[runStart..<i])))
                runStart = i + 1
                byte(UInt8(ascii: "\\"))
                switch c {
                case 0x22: byte(0x22)
                case 0x5C: byte(0x5C)
                case 0x0A: byte(UInt8(ascii: "n"))
                case 0x0D: byte(UInt8(ascii: "r"))
                case 0x09: byte(UInt8(ascii: "t"))
                default:
                    ascii("u00")
                    byte(Self.hex.utf8Start[Int(c >> 4)])
                    byte(Self.hex.utf8Start[Int(c & 0xF)])
                }
            }
            bytes(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: u[runStart...])))
        }
        byte(UInt8(ascii: "\""))
    }
}
