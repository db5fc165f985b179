import IMWire
import NIOCore
import NIOWebSocket

/// RFC 6455's rules for the frames a client sends, as a value: fragments joined into messages,
/// control frames passed on, every protocol error named with its close code. No I/O.
struct FrameSequencer {
    /// What one received frame amounts to.
    enum Event: Equatable {
        /// A fragment was stored; the message is not complete yet.
        case partial
        /// A complete data message (still compressed when `compressed`).
        case message(ByteBuffer, text: Bool, compressed: Bool)
        case ping(ByteBuffer)
        case pong
        /// The peer's close frame: its status code (nil when it gave none) and reason.
        case close(UInt16?, String)
        /// The connection must fail with this close code.
        case fail(WebSocketErrorCode, String)
    }

    /// Whether permessage-deflate was negotiated (RSV1 may mark a compressed message).
    let compressionNegotiated: Bool
    /// The largest message, after joining fragments (compressed size; the inflater caps the rest).
    let maxMessageBytes: Int

    private var partial: ByteBuffer?
    private var partialIsText = false
    private var partialCompressed = false

    init(compressionNegotiated: Bool, maxMessageBytes: Int) {
        self.compressionNegotiated = compressionNegotiated
        self.maxMessageBytes = maxMessageBytes
    }

    /// Takes one frame as it came off the wire.
    /// - Parameters:
    ///   - firstByte: FIN, RSV1–3 and the opcode, as sent.
    ///   - masked: whether the frame carried a masking key (RFC 6455 §5.1: clients must mask).
    ///   - payload: the unmasked payload.
    mutating func receive(firstByte: UInt8, masked: Bool, payload: ByteBuffer) -> Event {
        let fin = firstByte & 0x80 != 0
        let rsv1 = firstByte & 0x40 != 0
        let opcode = firstByte & 0x0F
        guard masked else { return .fail(.protocolError, "client frames must be masked") }
        guard firstByte & 0x30 == 0 else { return .fail(.protocolError, "reserved bits RSV2/RSV3 set") }
        switch opcode {
        case 0x8, 0x9, 0xA:
            guard fin else { return .fail(.protocolError, "control frames must not be fragmented") }
            guard payload.readableBytes <= 125 else { return .fail(.protocolError, "control frame longer than 125 bytes") }
            guard !rsv1 else { return .fail(.protocolError, "RSV1 set on a control frame") }
            switch opcode {
            case 0x9: return .ping(payload)
            case 0xA: return .pong
            default: return Self.closeEvent(payload)
            }
        case 0x0:
            guard var buffer = partial else { return .fail(.protocolError, "continuation frame without a message to continue") }
            guard !rsv1 else { return .fail(.protocolError, "RSV1 set on a continuation frame") }
            guard buffer.readableBytes + payload.readableBytes <= maxMessageBytes else {
                partial = nil
                return .fail(.messageTooLarge, "message over \(maxMessageBytes) bytes")
            }
            partial = nil  // drop the stored reference before appending, so the buffer is not copied
            var more = payload
            buffer.writeBuffer(&more)
            guard fin else {
                partial = buffer
                return .partial
            }
            return .message(buffer, text: partialIsText, compressed: partialCompressed)
        case 0x1, 0x2:
            guard partial == nil else { return .fail(.protocolError, "new message before the fragmented one ended") }
            guard !rsv1 || compressionNegotiated else { return .fail(.protocolError, "RSV1 set without permessage-deflate") }
            guard payload.readableBytes <= maxMessageBytes else { return .fail(.messageTooLarge, "message over \(maxMessageBytes) bytes") }
            guard fin else {
                partial = payload
                partialIsText = opcode == 0x1
                partialCompressed = rsv1
                return .partial
            }
            return .message(payload, text: opcode == 0x1, compressed: rsv1)
        default:
            return .fail(.protocolError, "unknown opcode \(opcode)")
        }
    }

    private static func closeEvent(_ payload: ByteBuffer) -> Event {
        var payload = payload
        guard payload.readableBytes > 0 else { return .close(nil, "") }
        guard let code = payload.readInteger(as: UInt16.self) else { return .fail(.protocolError, "close frame with a 1-byte payload") }
        guard isValidCloseCode(code) else { return .fail(.protocolError, "invalid close code \(code)") }
        let reason = payload.readableBytesView
        guard UTF8Validation.isValid(reason) else { return .fail(.dataInconsistentWithMessage, "close reason is not valid UTF-8") }
        return .close(code, String(decoding: reason, as: UTF8.self))
    }

    /// Codes a peer may send (RFC 6455 §7.4; 1004–1006 and 1015 are never sent).
    static func isValidCloseCode(_ code: UInt16) -> Bool {
        switch code {
        case 1000...1003, 1007...1014, 3000...4999: true
        default: false
        }
    }
}
