import Foundation
import IMClient
import IMServer
import IMAuth
import IMStorage
import IMWire
import NIOPosix
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct HTTPTests {
    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func loginPostAndHistory() async throws {
        try await withServer { server in
            try await server.user("alice", password: "correct-horse")
            let token = try await APIClient(server: server.url, token: nil).login(user: "alice", password: "correct-horse")
            #expect(token.hasPrefix("imt_"))
            let api = APIClient(server: server.url, token: token)
            let ack = try object(try await api.call("POST", "/v1/messages", json: #"{"to":"general","body":"over http","id":"h1"}"#))
            #expect(ack["seq"] as? Int == 1)
            let again = try object(try await api.call("POST", "/v1/messages", json: #"{"to":"general","body":"over http","id":"h1"}"#))
            #expect(again["duplicate"] as? Bool == true)
            let history = try object(try await api.call("GET", "/v1/history?to=general&after=0"))
            let messages = try #require(history["messages"] as? [[String: Any]])
            #expect(messages.count == 1)
            #expect(messages.first?["body"] as? String == "over http")
            #expect(messages.first?["from"] as? String == "alice")
            #expect(try object(try await APIClient(server: server.url, token: nil).call("GET", "/healthz"))["status"] as? String == "ok")
            let metrics = try await APIClient(server: server.url, token: nil).call("GET", "/metrics")
            #expect(metrics.contains("imctl_messages_stored_total 1"))
            // Logout revokes the token.
            try await api.logout()
            await #expect(throws: ClientError.self) { try await api.call("GET", "/v1/history?to=general") }
        }
    }

    @Test func wrongPasswordUnknownUserAndDisabledUserAllLookTheSame() async throws {
        try await withServer { server in
            try await server.user("alice", password: "correct-horse")
            try await server.user("dora", password: "correct-horse")
            try await server.store.setDisabled("dora", true)
            let api = APIClient(server: server.url, token: nil)
            var messages: [String] = []
            for (user, password) in [("alice", "wrong-password"), ("nobody", "correct-horse"), ("dora", "correct-horse")] {
                do {
                    _ = try await api.login(user: user, password: password)
                    Issue.record("\(user) signed in")
                } catch let e as ClientError {
                    #expect(e.kind == .unauthorized)
                    messages.append(e.message)
                }
            }
            #expect(Set(messages).count == 1, "\(messages)")
        }
    }

    @Test func twoFactorSignIn() async throws {
        try await withServer { server in
            try await server.user("alice", password: "correct-horse")
            let secret = TOTP.newSecret()
            try await server.store.setOTPSecret(of: "alice", to: secret)
            let api = APIClient(server: server.url, token: nil)
            // Right password, no code: the client learns that a code is needed.
            do {
                _ = try await api.login(user: "alice", password: "correct-horse")
                Issue.record("signed in without a code")
            } catch let e as ClientError {
                #expect(e.kind == .otpRequired)
            }
            // Wrong password with a code: the same answer as any wrong password.
            do {
                _ = try await api.login(user: "alice", password: "wrong-horse", otp: "000000")
                Issue.record("signed in with a wrong password")
            } catch let e as ClientError {
                #expect(e.kind == .unauthorized)
            }
            let now = Timestamp.nowMillis() / 1000
            let bytes = try #require(Base32.decode(secret))
            let wrong = TOTP.code(secret: bytes, step: TOTP.step(at: now) - 5)
            await #expect(throws: ClientError.self) { try await api.login(user: "alice", password: "correct-horse", otp: wrong) }
            let code = TOTP.code(secret: bytes, step: TOTP.step(at: now))
            let token = try await api.login(user: "alice", password: "correct-horse", otp: code)
            #expect(token.hasPrefix("imt_"))
            // A code works once.
            await #expect(throws: ClientError.self) { try await api.login(user: "alice", password: "correct-horse", otp: code) }
        }
    }

    @Test func repeatedFailuresAreThrottled() async throws {
        try await withServer { server in
            try await server.user("alice", password: "correct-horse")
            let api = APIClient(server: server.url, token: nil)
            for _ in 0..<5 { _ = try? await api.login(user: "alice", password: "guess") }
            // Even the right password is refused for a while now.
            do {
                _ = try await api.login(user: "alice", password: "correct-horse")
                Issue.record("not throttled")
            } catch let e as ClientError {
                #expect(e.kind == .unauthorized)
                #expect(e.message.contains("too many"))
            }
        }
    }

    @Test func adminAPINeedsAnAdmin() async throws {
        try await withServer { server in
            let admin = APIClient(server: server.url, token: try await server.user("root", admin: true))
            let plain = APIClient(server: server.url, token: try await server.user("pat"))
            _ = try await admin.call("POST", "/v1/users", json: #"{"name":"newbie","password":"long-enough"}"#)
            let list = try object(try await admin.call("GET", "/v1/users"))
            #expect((list["users"] as? [[String: Any]])?.compactMap { $0["name"] as? String } == ["newbie", "pat", "root"])
            do {
                _ = try await plain.call("GET", "/v1/users")
                Issue.record("non-admin listed users")
            } catch let e as ClientError {
                #expect(e.kind == .unauthorized)
            }
            await #expect(throws: ClientError.self) { try await admin.call("POST", "/v1/users", json: #"{"name":"x","password":"short"}"#) }
        }
    }

    /// The handshake shows permessage-deflate when both sides want it, and not when the server is told not to.
    @Test(arguments: [true, false])
    func permessageDeflateIsNegotiated(serverCompression: Bool) async throws {
        try await withServer(compression: serverCompression) { server in
            let response = try await rawUpgrade(port: server.port, extensions: "permessage-deflate; client_max_window_bits")
            #expect(response.hasPrefix("HTTP/1.1 101"))
            // Strict clients (Python websockets, browsers) refuse a response with these twice.
            let lines = response.lowercased().split(separator: "\r\n")
            #expect(lines.filter { $0.hasPrefix("upgrade:") }.count == 1, "\(response)")
            #expect(lines.filter { $0.hasPrefix("connection:") }.count == 1, "\(response)")
            #expect(lines.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="), "\(response)")
            let negotiated = response.lowercased().contains("sec-websocket-extensions: permessage-deflate")
            #expect(negotiated == serverCompression, "\(response)")
            // A client that does not ask (as with --no-compression) gets no extension either way.
            let plain = try await rawUpgrade(port: server.port, extensions: nil)
            #expect(plain.hasPrefix("HTTP/1.1 101"))
            #expect(!plain.lowercased().contains("sec-websocket-extensions"), "\(plain)")
            // Bodies arrive byte-identical either way, compressible or not.
            let alice = server.client(try await server.user("alice"), compression: true)
            let body = String(repeating: "compressible text ", count: 500) + "é😀\u{1}"
            let (task, collector) = try await startListener(alice, scopes: [.target(.room("z"))])
            _ = try await send([body, "short"], to: .room("z"), server.client(try await server.user("bob"), compression: false))
            try await collector.wait(for: 2)
            task.cancel()
            #expect(collector.messages.map(\.body) == [body, "short"])
        }
    }

    /// Sends a WebSocket upgrade by hand and returns the response head. The blocking socket calls run on
    /// NIO's thread pool: on the cooperative pool they could starve the in-process server of threads.
    func rawUpgrade(port: Int, extensions: String?) async throws -> String {
        try await NIOThreadPool.singleton.runIfActive { Self.blockingUpgrade(port: port, extensions: extensions) }
    }

    static func blockingUpgrade(port: Int, extensions: String?) -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return "socket failed" }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { return "connect failed" }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = "GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            + (extensions.map { "Sec-WebSocket-Extensions: \($0)\r\n" } ?? "") + "\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: response, as: UTF8.self).contains("\r\n\r\n") {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        return String(decoding: response, as: UTF8.self)
    }
}
