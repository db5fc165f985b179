import IMWire
import NIOSSL
public import NIOCore

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
    /// The largest LZ77 window for permessage-deflate, 9–15 bits: the server compresses with at most
    /// this and asks clients that allow it to do the same. 15 gives the best ratio; each step down
    /// halves the window (deflate memory is about `4 << bits` bytes per connection that compresses).
    public var compressionWindowBits: Int
    /// Bytes of recent messages kept in memory for history and resume (0 turns the cache off).
    public var historyCacheBytes: Int
    /// Bytes a connection may owe the network before it is cut as too slow.
    public var maxPendingBytes: Int
    /// Open TCP connections in all, and from one address; past either, new ones are closed at once.
    public var maxConnections: Int
    public var maxConnectionsPerAddress: Int
    /// Sends per second one WebSocket may make (a token bucket holding as many); 0: no limit.
    public var maxSendsPerSecond: Int
    /// Deadlines (defaults: the static constants of the same names, with their reasons).
    public var signInTimeout: TimeAmount = ServerConfiguration.signInTimeout
    public var httpIdleTimeout: TimeAmount = ServerConfiguration.httpIdleTimeout
    public var tlsHandshakeTimeout: TimeAmount = ServerConfiguration.tlsHandshakeTimeout
    /// Paths of a PEM certificate chain and key; both or neither.
    public var tlsCertificatePath: String?
    public var tlsKeyPath: String?

    /// Most messages committed in one transaction. Large enough that a burst from hundreds of pipelined
    /// senders shares one fsync and each busy index page is written to the WAL once per batch, small
    /// enough that one batch never holds up acks for long.
    public static let maxBatch = 8192
    /// Most body bytes in one transaction: a batch is framed once per label and each reader's share of
    /// it is written at once, so this stays well under `defaultMaxPendingBytes`.
    public static let maxBatchBytes = 2 << 20
    /// Default of `maxPendingBytes` (nats-server's `MAX_PENDING_SIZE` plays the same part): 8 MiB is
    /// tens of thousands of chat messages, seconds of a busy room, so a reader that is merely slow
    /// catches up, while a stuck one costs at most this much before it is cut (and resumes after its last
    /// seq, losing nothing). Replays pause at three quarters of it.
    public static let defaultMaxPendingBytes = 8 << 20
    /// A reader whose backlog stays above three quarters of its bound this long is cut: its TCP window
    /// is shut.
    public static let writeTimeout: TimeAmount = .seconds(10)
    /// Sends a connection may have in flight to the store before it stops being read: above the 4,096
    /// `imctl send` pipelines, so that it never waits on this, yet a flood cannot grow the commit queue
    /// without bound.
    public static let maxUnackedSends = 8192
    /// Body bytes a connection may have in flight to the store before it stops being read: with large
    /// messages the count above would let one sender queue half a gigabyte.
    public static let maxUnackedBytes = 4 << 20
    /// Frames held while a token or user lookup is in flight, before reading pauses (and, like sends
    /// in flight, at most `maxUnackedBytes` of bodies). A lookup takes a millisecond; a client that
    /// pipelines behind it needs no more.
    public static let maxQueuedFrames = 64
    /// A WebSocket that has not signed in by then is closed.
    public static let signInTimeout: TimeAmount = .seconds(10)
    /// Default of `maxConnections`: well above what one process serves comfortably (an idle listener
    /// costs ~7 KiB here, an active one a few hundred), below the descriptor limits servers run with.
    public static let defaultMaxConnections = 50_000
    /// Default of `maxConnectionsPerAddress`: one host behind one NAT address may hold thousands of
    /// listeners (the W4 benchmark holds 5,000 from 127.0.0.1), but not all of the server's.
    public static let defaultMaxConnectionsPerAddress = 10_000
    /// Default of `maxSendsPerSecond`: above what one pipelined `imctl send` reaches here (~60,000/s),
    /// so bulk loads are never refused, while one connection cannot take the whole store.
    public static let defaultMaxSendsPerSecond = 100_000
    /// Subscriptions one connection may hold.
    public static let maxSubscriptions = 1_000
    /// The most messages one `history` may ask for; more is paged with `after`.
    public static let maxHistory = 10_000
    /// An idle HTTP keep-alive connection is closed after this long (nginx's default is 75 s).
    public static let httpIdleTimeout: TimeAmount = .seconds(60)
    /// A TLS handshake that has not completed by then is dropped.
    public static let tlsHandshakeTimeout: TimeAmount = .seconds(10)
    /// Lifetime of a token made by a password login (`login --ttl` asks for another).
    public static let loginTokenTTL: Duration = .seconds(30 * 86_400)
    /// The longest lifetime a token may be given: ten years, far from any overflow.
    public static let maxTokenTTL: Duration = DurationText.maxTokenLifetime
    /// Largest HTTP history answer; past it fewer messages are returned and the client pages with `after`.
    public static let maxHistoryResponseBytes = 8 << 20
    /// How often the server looks for revoked sessions (one small query): a revoked token, a changed
    /// password, a disabled or removed user end their open connections within about this long.
    public static let sessionCheckInterval: Duration = .seconds(1)
    /// Every session is re-checked at least this often, for tokens that expire while connected.
    public static let sessionRecheckInterval: Duration = .seconds(30)
    /// The server pings idle connections this often; one that sends nothing back in an interval is closed.
    public static let pingInterval: TimeAmount = .seconds(30)
    /// How long a close handshake may take before the TCP connection is closed anyway.
    public static let closeTimeout: TimeAmount = .seconds(5)
    /// Default of `historyCacheBytes`: 32 MiB holds the last ~200,000 short messages across all
    /// conversations, enough for the resume storm after a restart of a proxy in front of a busy room.
    public static let historyCacheBytes = 32 << 20
    /// At most this many messages per conversation in the history cache (the replay page size × 4).
    public static let historyCachePerConversation = 4000
    /// Messages read from the store per page while replaying history.
    public static let replayPage = 1000

    public init(host: String = "127.0.0.1", port: Int = 7700, maxMessageBytes: Int = 65536, compression: Bool = true,
                compressionWindowBits: Int = 15, historyCacheBytes: Int = ServerConfiguration.historyCacheBytes,
                maxPendingBytes: Int = ServerConfiguration.defaultMaxPendingBytes,
                maxConnections: Int = ServerConfiguration.defaultMaxConnections,
                maxConnectionsPerAddress: Int = ServerConfiguration.defaultMaxConnectionsPerAddress,
                maxSendsPerSecond: Int = ServerConfiguration.defaultMaxSendsPerSecond,
                tlsCertificatePath: String? = nil, tlsKeyPath: String? = nil) {
        self.host = host
        self.port = port
        self.maxMessageBytes = maxMessageBytes
        self.compression = compression
        self.compressionWindowBits = compressionWindowBits
        self.historyCacheBytes = historyCacheBytes
        self.maxPendingBytes = maxPendingBytes
        self.maxConnections = maxConnections
        self.maxConnectionsPerAddress = maxConnectionsPerAddress
        self.maxSendsPerSecond = maxSendsPerSecond
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
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        // TLS 1.0 and 1.1 are broken and retired (RFC 8996).
        tls.minimumTLSVersion = .tlsv12
        return tls
    }

    /// Largest WebSocket message read: a body of the limit written entirely as JSON `\uXXXX` escapes,
    /// plus room for the other fields. Larger bodies still get a `too_large` error frame.
    var maxFrameBytes: Int { max(1 << 20, maxMessageBytes * 6 + 4096) }

    /// The bounds each connection's state machine enforces.
    var connectionLimits: ConnectionState.Limits {
        .init(maxMessageBytes: maxMessageBytes, maxPendingBytes: maxPendingBytes, maxUnackedSends: Self.maxUnackedSends,
              maxUnackedBytes: Self.maxUnackedBytes,
              maxQueuedFrames: Self.maxQueuedFrames, signInTimeout: signInTimeout, writeTimeout: Self.writeTimeout,
              maxSubscriptions: Self.maxSubscriptions, maxHistory: Self.maxHistory, sendsPerSecond: maxSendsPerSecond,
              sendBurst: maxSendsPerSecond)
    }
}
