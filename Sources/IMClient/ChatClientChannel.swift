import Foundation
import HTTPTypes
import HummingbirdWSClient
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypesHTTP1
import NIOSSL
import NIOWebSocket
@_spi(WSInternal) import WSCore

/// How our clients open a WebSocket: WSClient's connection and frame handling (`ClientConnection`,
/// `WebSocketHandler`), with the TLS set-up done here.
///
/// WSClient names the URL's host as the TLS server name, and NIOSSL refuses an IP address there, so
/// `wss://127.0.0.1:PORT` — the URL `serve --tls-cert` prints — could not connect. Here an IP address is
/// not sent as a server name, and NIOSSL then checks the certificate's IP addresses against the peer's.
struct ChatClientChannel: ClientConnectionChannel {
    typealias Handler = @Sendable (WebSocketInboundStream, WebSocketOutboundWriter, Context) async throws -> Void

    /// What our session handlers get: the logger.
    struct Context: WebSocketContext {
        let logger: Logger
    }

    enum UpgradeResult {
        case websocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, [any WebSocketExtension])
        case notUpgraded
    }

    typealias Value = EventLoopFuture<UpgradeResult>

    let host: String
    let port: Int
    let path: String
    let secure: Bool
    let configuration: WebSocketClientConfiguration
    let sslContext: NIOSSLContext?
    let handler: Handler

    /// Where a WebSocket URL points: host (an IPv6 address without its brackets), port, path with
    /// query, and whether it is `wss://`. Nil unless it is a `ws://` or `wss://` URL with a host.
    static func endpoint(of url: String) -> (host: String, port: Int, path: String, secure: Bool)? {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme?.lowercased(), var host = parts.host, !host.isEmpty,
              scheme == "ws" || scheme == "wss"
        else { return nil }
        // The brackets of an IPv6 literal are not part of the address (swift-corelibs-foundation's
        // URLComponents keeps them in `host`; Apple's does not).
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let secure = scheme == "wss"
        let path = (parts.percentEncodedPath.isEmpty ? "/" : parts.percentEncodedPath) + (parts.percentEncodedQuery.map { "?" + $0 } ?? "")
        return (host, parts.port ?? (secure ? 443 : 80), path, secure)
    }

    /// - Parameter url: `ws://` or `wss://` URL with a host.
    init(url: String, configuration: WebSocketClientConfiguration, tlsConfiguration: TLSConfiguration?, handler: @escaping Handler) throws {
        guard let endpoint = Self.endpoint(of: url) else { throw WebSocketClientError.invalidURL }
        (host, port, path, secure) = endpoint
        self.configuration = configuration
        self.sslContext = secure ? try NIOSSLContext(configuration: tlsConfiguration ?? .makeClientConfiguration()) : nil
        self.handler = handler
    }

    /// Whether `host` is an IPv4 or IPv6 address rather than a name.
    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            let upgrader = NIOTypedWebSocketClientUpgrader<UpgradeResult>(
                maxFrameSize: configuration.maxFrameSize,
                upgradePipelineHandler: { channel, head in
                    channel.eventLoop.makeCompletedFuture {
                        let asyncChannel = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(wrappingChannelSynchronously: channel)
                        let extensions = try configuration.extensions.buildClientExtensions(from: HTTPFields(head.headers, splitCookie: false))
                        return UpgradeResult.websocket(asyncChannel, extensions)
                    }
                })
            let authority = host.contains(":") ? "[\(host)]" : host
            var headers = HTTPHeaders()
            headers.replaceOrAdd(name: "Host", value: "\(authority):\(port)")
            headers.replaceOrAdd(name: "Origin", value: "\(secure ? "wss" : "ws")://\(authority)")
            headers.add(contentsOf: HTTPHeaders(configuration.additionalHeaders))
            for e in configuration.extensions {
                let offer = e.clientRequestHeader()
                if !offer.isEmpty { headers.add(name: "Sec-WebSocket-Extensions", value: offer) }
            }
            let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
            let upgrade = NIOTypedHTTPClientUpgradeConfiguration(
                upgradeRequestHead: head, upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in channel.eventLoop.makeCompletedFuture { UpgradeResult.notUpgraded } })
            var pipeline = NIOUpgradableHTTPClientPipelineConfiguration(upgradeConfiguration: upgrade)
            pipeline.leftOverBytesStrategy = .forwardBytes
            if let sslContext {
                // No server name for an IP address: NIOSSL then checks the certificate's IP SANs.
                let handler = try NIOSSLClientHandler(context: sslContext, serverHostname: Self.isIPAddress(host) ? nil : host)
                try channel.pipeline.syncOperations.addHandler(handler, position: .first)
            }
            return try channel.pipeline.syncOperations.configureUpgradableHTTPClientPipeline(configuration: pipeline)
        }
    }

    func handle(value: Value, logger: Logger) async throws -> WebSocketCloseFrame? {
        switch try await value.get() {
        case .websocket(let channel, let extensions):
            return try await WebSocketHandler.handle(
                type: .client,
                configuration: .init(extensions: extensions, autoPing: configuration.autoPing, closeTimeout: configuration.closeTimeout,
                                     validateUTF8: configuration.validateUTF8,
                                     ignoreUncleanSSLShutdownErrors: configuration.ignoreUncleanSSLShutdownErrors,
                                     maxFrameSize: configuration.maxFrameSize),
                asyncChannel: channel, context: Context(logger: logger), handler: handler)
        case .notUpgraded:
            throw WebSocketClientError.webSocketUpgradeFailed
        }
    }
}
