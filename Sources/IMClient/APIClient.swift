import AsyncHTTPClient
import Foundation
import NIOCore
import IMWire
import NIOHTTP1

/// The server's HTTP JSON API: login, logout and admin user management.
public struct APIClient: Sendable {
    /// `http://host:port` (a `ws://` server URL is converted).
    public let base: String
    public let token: String?
    /// A PEM file of CA certificates to trust for `https://`, instead of the system's.
    public let caCertificatePath: String?

    /// - Parameter server: a server URL; of several (comma-separated), the first.
    public init(server: String, token: String?, caCertificatePath: String? = nil) {
        self.base = ClientConfiguration.httpBase(of: ClientConfiguration(server: server, token: "").aimed(at: 0).server)
        self.token = token
        self.caCertificatePath = caCertificatePath
    }

    /// Calls `method path` with an optional JSON body and returns the JSON text of a 2xx answer.
    public func call(_ method: String, _ path: String, json: String? = nil, timeout: Duration = .seconds(30)) async throws -> String {
        var request = HTTPClientRequest(url: base + path)
        request.method = HTTPMethod(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response: HTTPClientResponse
        let text: String
        do {
            let deadline = TimeAmount.nanoseconds(timeout.components.seconds * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000)
            if let caCertificatePath {
                // A client of our own that trusts only the given CA.
                let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                                        configuration: .init(tlsConfiguration: ClientConfiguration.tlsConfiguration(caCertificatePath: caCertificatePath)))
                do {
                    response = try await client.execute(request, timeout: deadline)
                    text = String(buffer: try await response.body.collect(upTo: 64 << 20))
                    try? await client.shutdown()
                } catch {
                    try? await client.shutdown()
                    throw error
                }
            } else {
                response = try await HTTPClient.shared.execute(request, timeout: deadline)
                text = String(buffer: try await response.body.collect(upTo: 64 << 20))
            }
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            throw ClientError(.timeout, "\(base) did not answer within \(timeout)")
        } catch {
            throw ClientError(.unreachable, "cannot reach \(base): \(Link.describe(error))")
        }
        let status = Int(response.status.code)
        guard (200..<300).contains(status) else {
            let reason = Self.errorMessage(text) ?? response.status.reasonPhrase
            switch status {
            case 401 where response.headers.first(name: "X-Imctl-Otp") == "required": throw ClientError(.otpRequired, reason)
            case 401, 403, 429: throw ClientError(.unauthorized, reason)
            case 400, 413, 422: throw ClientError(.badInput, reason)
            default: throw ClientError(.server, reason)
            }
        }
        return text
    }

    /// Trades a password for a token.
    /// - Parameter ttl: the token's lifetime (the server's default, 30 days, when nil).
    public func login(user: String, password: String, otp: String? = nil, ttl: Duration? = nil) async throws -> String {
        let request = API.LoginRequest(user: user, password: password, otp: otp, ttlSeconds: ttl?.components.seconds)
        return try await call("POST", "/v1/login", sending: request, answer: API.LoginAnswer.self).token
    }

    /// Calls `method path` with `body` as JSON and decodes the answer as `T`.
    public func call<T: Decodable>(_ method: String, _ path: String, sending body: some Encodable, answer: T.Type) async throws -> T {
        try decode(T.self, try await call(method, path, json: Self.json(body)), from: path)
    }

    /// Calls `method path` without a body and decodes the answer as `T`.
    public func call<T: Decodable>(_ method: String, _ path: String, answer: T.Type) async throws -> T {
        try decode(T.self, try await call(method, path), from: path)
    }

    /// Calls `method path` with `body` as JSON, ignoring the answer's body.
    public func call(_ method: String, _ path: String, sending body: some Encodable) async throws {
        _ = try await call(method, path, json: Self.json(body))
    }

    private static func json(_ body: some Encodable) throws -> String {
        String(decoding: try JSONEncoder().encode(body), as: UTF8.self)
    }

    private func decode<T: Decodable>(_ type: T.Type, _ text: String, from path: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch {
            throw ClientError(.server, "unexpected answer from \(base)\(path): \(text.prefix(200))")
        }
    }

    /// Revokes the token this client holds.
    public func logout() async throws {
        _ = try await call("POST", "/v1/logout")
    }

    static func errorMessage(_ text: String) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else { return nil }
        if let e = object["error"] as? [String: Any], let m = e["message"] as? String { return m }
        return object["message"] as? String
    }
}
