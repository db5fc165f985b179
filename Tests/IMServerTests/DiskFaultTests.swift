import Foundation
import IMClient
import IMServer
import IMStorage
import IMWire
import Testing

/// A small tmpfs to put a store on, so that a test can fill its disk or make it read-only for real.
/// Needs root and mount (CI runs as root); without them the tests are skipped, saying why.
struct SmallDisk {
    let path: String

    static let available: Bool = {
        guard getuid() == 0 else { return false }
        let probe = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-mount-probe-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: probe, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: probe) }
        guard run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe) else { return false }
        return run("umount", probe)
    }()

    static func run(_ arguments: String...) -> Bool {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }

    init(megabytes: Int) throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-disk-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Self.run("mount", "-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path) else { throw TestFailure("mount failed") }
    }

    /// Remounts with other options (a new size; a read-only remount is refused by the kernel while the
    /// store has files open for writing, so a read-only disk cannot be made this way).
    func remount(_ options: String) -> Bool { Self.run("mount", "-o", "remount,\(options)", path) }

    func remove() {
        _ = Self.run("umount", "-l", path)
        try? FileManager.default.removeItem(atPath: path)
    }
}

@Suite(.serialized, .timeLimit(.minutes(10)), .enabled(if: SmallDisk.available, "needs root and mount (a tmpfs to fill)"))
struct DiskFaultTests {
    /// Sends one message at a time on a raw connection; returns the ack or the error code.
    static func send(_ ws: inout RawWebSocket, id: String, body: String) async throws -> Result<Ack, WireError> {
        try await ws.send(0x81, ClientFrame.send(id: id, to: .room("r"), body: body).encoded())
        switch try await ws.nextServerFrame() {
        case .ack(let ack)?: return .success(ack)
        case .error(let code, let message, _)?: return .failure(WireError(code, message))
        case let other: throw TestFailure("unexpected \(String(describing: other))")
        }
    }

    /// The disk fills up: sends are refused with `unavailable`, nothing unstored is acked, and once there
    /// is room again the same connection stores the refused message on its resend.
    @Test func aFullDiskRefusesSendsAndTheServerRecovers() async throws {
        let disk = try SmallDisk(megabytes: 3)
        defer { disk.remove() }
        let server = try await TestServer.start(directory: URL(fileURLWithPath: disk.path).appendingPathComponent("store"),
                                                historyCacheBytes: 0)
        let token = try await server.user("alice")
        let body = String(repeating: "x", count: 40_000)
        var acked: [Ack] = []
        var refused: String?
        try await RawWebSocket.with(server) { ws in
            try await ws.send(0x81, ClientFrame.auth(token: token).encoded())
            _ = try await ws.nextServerFrame()
            for i in 0..<200 {
                switch try await Self.send(&ws, id: "m\(i)", body: body) {
                case .success(let ack): acked.append(ack)
                case .failure(let error):
                    #expect(error.code == .unavailable, "\(error)")
                    refused = "m\(i)"
                }
                if refused != nil { break }
            }
            let id = try #require(refused, "200 × 40 kB fitted on a 3 MB disk")
            // There is room again: the resend of the refused message is stored.
            #expect(disk.remount("size=64m"))
            var stored = false
            for _ in 0..<50 where !stored {
                if case .success(let ack) = try await Self.send(&ws, id: id, body: body) {
                    acked.append(ack)
                    stored = true
                } else {
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
            #expect(stored, "the server did not recover once the disk had room")
        }
        // Every ack is a stored message, in order, with no gap.
        let messages = try await server.store.messages(in: .room("r"), afterSeq: 0, limit: 1_000)
        #expect(messages.map(\.seq) == acked.map(\.seq))
        #expect(messages.map(\.seq) == Array(1...Int64(messages.count)))
        try await server.stop(removeFiles: false)
    }
}
