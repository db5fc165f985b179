import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket reader that signs in, subscribes, and then never reads again: a blocking socket with a
/// small receive buffer, so that what the server sends piles up on the server's side.
final class StuckReader: @unchecked Sendable {
    let fd: Int32

    init(port: Int, token: String, room: String) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestError("socket failed") }
        var small: Int32 = 4096
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0 else { throw TestError("connect failed") }
        try send(Array(("GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").utf8))
        try send(Self.maskedText(#"{"op":"auth","token":"\#(token)"}"#))
        try send(Self.maskedText(#"{"op":"sub","to":"\#(room)"}"#))
        // Read up to the `subscribed` frame, then never again (until `drain`).
        var seen = [UInt8]()
        while !String(decoding: seen, as: UTF8.self).contains(#""op":"subscribed""#) {
            var buffer = [UInt8](repeating: 0, count: 512)
            let n = recv(fd, &buffer, buffer.count, 0)
            guard n > 0 else { throw TestError("closed before subscribed: \(String(decoding: seen, as: UTF8.self))") }
            seen += buffer[0..<n]
        }
    }

    deinit { close(fd) }

    private func send(_ bytes: [UInt8]) throws {
        guard Glibc.send(fd, bytes, bytes.count, 0) == bytes.count else { throw TestError("send failed") }
    }

    static func maskedText(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        precondition(payload.count < 126)
        let key: [UInt8] = [1, 2, 3, 4]
        return [0x81, 0x80 | UInt8(payload.count)] + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }

    /// Reads everything the server still sends, to the end of the connection; returns the bytes read
    /// and the status code of the close frame found among them (nil when there was none).
    func drain() -> (bytes: Int, closeCode: UInt16?, ended: Bool) {
        var all = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var ended = false
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 { ended = true; break }
            if n < 0 { ended = errno == ECONNRESET; break }
            all += buffer[0..<n]
        }
        // Walk the frames; the stream starts after the upgrade response and the frames already read,
        // so resynchronise on the first frame header that parses to the end.
        var code: UInt16?
        var i = 0
        while i + 2 <= all.count {
            let first = all[i]
            var length = Int(all[i + 1] & 0x7F)
            var header = 2
            if length == 126, i + 4 <= all.count { length = Int(all[i + 2]) << 8 | Int(all[i + 3]); header = 4 }
            if length == 127, i + 10 <= all.count {
                length = (0..<8).reduce(0) { $0 << 8 | Int(all[i + 2 + $1]) }
                header = 10
            }
            if first & 0x0F == 0x8, length >= 2, i + header + 2 <= all.count {
                code = UInt16(all[i + header]) << 8 | UInt16(all[i + header + 1])
            }
            i += header + length
        }
        return (all.count, code, ended)
    }
}

/// A plain HTTP/1.1 GET on loopback; the response as text ("" when it failed).
func httpGet(port: Int, path: String) -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return "" }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard ok == 0 else { return "" }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
    _ = send(fd, request, request.count, 0)
    var response = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buffer, buffer.count, 0)
        if n <= 0 { break }
        response += buffer[0..<n]
    }
    return String(decoding: response, as: UTF8.self)
}

/// The server's resident memory, in bytes.
func residentBytes(of pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = Int(line.split(separator: " ").dropFirst().first ?? "")
    else { return 0 }
    return kb * 1024
}

@Suite(.serialized) struct SlowReaderTests {
    /// A reader that never reads is cut (1008) once it owes its bound, while 300 MB go to its room and
    /// the server's memory stays bounded; its resume then finds every message.
    @Test(.timeLimit(.minutes(10))) func aReaderThatNeverReadsIsCutAndMemoryStaysBounded() async throws {
        try await withSandbox { sb in
            let tokens = try await sb.users("stuck", "flooder")
            let server = try await sb.startServer()
            let pid = try #require(server.child?.pid)
            let stuck = try await onOwnThread { try StuckReader(port: server.port, token: tokens["stuck"]!, room: "flood") }
            let before = residentBytes(of: pid)
            let count = 5_000
            let size = 60_000  // 5,000 × 60 kB: 300 MB of bodies
            let sender = try sb.spawn(["send", "flood", "--lines", "--token", tokens["flooder"]!], stdin: .pipe)
            let feeder = Thread {
                let filler = String(repeating: "x", count: size - 12)
                for i in 1...count where !sender.write(Data(String(format: "%010d %@\n", i, filler).utf8)) { break }
                sender.closeStdin()
            }
            feeder.start()
            var peak = before
            while sender.isRunning {
                peak = max(peak, residentBytes(of: pid))
                try await Task.sleep(for: .milliseconds(50))
            }
            let sent = await sender.finish(timeout: .seconds(10))
            #expect(sent.status == 0, "\(sent)")
            let growth = peak - before
            // 300 MB went through; what stays is the slow reader's 8 MiB bound, the 32 MiB history cache,
            // one sender's 4 MiB in flight and the allocator's slack.
            #expect(growth < 120 << 20, "server memory grew by \(growth >> 20) MiB while 300 MB went to the room")
            print("slow reader: server RSS \(before >> 20) MiB -> peak \(peak >> 20) MiB (+\(growth >> 20) MiB) while \(count * size / 1_000_000) MB were sent")

            // The reader was cut: the server counted it, and its connection ends (with 1008 when the close
            // frame made it out before the close timeout).
            let metrics = try await onOwnThread { httpGet(port: server.port, path: "/metrics") }
            #expect(metrics.contains("imctl_slow_consumers_total 1"), "\(metrics.split(separator: "\n").filter { $0.contains("slow") })")
            let drained = await withCheckedContinuation { c in
                Thread { c.resume(returning: stuck.drain()) }.start()
            }
            #expect(drained.ended, "the server did not close the stuck reader's connection")
            #expect(drained.closeCode == nil || drained.closeCode == 1008, "close code \(String(describing: drained.closeCode))")
            #expect(drained.bytes < 64 << 20, "the stuck reader was sent \(drained.bytes >> 20) MiB")

            // Resuming after its last seq (none) finds all of them, in order, once.
            let resumed = try await sb.imctl(["listen", "flood", "--since", "0", "--count", "\(count)", "--format", "{seq}",
                                              "--token", tokens["stuck"]!], timeout: .seconds(120))
            #expect(resumed.status == 0, "\(resumed.err)")
            if let mismatch = sequenceMismatch(resumed.lines, (1...count).map(String.init)) { Issue.record("resume: \(mismatch)") }
        }
    }
}
