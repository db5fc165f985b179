import Foundation
import IMClient
@testable import IMServer
import IMAuth
import IMStorage
import IMWire
import NIOPosix
import Dispatch
import Synchronization
import Testing

/// An HTTP request by hand from a chosen loopback source address (127.0.0.2, …), so that tests can be
/// "somewhere else". Blocking, on a thread of its own (not a pool the server may need).
func rawHTTP(port: Int, method: String = "POST", path: String, body: String, from source: String = "127.0.0.1",
             headers: [String] = [], timeout: Int = 20) async throws -> (status: Int, body: String) {
    let r = try await rawHTTPResponse(port: port, method: method, path: path, body: body, from: source, headers: headers, timeout: timeout)
    return (r.status, r.body)
}

/// The same, with the response's header lines (lowercased names) too.
func rawHTTPResponse(port: Int, method: String = "POST", path: String, body: String = "", from source: String = "127.0.0.1",
                     headers: [String] = [], timeout: Int = 20) async throws -> (status: Int, body: String, headers: [String: String]) {
    await withCheckedContinuation { continuation in
        Thread {
            continuation.resume(returning: blockingHTTP(port: port, method: method, path: path, body: body, from: source, headers: headers,
                                                        timeout: timeout))
        }.start()
    }
}

private func blockingHTTP(port: Int, method: String, path: String, body: String, from source: String,
                          headers: [String], timeout seconds: Int) -> (status: Int, body: String, headers: [String: String]) {
    do {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return (0, "socket failed", [:]) }
        defer { close(fd) }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        local.sin_addr.s_addr = inet_addr(source)
        _ = withUnsafePointer(to: &local) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { return (0, "connect failed", [:]) }
        let request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + headers.map { $0 + "\r\n" }.joined() + "Content-Length: \(body.utf8.count)\r\n\r\n" + body
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var response = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            response += buffer[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let split = text.range(of: "\r\n\r\n")
        let bodyStart = split.map { String(text[$0.upperBound...]) } ?? ""
        var fields: [String: String] = [:]
        for line in (split.map { String(text[..<$0.lowerBound]) } ?? text).components(separatedBy: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return (status, bodyStart, fields)
    }
}

@Suite(.timeLimit(.minutes(10))) struct LoginHardeningTests {
    static func login(_ user: String, _ password: String, ttl: Int? = nil) -> String {
        #"{"user":"\#(user)","password":"\#(password)"\#(ttl.map { #","ttl_seconds":\#($0)"# } ?? "")}"#
    }

    /// Twenty guesses at once get no more tries than five one after another; the user is not locked
    /// out from another address; the right password from the guessing address waits too.
    @Test func aBurstOfGuessesGetsFiveTries() async throws {
        try await withServer { server in
            try await server.user("alice", password: "correct-horse")
            let results = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<20 { group.addTask { try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("alice", "guess")).status } }
                var statuses: [Int] = []
                for try await s in group { statuses.append(s) }
                return statuses
            }
            let hashed = results.filter { $0 == 401 }.count
            #expect(hashed <= LoginThrottle.maxFailuresPerName, "\(hashed) guesses were checked: \(results)")
            #expect(results.allSatisfy { $0 == 401 || $0 == 429 }, "\(results)")
            // Not locked out from elsewhere.
            let elsewhere = try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("alice", "correct-horse"), from: "127.0.0.2")
            #expect(elsewhere.status == 200, "\(elsewhere)")
            // From the guessing address, even the right password waits (until at most five have failed).
            for _ in 0..<LoginThrottle.maxFailuresPerName {
                _ = try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("alice", "guess"))
            }
            let here = try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("alice", "correct-horse"))
            #expect(here.status == 429, "\(here)")
        }
    }

    /// A flood of sign-ins cannot hold up the store: with the hashing threads held busy, messages are still
    /// stored and acked (the store has threads of its own), and sign-ins beyond the bounded queue get 503.
    @Test func aLoginFloodDoesNotStarveTheStore() async throws {
        try await withServer { server in
            let alice = server.client(try await server.user("alice"))
            let hasher = server.background.server.hasher
            // Hold every hashing thread until the send below is acked.
            let release = DispatchSemaphore(value: 0)
            let holders = (0..<PasswordHasher.threads).map { _ in Task { try await hasher.run { release.wait() } } }
            while hasher.waitingCount < PasswordHasher.threads { try await Task.sleep(for: .milliseconds(10)) }
            // Fill the rest of the queue with sign-ins that wait, then one more is refused at once.
            let queued = (PasswordHasher.threads..<PasswordHasher.maxWaiting).map { i in
                // Each waits for the hashes before it: on a loaded machine that can take a while.
                Task { try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("nobody\(i)", "guess"), from: "127.0.1.\(i + 1)",
                                         timeout: 150) }
            }
            // Wait (bounded) until all of them are in the queue.
            let deadline = ContinuousClock.now + .seconds(60)
            while hasher.waitingCount < PasswordHasher.maxWaiting, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(hasher.waitingCount == PasswordHasher.maxWaiting)
            let refused = try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("nobody", "guess"), from: "127.0.2.1")
            // The store is not queued behind them: a message is stored and acked while no hash can run.
            let acks = try await send(["during the flood"], to: .room("r"), alice)
            for _ in holders { release.signal() }
            #expect(refused.status == 503, "\(refused)")
            #expect(acks.count == 1)
            for q in queued {
                let r = try await q.value
                #expect(r.status == 401, "\(r)")
            }
            for h in holders { _ = try await h.value }
        }
    }

    @Test func loginTokensExpire() async throws {
        try await withServer { server in
            try await server.user("alice", password: "correct-horse")
            let r = try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("alice", "correct-horse"))
            #expect(r.status == 200, "\(r)")
            let tokens = try await server.store.tokens(of: "alice").filter { $0.label == "login" }
            let expires = try #require(tokens.first?.expiresAt)
            let days = Double(expires - Timestamp.nowMillis()) / 86_400_000
            #expect(days > 29.9 && days <= 30, "a login token lives 30 days by default, this one \(days)")
            // A short one stops working.
            let short = try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("alice", "correct-horse", ttl: 1))
            let token = try #require((try? JSONSerialization.jsonObject(with: Data(short.body.utf8)) as? [String: Any])?["token"] as? String)
            try await Task.sleep(for: .milliseconds(1_500))
            await #expect(throws: ClientError.self) { try await APIClient(server: server.url, token: token).call("GET", "/v1/me") }
            // Lifetimes out of range are refused, and the server stays up.
            for ttl in [0, -5, Int.max] {
                let bad = try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("alice", "correct-horse", ttl: ttl))
                #expect(bad.status == 400, "ttl \(ttl): \(bad)")
            }
            let admin = APIClient(server: server.url, token: try await server.user("root", admin: true))
            await #expect(throws: ClientError.self) {
                try await admin.call("POST", "/v1/users/alice/tokens", json: #"{"ttl_seconds":9223372036854775807}"#)
            }
            #expect(try await admin.call("GET", "/healthz").contains("ok"))
        }
    }

    /// New hashes use OWASP's scrypt cost; hashes below the floor are refused; older ones are re-made
    /// at the next sign-in, keeping the user's tokens.
    @Test func passwordHashCosts() async throws {
        // 128 MiB and most of a second per hash: on NIO's thread pool, not the cooperative one.
        let (fresh, verified, weakAccepted) = try await NIOThreadPool.singleton.runIfActive {
            let fresh = try Credentials.hashPassword("a-password")
            let weak = try Credentials.hashPassword("a-password", cost: 1 << 10)
            return (fresh, Credentials.verifyPassword("a-password", hash: fresh), Credentials.verifyPassword("a-password", hash: weak))
        }
        #expect(fresh.hasPrefix("scrypt$131072$8$1$"))
        #expect(verified)
        #expect(!weakAccepted, "a hash below the floor was accepted")
        try await withServer { server in
            let token = try await server.user("alice", password: "correct-horse")  // made at the floor cost
            #expect(try await server.store.passwordHash(of: "alice")?.hasPrefix("scrypt$16384$") == true)
            let r = try await rawHTTP(port: server.port, path: "/v1/login", body: Self.login("alice", "correct-horse"))
            #expect(r.status == 200, "\(r)")
            #expect(try await server.store.passwordHash(of: "alice")?.hasPrefix("scrypt$131072$") == true)
            #expect(try await APIClient(server: server.url, token: token).call("GET", "/v1/me").contains("alice"))
        }
    }

    @Test func emptyClientIDsAreRefusedOverHTTPToo() async throws {
        try await withServer { server in
            let token = try await server.user("alice")
            let r = try await rawHTTP(port: server.port, path: "/v1/messages", body: #"{"to":"r","body":"x","id":""}"#,
                                      headers: ["Authorization: Bearer \(token)"])
            #expect(r.status == 400, "\(r)")
        }
    }
}
