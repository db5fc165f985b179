import Foundation
import IMClient
import IMServer
import IMWire
import NIOPosix
import Testing

/// A self-signed certificate for 127.0.0.1 made by openssl at test time.
func selfSignedCertificate(in dir: URL, names: String = "IP:127.0.0.1,DNS:localhost") async throws -> (certificate: String, key: String) {
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
    let status = try await NIOThreadPool.singleton.runIfActive { () -> Int32 in
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                       "-keyout", key, "-out", cert, "-subj", "/CN=imctl-test", "-addext", "subjectAltName=\(names)"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return p.terminationStatus
    }
    try #require(status == 0, "openssl could not make a certificate")
    return (cert, key)
}

@Suite struct TLSTests {
    @Test func sendListenAndLoginOverTLS() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-tls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tls = try await selfSignedCertificate(in: dir)
        let server = try await TestServer.start(tls: tls)
        do {
            let token = try await server.user("alice", password: "correct-horse")
            // A host name, as the certificate names it: TLS clients cannot send an IP address as the server name.
            let url = "wss://localhost:\(server.port)"
            var trusted = ClientConfiguration(server: url, token: token, caCertificatePath: tls.certificate)
            trusted.signInTimeout = .seconds(30)   // a loaded two-core run (see TestServer.client)
            let (task, collector) = try await startListener(trusted, scopes: [.target(.room("secure"))])
            let acks = try await send(["over tls"], to: .room("secure"), trusted)
            #expect(acks.map(\.seq) == [1])
            try await collector.wait(for: 1)
            task.cancel()
            #expect(collector.messages.map(\.body) == ["over tls"])

            let login = try await APIClient(server: url, token: nil, caCertificatePath: tls.certificate)
                .login(user: "alice", password: "correct-horse")
            #expect(login.hasPrefix("imt_"))

            // Without the CA the self-signed certificate is refused, with advice.
            do {
                _ = try await send(["x"], to: .room("secure"), ClientConfiguration(server: url, token: token, reconnect: false))
                Issue.record("an untrusted certificate was accepted")
            } catch let e as ClientError {
                #expect(e.kind == .unreachable)
                #expect(e.message.contains("--cacert"), "\(e.message)")
            }
            // The URL `serve` prints, with an IP address, works when the certificate names that address
            // (checked against the peer's address: an IP is never sent as a TLS server name).
            let byIP = try await send(["by address"], to: .room("secure"), ClientConfiguration(
                server: "wss://127.0.0.1:\(server.port)", token: token, reconnect: false, caCertificatePath: tls.certificate))
            #expect(byIP.map(\.seq) == [2])
            let loginByIP = try await APIClient(server: "wss://127.0.0.1:\(server.port)", token: nil, caCertificatePath: tls.certificate)
                .login(user: "alice", password: "correct-horse")
            #expect(loginByIP.hasPrefix("imt_"))
            // Plain ws:// to a TLS port does not work either.
            var plain = ClientConfiguration(server: "ws://localhost:\(server.port)", token: token, reconnect: false)
            plain.signInTimeout = .seconds(2)
            do {
                _ = try await send(["x"], to: .room("secure"), plain)
                Issue.record("plain ws:// to a TLS port worked")
            } catch let e as ClientError {
                #expect(e.kind == .unreachable)
                #expect(e.message.contains("wss://"), "\(e.message)")
            }
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    /// A certificate that does not name the address is refused when connecting by address, and the
    /// server speaks nothing older than TLS 1.2.
    @Test func addressesAreCheckedAndOldTLSIsRefused() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-tls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let tls = try await selfSignedCertificate(in: dir, names: "DNS:localhost")
        let server = try await TestServer.start(tls: tls)
        do {
            let token = try await server.user("alice")
            do {
                _ = try await send(["x"], to: .room("r"), ClientConfiguration(server: "wss://127.0.0.1:\(server.port)", token: token,
                                                                             reconnect: false, caCertificatePath: tls.certificate))
                Issue.record("a certificate that does not name 127.0.0.1 was accepted for it")
            } catch let e as ClientError {
                #expect(e.kind == .unreachable, "\(e)")
            }
            #expect(try await send(["x"], to: .room("r"), ClientConfiguration(server: "wss://localhost:\(server.port)", token: token,
                                                                              reconnect: false, caCertificatePath: tls.certificate)).count == 1)
            for (version, accepted) in [("-tls1_1", false), ("-tls1_2", true), ("-tls1_3", true)] {
                let ok = try await NIOThreadPool.singleton.runIfActive { () -> Bool in
                    let p = Process()
                    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    p.arguments = ["openssl", "s_client", "-connect", "127.0.0.1:\(server.port)", version, "-cipher", "DEFAULT@SECLEVEL=0"]
                    p.standardInput = FileHandle.nullDevice
                    p.standardOutput = FileHandle.nullDevice
                    p.standardError = FileHandle.nullDevice
                    try p.run()
                    p.waitUntilExit()
                    return p.terminationStatus == 0
                }
                #expect(ok == accepted, "TLS \(version): handshake \(ok ? "succeeded" : "failed")")
            }
        } catch {
            try? await server.stop()
            throw error
        }
        try await server.stop()
    }

    @Test func unusableCertificateFilesAreAClearError() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let junk = dir.appendingPathComponent("junk.pem").path
        try "not a certificate".write(toFile: junk, atomically: true, encoding: .utf8)
        do {
            let server = try await TestServer.start(tls: (junk, junk))
            try await server.stop()
            Issue.record("a server started with a junk certificate")
        } catch {
            #expect("\(error)".contains("junk.pem"), "\(error)")
        }
    }
}
