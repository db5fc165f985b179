import Foundation
public import NIOSSL
/// Where and how a client connects. Built by the commands from flags, environment and stored credentials.
public struct ClientConfiguration: Sendable {
    /// `ws://host:port` or `wss://…`; `/v1/ws` is added when the URL has no path (or only `/`).
    public var server: String
    public var token: String
    /// Ask for permessage-deflate.
    public var compression: Bool
    /// Reconnect after a lost connection (resending unacked messages, resuming listeners).
    public var reconnect: Bool
    /// Longest wait between reconnect attempts.
    public var maxBackoff: Duration
    /// How long a sender keeps trying to get back to a lost server before giving up (exit 69).
    public var reconnectWindow: Duration?
    /// A PEM file of CA certificates to trust for `wss://` (instead of the system's), e.g. a private CA
    /// or a self-signed server certificate.
    public var caCertificatePath: String?
    /// How long connecting and signing in may take before the attempt counts as failed.
    public var signInTimeout: Duration = .seconds(10)

    public init(server: String, token: String, compression: Bool = true, reconnect: Bool = true,
                maxBackoff: Duration = .seconds(5), reconnectWindow: Duration? = nil, caCertificatePath: String? = nil) {
        self.caCertificatePath = caCertificatePath
        self.server = server
        self.token = token
        self.compression = compression
        self.reconnect = reconnect
        self.maxBackoff = maxBackoff
        self.reconnectWindow = reconnectWindow
    }

    /// Unacknowledged messages in flight at once: enough to hide round trips and commit batching,
    /// small enough that a resend after a reconnect is quick.
    public static let sendWindow = 4096

    /// The servers `server` names: one URL, or several separated by commas (nodes of one service; a
    /// client moves on to the next when one cannot be reached).
    public var servers: [String] {
        server.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// This configuration with `server` set to the `index`th of `servers` (counting round).
    public func aimed(at index: Int) -> ClientConfiguration {
        let list = servers
        guard list.count > 1 else { return self }
        var c = self
        c.server = list[index % list.count]
        return c
    }

    /// The WebSocket URL of the server.
    public var webSocketURL: String {
        var url = server
        if url.hasPrefix("http://") { url = "ws://" + url.dropFirst(7) }
        if url.hasPrefix("https://") { url = "wss://" + url.dropFirst(8) }
        let afterScheme = url.range(of: "://").map { url[$0.upperBound...] } ?? Substring(url)
        // No path, or only `/`: the server's endpoint.
        let path = afterScheme.firstIndex(of: "/").map { afterScheme[$0...] } ?? ""
        if path.isEmpty || path == "/" { url = url.dropLast(path.count) + "/v1/ws" }
        return url
    }

    /// Whether the server URL asks for TLS.
    public var usesTLS: Bool { server.hasPrefix("wss://") || server.hasPrefix("https://") }

    /// Client TLS settings: the system's trust roots, or only the given CA file.
    static func tlsConfiguration(caCertificatePath: String?) -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        // TLS 1.0 and 1.1 are broken and retired (RFC 8996).
        tls.minimumTLSVersion = .tlsv12
        if let caCertificatePath { tls.trustRoots = .file(caCertificatePath) }
        return tls
    }

    /// The HTTP base URL of the server (for login and admin calls).
    public var httpBase: String { Self.httpBase(of: server) }

    public static func httpBase(of server: String) -> String {
        var url = server
        if url.hasPrefix("ws://") { url = "http://" + url.dropFirst(5) }
        if url.hasPrefix("wss://") { url = "https://" + url.dropFirst(6) }
        if let r = url.range(of: "://"), let slash = url[r.upperBound...].firstIndex(of: "/") {
            url = String(url[..<slash])
        }
        return url
    }
}

/// Capped exponential backoff with full jitter.
struct Backoff {
    var attempt = 0
    let cap: Duration

    mutating func next() -> Duration {
        let base = Duration.milliseconds(100) * (1 << min(attempt, 10))
        attempt += 1
        let ceiling = min(base, cap)
        let ms = ceiling.components.seconds * 1000 + ceiling.components.attoseconds / 1_000_000_000_000_000
        return .milliseconds(Int64.random(in: ms / 2...max(ms / 2, ms)))
    }

    mutating func reset() { attempt = 0 }
}
