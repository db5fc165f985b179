import Crypto
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// The RFC 6455 opening handshake for `/v1/ws`, with permessage-deflate negotiated by us.
///
/// Unlike `NIOTypedWebSocketServerUpgrader` it installs no `WebSocketFrameEncoder`: the connection
/// writes whole frames as bytes, so that one framed message can go to many readers as it is.
struct ChatUpgrader: NIOTypedHTTPServerProtocolUpgrader {
    typealias UpgradeResult = ChatChannel.UpgradeResult

    static let path = "/v1/ws"
    private static let guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    let server: ChatServer
    let logger: Logger
    /// Called when an upgrade is asked for, so that a refused one gets 400 rather than the router.
    let attempted: @Sendable () -> Void

    var supportedProtocol: String { "websocket" }
    var requiredUpgradeHeaders: [String] { [] }

    func buildUpgradeResponse(channel: any Channel, upgradeRequest: HTTPRequestHead,
                              initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        attempted()
        guard Self.path(of: upgradeRequest.uri) == Self.path else {
            return channel.eventLoop.makeFailedFuture(NIOWebSocketUpgradeError.unsupportedWebSocketTarget)
        }
        let keys = upgradeRequest.headers["Sec-WebSocket-Key"]
        guard keys.count == 1, let key = keys.first, upgradeRequest.headers["Sec-WebSocket-Version"] == ["13"] else {
            return channel.eventLoop.makeFailedFuture(NIOWebSocketUpgradeError.invalidUpgradeHeader)
        }
        var headers = initialResponseHeaders
        let digest = Insecure.SHA1.hash(data: Array((key.trimmingWhitespace() + Self.guid).utf8))
        // NIO's upgrade handler adds `Upgrade` and `Connection` itself.
        headers.add(name: "Sec-WebSocket-Accept", value: Data(digest).base64EncodedString())
        if let deflate = negotiate(upgradeRequest) {
            headers.add(name: "Sec-WebSocket-Extensions", value: deflate.responseHeader)
        }
        return channel.eventLoop.makeSucceededFuture(headers)
    }

    func upgrade(channel: any Channel, upgradeRequest: HTTPRequestHead) -> EventLoopFuture<UpgradeResult> {
        channel.eventLoop.makeCompletedFuture {
            let configuration = server.configuration
            let bound = configuration.maxPendingBytes
            // Writability turns off at the stall mark (replays wait) and on again at half the bound.
            try channel.syncOptions?.setOption(.writeBufferWaterMark, value: .init(low: bound / 2, high: bound / 4 * 3))
            let connection = ChatConnection(server: server, eventLoop: channel.eventLoop, deflate: negotiate(upgradeRequest),
                                            headerToken: Self.bearerToken(upgradeRequest.headers), logger: logger)
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: configuration.maxFrameBytes)))
            try channel.pipeline.syncOperations.addHandler(connection)
            return .websocket
        }
    }

    private func negotiate(_ request: HTTPRequestHead) -> DeflateParameters? {
        guard server.configuration.compression else { return nil }
        return DeflateNegotiation.negotiate(offers: request.headers["Sec-WebSocket-Extensions"],
                                            windowBits: server.configuration.compressionWindowBits)
    }

    static func path(of uri: String) -> Substring {
        uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
    }

    static func bearerToken(_ headers: HTTPHeaders) -> String? {
        guard let value = headers["Authorization"].first else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingWhitespace()
    }
}
