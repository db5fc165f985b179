import Foundation
import HummingbirdWSClient
import IMClient
import IMServer
import IMWire
import NIOCore
import NIOWebSocket
import Testing

@Suite struct HostileClientTests {
    /// Garbage of every kind gets an error frame with a code, and the same connection still works afterwards.
    @Test func badFramesGetErrorsAndTheConnectionStays() async throws {
        try await withServer(maxMessageBytes: 1000) { server in
            let token = try await server.user("mallory")
            let bystander = server.client(try await server.user("alice"))
            let (task, collector) = try await startListener(bystander, scopes: [.target(.room("r"))])
            try await withRawClient(server) { s in
                func expectError(_ frame: String, _ code: WireError.Code, id: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) async throws {
                    try await s.send(frame)
                    let reply = try await s.next()
                    guard case .error(let got, let message, let gotID) = reply else {
                        Issue.record("\(frame.prefix(60)) → \(String(describing: reply))", sourceLocation: sourceLocation)
                        return
                    }
                    #expect(got == code, "\(frame.prefix(60)): \(message)", sourceLocation: sourceLocation)
                    #expect(gotID == id, sourceLocation: sourceLocation)
                }
                // Before signing in, everything but auth and ping is refused.
                try await expectError(#"{"op":"send","id":"1","to":"r","body":"x"}"#, .unauthorized)
                try await s.send(ClientFrame.auth(token: token).encoded())
                guard case .authed = try await s.next() else { Issue.record("not authed"); return }

                try await expectError("not json at all", .badJSON)
                try await expectError("[1,2,3]", .badJSON)
                try await expectError("{}", .badFrame)
                try await expectError(#"{"op":42}"#, .badFrame)
                try await expectError(#"{"op":"launch","id":"x"}"#, .unknownOp, id: "x")
                try await expectError(#"{"op":"send","id":7,"to":"r","body":"x"}"#, .badFrame)
                try await expectError(#"{"op":"send","id":"a","to":["r"],"body":"x"}"#, .badFrame, id: "a")
                try await expectError(#"{"op":"send","id":"b","to":"NOT A ROOM","body":"x"}"#, .badTarget, id: "b")
                try await expectError(#"{"op":"send","id":"c","to":"r","body":"\#(String(repeating: "x", count: 1001))"}"#, .tooLarge, id: "c")
                try await expectError(#"{"op":"send","id":"\#(String(repeating: "i", count: 500))","to":"r","body":"x"}"#, .badFrame)
                try await expectError(#"{"op":"sub","to":"r","after":"soon"}"#, .badFrame)
                try await expectError(#"{"op":"send","id":"d","to":"@nobody","body":"x"}"#, .notFound, id: "d")
                // A frame far over the body limit but under the frame limit is answered, not dropped.
                try await expectError(#"{"op":"send","id":"e","to":"r","body":"\#(String(repeating: "y", count: 200_000))"}"#, .tooLarge, id: "e")
                // Binary frames are not part of the protocol.
                try await s.outbound.write(.binary(ByteBuffer(bytes: [0, 1, 2, 255])))
                guard case .error(let code, _, _) = try await s.next() else { Issue.record("no error for binary"); return }
                #expect(code == .binaryFrame)

                // The connection still works.
                try await s.send(ClientFrame.send(id: "ok", to: .room("r"), body: "still here").encoded())
                guard case .ack(let ack) = try await s.next() else { Issue.record("no ack after the garbage"); return }
                #expect(ack.seq == 1)
                try await s.send(ClientFrame.ping(ref: "p1").encoded())
                #expect(try await s.next() == .pong(ref: "p1"))
                try await s.outbound.close(.normalClosure, reason: nil)
            }
            // Everyone else kept being served.
            _ = try await send(["hello"], to: .room("r"), bystander)
            try await collector.wait(for: 2)
            task.cancel()
            #expect(collector.messages.map(\.body) == ["still here", "hello"])
        }
    }

    @Test func invalidUTF8ClosesWith1007() async throws {
        try await withServer { server in
            let token = try await server.user("mallory")
            let close = try await withRawClient(server, headers: [("Authorization", "Bearer \(token)")]) { s in
                guard case .authed = try await s.next() else { Issue.record("not authed"); return }
                try await s.outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: ByteBuffer(bytes: [0x7B, 0xFF, 0xFE, 0x7D]))))
                while try await s.next() != nil {}
            }
            #expect(close?.closeCode == .dataInconsistentWithMessage)
            // The server is fine.
            let alice = server.client(try await server.user("alice"))
            #expect(try await send(["after"], to: .room("r"), alice).count == 1)
        }
    }

    @Test func badBearerTokenIsRefusedWithAReason() async throws {
        try await withServer { server in
            let close = try await withRawClient(server, headers: [("Authorization", "Bearer imt_wrong")]) { s in
                guard case .error(let code, _, _) = try await s.next() else { Issue.record("expected an error frame"); return }
                #expect(code == .unauthorized)
                while try await s.next() != nil {}
            }
            #expect(close?.closeCode == .policyViolation)
            // And through the client library: a ClientError that maps to exit 77.
            do {
                _ = try await send(["x"], to: .room("r"), server.client("imt_wrong"))
                Issue.record("expected a refusal")
            } catch let e as ClientError {
                #expect(e.kind == .unauthorized)
            }
        }
    }

    @Test func unreachableServerMapsTo69() async throws {
        // A port that was just free: nothing listens there.
        let server = try await TestServer.start()
        let port = server.port
        try await server.stop()
        let config = ClientConfiguration(server: "ws://127.0.0.1:\(port)", token: "imt_x", reconnect: false)
        do {
            _ = try await send(["x"], to: .room("r"), config)
            Issue.record("expected unreachable")
        } catch let e as ClientError {
            #expect(e.kind == .unreachable)
        }
    }

    @Test func gracefulShutdownClosesClientsWith1001() async throws {
        let server = try await TestServer.start()
        let token = try await server.user("alice")
        let (signedIn, signal) = AsyncStream.makeStream(of: Void.self)
        let closed = Task {
            try await withRawClient(server, headers: [("Authorization", "Bearer \(token)")]) { s in
                if case .authed = try await s.next() { signal.yield() }
                while try await s.next() != nil {}
            }
        }
        // Wait until the connection is signed in, then shut down.
        var it = signedIn.makeAsyncIterator()
        _ = await it.next()
        try await server.stop()
        let frame = try await closed.value
        #expect(frame?.closeCode == .goingAway)
    }
}

@Suite struct StartupTests {
    /// A server that cannot bind its port stops with an error instead of hanging.
    @Test func aBusyPortIsAnErrorNotAHang() async throws {
        try await withServer { first in
            await #expect(throws: (any Error).self) {
                let second = try await TestServer.start(port: first.port)
                try await second.stop()
            }
        }
    }
}
