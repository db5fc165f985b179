import NIOSSL

/// A TLS certificate or key file that cannot be used.
public struct TLSFileError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// How a server listens and what it accepts. Built by `imctl serve`; the library never reads flags.
public struct ServerConfiguration: Sendable {
    /// Address to bind.
    public var host: String
    /// Port to bind; 0 picks a free one (reported through `onReady`).
    public var port: Int
    /// Largest message body accepted, in UTF-8 bytes.
    public var maxMessageBytes: Int
    /// Offer permessage-deflate (RFC 7692) to clients that ask.
    public var compression: Bool
    /// Paths of a PEM certificate chain and key; both or neither.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?

    /// Most messages committed in one transaction. Large enough to amortise an fsync over a burst from
    /// hundreds of pipelined senders, small enough that one batch never holds up acks for long.
    public static let maxBatch = 2048
    /// Frames queued for one slow connection before it is closed (it resumes after its last seq).
    public static let maxQueuedFrames = 65_536
    /// Messages read from the store per page while replaying history.
    public static let replayPage = 1000

    public init(host: String = "127.0.0.1", port: Int = 7700, maxMessageBytes: Int = 65536, compression: Bool = true,
                tlsCertificatePath: String? = nil, tlsKeyPath: String? = nil) {
        self.host = host
        self.port = port
        self.maxMessageBytes = maxMessageBytes
        self.compression = compression
        self.tlsCertificatePath = tlsCertificatePath
        self.tlsKeyPath = tlsKeyPath
    }

    /// The TLS settings from the PEM files, or nil without TLS. Throws a readable error for a bad file.
    func tlsConfiguration() throws -> TLSConfiguration? {
        guard let certPath = tlsCertificatePath, let keyPath = tlsKeyPath else { return nil }
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certPath)
        } catch {
            throw TLSFileError(path: certPath, reason: "not a PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw TLSFileError(path: certPath, reason: "holds no certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyPath, format: .pem)
        } catch {
            throw TLSFileError(path: keyPath, reason: "not a PEM private key (\(error))")
        }
        return TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
    }

    /// Largest WebSocket message read: a body of the limit written entirely as JSON `\uXXXX` escapes,
    /// plus room for the other fields. Larger bodies still get a `too_large` error frame.
    var maxFrameBytes: Int { max(1 << 20, maxMessageBytes * 6 + 4096) }
}
