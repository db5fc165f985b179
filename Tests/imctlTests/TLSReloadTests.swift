import Foundation
import Testing

/// Certificates rotate without a restart: `serve` loads the pair again on SIGHUP.
@Suite(.timeLimit(.minutes(10))) struct TLSReloadTests {
    /// Runs a program to the end (on a thread of its own); returns its exit status and stdout.
    static func run(_ arguments: [String], stdin: String = "") async throws -> (Int32, String) {
        try await onOwnThread { try runBlocking(arguments, stdin: stdin) }
    }

    static func runBlocking(_ arguments: [String], stdin: String) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let out = Pipe(), input = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = input
        try p.run()
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// A self-signed pair for 127.0.0.1 whose subject says `name`.
    static func certificate(_ name: String, in dir: URL) async throws -> (cert: String, key: String) {
        let cert = dir.appendingPathComponent("\(name).pem").path, key = dir.appendingPathComponent("\(name).key").path
        let (status, _) = try await run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                                   "-keyout", key, "-out", cert, "-subj", "/CN=\(name)", "-addext", "subjectAltName=IP:127.0.0.1"])
        try #require(status == 0)
        return (cert, key)
    }

    /// The subject of the certificate the server presents to a new connection.
    static func servedSubject(port: Int) async throws -> String {
        let (_, out) = try await run(["sh", "-c", "openssl s_client -connect 127.0.0.1:\(port) </dev/null 2>/dev/null | openssl x509 -noout -subject"])
        return out.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func sighupReloadsTheCertificate() async throws {
        try await withSandbox { sb in
            let tokens = try await sb.users("alice")
            let first = try await Self.certificate("first", in: sb.dir)
            let live = sb.dir.appendingPathComponent("live.pem").path, liveKey = sb.dir.appendingPathComponent("live.key").path
            try FileManager.default.copyItem(atPath: first.cert, toPath: live)
            try FileManager.default.copyItem(atPath: first.key, toPath: liveKey)
            let server = try await sb.startServer(["--tls-cert", live, "--tls-key", liveKey])
            #expect(try await Self.servedSubject(port: server.port).contains("CN = first"))
            let url = "wss://127.0.0.1:\(server.port)"
            let listener = try sb.spawn(["listen", "r", "--since", "0", "--server", url, "--cacert", first.cert, "--token", tokens["alice"]!])
            // Connected (it trusts only the first pair) before the reload: it has printed a message,
            // from history or live, whichever way the race between the two goes.
            let before = try await sb.imctl(["send", "r", "before the reload", "--server", url, "--cacert", first.cert, "--token", tokens["alice"]!])
            #expect(before.status == 0, "\(before)")
            #expect(await listener.waitForLines(1, timeout: .seconds(30)), "the listener did not start: \(listener.err)")

            // A new pair in place, and SIGHUP: new connections get it, the open one stays.
            let second = try await Self.certificate("second", in: sb.dir)
            try FileManager.default.removeItem(atPath: live)
            try FileManager.default.removeItem(atPath: liveKey)
            try FileManager.default.copyItem(atPath: second.cert, toPath: live)
            try FileManager.default.copyItem(atPath: second.key, toPath: liveKey)
            server.child?.signal(SIGHUP)
            var subject = ""
            for _ in 0..<100 where !subject.contains("CN = second") {
                try await Task.sleep(for: .milliseconds(100))
                subject = try await Self.servedSubject(port: server.port)
            }
            #expect(subject.contains("CN = second"), "still serving \(subject)")
            let sent = try await sb.imctl(["send", "r", "after the reload", "--server", url, "--cacert", second.cert, "--token", tokens["alice"]!])
            #expect(sent.status == 0, "\(sent)")
            #expect(await listener.waitForLines(2, timeout: .seconds(30)), "the connection opened before the reload was dropped: \(listener.err)")
            #expect(listener.isRunning)

            // A pair that does not load is logged, and the one in use stays.
            try "junk".write(toFile: live, atomically: true, encoding: .utf8)
            server.child?.signal(SIGHUP)
            #expect(await server.child?.waitUntil(timeout: .seconds(20)) { $0.err.contains("could not reload") } == true, "\(server.stderr)")
            #expect(try await Self.servedSubject(port: server.port).contains("CN = second"))
            #expect(server.isRunning)
        }
    }
}
