import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// One file of the chat page, as served.
struct WebAsset: Sendable {
    var body: ByteBuffer
    var contentType: String
    var etag: String

    /// The files of `Sources/IMServer/Web`, built into the binary by the EmbedWeb plugin.
    static let all: [String: WebAsset] = {
        var assets: [String: WebAsset] = [:]
        for (name, base64) in WebAssets.base64 {
            guard let bytes = Data(base64Encoded: base64) else { continue }
            let hex = Array("0123456789abcdef")
            let digest = String(SHA256.hash(data: bytes).prefix(12).flatMap { [hex[Int($0 >> 4)], hex[Int($0 & 15)]] })
            assets[name] = WebAsset(body: ByteBuffer(bytes: bytes), contentType: contentType(of: name), etag: "\"\(digest)\"")
        }
        return assets
    }()

    static func contentType(of name: String) -> String {
        switch name.split(separator: ".").last {
        case "html": "text/html; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "css": "text/css; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        default: "application/octet-stream"
        }
    }

    /// The page runs only its own files: no inline script, nothing from elsewhere, no framing; the
    /// socket goes back to the same host.
    static let securityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

extension ChatServer {
    /// `GET /` is the chat page; `GET /assets/NAME` its script, style and icon.
    func addWebRoutes(to router: Router<ChatRequestContext>) {
        router.get("/") { request, _ in try Self.serve("index.html", request) }
        router.head("/") { request, _ in try Self.serve("index.html", request, body: false) }
        router.get("/assets/:name") { request, context in
            try Self.serve(context.parameters.get("name") ?? "", request)
        }
        router.head("/assets/:name") { request, context in
            try Self.serve(context.parameters.get("name") ?? "", request, body: false)
        }
    }

    static func serve(_ name: String, _ request: Request, body: Bool = true) throws -> Response {
        guard let asset = WebAsset.all[name] else {
            throw HTTPError(.notFound)
        }
        var headers: HTTPFields = [
            .contentType: asset.contentType,
            .eTag: asset.etag,
            // Revalidate every time: a new build serves new files at the same names.
            .cacheControl: "no-cache",
            .contentSecurityPolicy: WebAsset.securityPolicy,
            .xContentTypeOptions: "nosniff",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
        ]
        if request.headers[.ifNoneMatch] == asset.etag {
            headers[.contentType] = nil
            return Response(status: .notModified, headers: headers)
        }
        guard body else {
            headers[.contentLength] = String(asset.body.readableBytes)
            return Response(status: .ok, headers: headers)
        }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: asset.body))
    }
}
