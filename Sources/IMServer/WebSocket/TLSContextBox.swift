import NIOSSL
import Synchronization

/// The server's TLS context, which `reload()` replaces from the certificate and key files: new
/// connections get the new pair, open ones keep theirs, and a pair that does not load leaves the old
/// one in place. So certificates rotate without a restart (`serve` reloads on SIGHUP).
final class TLSContextBox: Sendable {
    private let configuration: ServerConfiguration
    private let current: Mutex<NIOSSLContext>

    /// Loads the files named by `configuration` (which must have both).
    init(configuration: ServerConfiguration) throws {
        self.configuration = configuration
        current = Mutex(try Self.load(configuration))
    }

    private static func load(_ configuration: ServerConfiguration) throws -> NIOSSLContext {
        guard let tls = try configuration.tlsConfiguration() else {
            throw TLSFileError(path: configuration.tlsCertificatePath ?? "-", reason: "no certificate and key configured")
        }
        return try NIOSSLContext(configuration: tls)
    }

    /// The context for the next connection.
    var context: NIOSSLContext { current.withLock { $0 } }

    /// Loads the files again; throws (keeping the old pair) when they do not make a usable pair.
    func reload() throws {
        let fresh = try Self.load(configuration)
        current.withLock { $0 = fresh }
    }
}
