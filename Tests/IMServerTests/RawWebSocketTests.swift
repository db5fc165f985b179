import IMWire
import NIOCore
import NIOPosix
import NIOWebSocket
import Testing

/// A WebSocket client written by hand over a TCP connection, to send what well-behaved clients never
/// do (the Autobahn testsuite's approach): unmasked frames, reserved bits, bad fragments and closes.
struct RawWebSocket {
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    let outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    var pending = ByteBuffer()

    /// Connects to the server, upgrades `/v1/ws` (no extensions) and runs `body`.
    static func with(_ server: TestServer, _ body: (inout RawWebSocket) async throws -> Void) async throws {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: server.port) { channel in
                channel.eventLoop.makeCompletedFuture { try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel) }
            }
        try await channel.executeThenClose { inbound, outbound in
            var ws = RawWebSocket(inbound: inbound.makeAsyncIterator(), outbound: outbound)
            try await outbound.write(ByteBuffer(string: "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"))
            // The response head, up to the blank line; what follows is WebSocket.
            while true {
                if let end = ws.pending.readableBytesView.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = ws.pending.readString(length: end.upperBound - ws.pending.readerIndex) ?? ""
                    #expect(head.hasPrefix("HTTP/1.1 101"), "\(head)")
                    break
                }
                guard var more = try await ws.inbound.next() else { throw TestFailure("closed during the upgrade") }
                ws.pending.writeBuffer(&more)
            }
            try await body(&ws)
        }
    }

    /// Sends one frame. `firstByte` is FIN, RSV and opcode as they go on the wire.
    func send(_ firstByte: UInt8, _ payload: [UInt8], masked: Bool = true) async throws {
        var frame = ByteBuffer()
        frame.writeInteger(firstByte)
        let maskBit: UInt8 = masked ? 0x80 : 0
        if payload.count < 126 {
            frame.writeInteger(maskBit | UInt8(payload.count))
        } else if payload.count <= 0xFFFF {
            frame.writeInteger(maskBit | 126)
            frame.writeInteger(UInt16(payload.count))
        } else {
            frame.writeInteger(maskBit | 127)
            frame.writeInteger(UInt64(payload.count))
        }
        if masked {
            let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
            frame.writeBytes(key)
            frame.writeBytes(payload.enumerated().map { $0.element ^ key[$0.offset % 4] })
        } else {
            frame.writeBytes(payload)
        }
        try await outbound.write(frame)
    }

    func send(_ firstByte: UInt8, _ text: String, masked: Bool = true) async throws {
        try await send(firstByte, Array(text.utf8), masked: masked)
    }

    /// The next frame from the server (first byte, payload), or nil when the connection closed.
    mutating func next() async throws -> (UInt8, [UInt8])? {
        while true {
            var b = pending
            if let first: UInt8 = b.readInteger(), let len7: UInt8 = b.readInteger() {
                #expect(len7 & 0x80 == 0, "server frames are never masked")
                var length: Int? = Int(len7 & 0x7F)
                if len7 & 0x7F == 126 { length = b.readInteger(as: UInt16.self).map(Int.init) }
                if len7 & 0x7F == 127 { length = b.readInteger(as: UInt64.self).map(Int.init) }
                if let length, let payload = b.readBytes(length: length) {
                    pending = b
                    return (first, payload)
                }
            }
            guard var more = try await inbound.next() else { return nil }
            pending.writeBuffer(&more)
        }
    }

    /// Reads until a close frame arrives; returns its code (nil without one), and checks that the
    /// server then closes the TCP connection.
    mutating func closeCode() async throws -> UInt16? {
        while let (first, payload) = try await next() {
            guard first & 0x0F == 0x8 else { continue }
            #expect(payload.count <= 125)
            let code = payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : nil
            // After its close frame the server sends nothing more and closes.
            #expect(try await next() == nil)
            return code
        }
        return nil
    }

    /// The next text frame, decoded as a server frame (skipping pings).
    mutating func nextServerFrame() async throws -> ServerFrame? {
        while let (first, payload) = try await next() {
            if first == 0x81 { return try ServerFrame.decode(payload) }
            if first & 0x0F == 0x8 { return nil }
        }
        return nil
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// RFC 6455's framing rules, end to end against the real server.
@Suite(.timeLimit(.minutes(2))) struct RawWebSocketTests {
    @Test func fragmentedMessageWithAPingBetweenItsFragments() async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                let text = #"{"op":"ping","ref":"é😀"}"#
                let bytes = Array(text.utf8)
                // Cut inside the 4-byte emoji: UTF-8 is checked on the whole message, not per fragment.
                let cut = bytes.count - 5
                try await ws.send(0x01, Array(bytes[..<cut]))
                try await ws.send(0x89, Array("are you there".utf8))
                try await ws.send(0x80, Array(bytes[cut...]))
                let (first, payload) = try #require(try await ws.next())
                #expect(first == 0x8A && payload == Array("are you there".utf8), "the pong answers the ping with its payload")
                #expect(try await ws.nextServerFrame() == .pong(ref: "é😀"))
            }
        }
    }

    @Test(arguments: [
        (UInt8(0x81), false, "unmasked frame"),
        (UInt8(0xA1), true, "RSV2 set"),
        (UInt8(0xC1), true, "RSV1 set without permessage-deflate"),
        (UInt8(0x83), true, "reserved opcode 3"),
        (UInt8(0x8B), true, "reserved opcode 11"),
        (UInt8(0x09), true, "fragmented ping"),
        (UInt8(0x80), true, "continuation without a message"),
    ])
    func protocolErrorsClose1002(firstByte: UInt8, masked: Bool, what: String) async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                try await ws.send(firstByte, #"{"op":"ping"}"#, masked: masked)
                #expect(try await ws.closeCode() == 1002, "\(what)")
            }
        }
    }

    @Test func controlFramesOver125BytesClose1002() async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x89, [UInt8](repeating: 0x61, count: 126))
                #expect(try await ws.closeCode() == 1002)
            }
        }
    }

    @Test func aNewMessageInsideAFragmentedOneCloses1002() async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x01, #"{"op":"#)
                try await ws.send(0x81, #"{"op":"ping"}"#)
                #expect(try await ws.closeCode() == 1002)
            }
        }
    }

    @Test func invalidUTF8AcrossFragmentsCloses1007() async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x01, Array(#"{"op":"ping","ref":""#.utf8) + [0xCE, 0xBA, 0xE1])
                try await ws.send(0x80, [0xBD, 0xED, 0xA0, 0x80] + Array(#""}"#.utf8))  // a surrogate: never valid UTF-8
                #expect(try await ws.closeCode() == 1007)
            }
        }
    }

    @Test func closeHandshakeEchoesTheCode() async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x88, [0x03, 0xE8] + Array("bye".utf8))
                #expect(try await ws.closeCode() == 1000)
            }
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x88, [0x0F, 0xA0])  // 4000, an application code
                #expect(try await ws.closeCode() == 4000)
            }
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x88, [])
                #expect(try await ws.closeCode() == 1000)
            }
        }
    }

    @Test(arguments: [[0x03, 0xED] as [UInt8] /* 1005 */, [0x03, 0xEE] /* 1006 */, [0x03, 0xE7] /* 999 */, [0x13, 0x88] /* 5000 */, [0x03]])
    func invalidClosePayloadsClose1002(payload: [UInt8]) async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x88, payload)
                #expect(try await ws.closeCode() == 1002)
            }
        }
    }

    @Test func closeReasonThatIsNotUTF8Closes1007() async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x88, [0x03, 0xE8, 0xED, 0xA0, 0x80])
                #expect(try await ws.closeCode() == 1007)
            }
        }
    }

    @Test func binaryFramesGetAnErrorAndTheConnectionStays() async throws {
        try await withServer { server in
            try await RawWebSocket.with(server) { ws in
                try await ws.send(0x82, [0, 1, 2])
                guard case .error(let code, _, _)? = try await ws.nextServerFrame() else { Issue.record("no error frame"); return }
                #expect(code == .binaryFrame)
                try await ws.send(0x81, #"{"op":"ping","ref":"still"}"#)
                #expect(try await ws.nextServerFrame() == .pong(ref: "still"))
            }
        }
    }

    @Test func oversizeMessageCloses1009() async throws {
        try await withServer(maxMessageBytes: 10) { server in
            try await RawWebSocket.with(server) { ws in
                // The frame limit is max(1 MiB, 6 × the body limit + 4 KiB): send more, in fragments.
                let piece = [UInt8](repeating: 0x20, count: 600_000)
                try await ws.send(0x01, Array("{".utf8) + piece)
                try await ws.send(0x80, piece + Array("}".utf8))
                #expect(try await ws.closeCode() == 1009)
            }
        }
    }
}
