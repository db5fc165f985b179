import Foundation
import IMClient
import IMAuth
import IMServer
import IMStorage
import IMWire
import NIOPosix

/// What `imctl users` does, on the store directly or through a server's admin API.
protocol UserAdmin: Sendable {
    func add(_ name: String, password: String, admin: Bool) async throws
    func list() async throws -> [UserRecord]
    func remove(_ name: String) async throws
    func passwd(_ name: String, password: String) async throws
    func setDisabled(_ name: String, _ disabled: Bool) async throws
    /// Returns the new token and its record.
    func token(_ name: String, ttl: Duration?, label: String?) async throws -> (String, TokenRecord)
    func tokens(_ name: String) async throws -> [TokenRecord]
    func revoke(_ name: String, id: Int64) async throws
    func revokeAll(_ name: String) async throws -> Int
    /// Turns two-factor sign-in on (returning the `otpauth://` URI) or off (nil).
    func setOTP(_ name: String, enabled: Bool) async throws -> String?
    func close() async
}

/// Works on the store file, through the same `UserDirectory` as the server's admin routes.
struct LocalAdmin: UserAdmin {
    let store: any ChatStore
    private var directory: UserDirectory {
        UserDirectory(store: store) { password in
            try await NIOThreadPool.singleton.runIfActive { try Credentials.hashPassword(password) }
        }
    }

    func add(_ name: String, password: String, admin: Bool) async throws {
        _ = try await directory.add(name, password: password, admin: admin)
    }
    func list() async throws -> [UserRecord] { try await store.listUsers() }
    func remove(_ name: String) async throws { try await store.removeUser(named: name) }
    func passwd(_ name: String, password: String) async throws { try await directory.setPassword(of: name, to: password) }
    func setDisabled(_ name: String, _ disabled: Bool) async throws { try await store.setDisabled(name, disabled) }
    func token(_ name: String, ttl: Duration?, label: String?) async throws -> (String, TokenRecord) {
        try await directory.mintToken(for: name, expiresAt: ttl.map { Timestamp.nowMillis() + $0.milliseconds }, label: label)
    }
    func tokens(_ name: String) async throws -> [TokenRecord] { try await store.tokens(of: name) }
    func revoke(_ name: String, id: Int64) async throws { try await store.revokeToken(user: name, id: id) }
    func revokeAll(_ name: String) async throws -> Int { try await store.revokeAllTokens(user: name) }
    func setOTP(_ name: String, enabled: Bool) async throws -> String? { try await directory.setOTP(of: name, enabled: enabled) }
    func close() async { try? await store.close() }
}

/// Works through a server's `/v1/users` API with an admin token.
struct RemoteAdmin: UserAdmin {
    let api: APIClient

    private func path(_ name: String, _ rest: String = "") -> String {
        "/v1/users/" + (name.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? name) + rest
    }

    func add(_ name: String, password: String, admin: Bool) async throws {
        try await api.call("POST", "/v1/users", sending: API.NewUser(name: name, password: password, admin: admin))
    }
    func list() async throws -> [UserRecord] {
        struct Answer: Decodable { var users: [UserRecord] }
        return try JSONDecoder().decode(Answer.self, from: Data(try await api.call("GET", "/v1/users").utf8)).users
    }
    func remove(_ name: String) async throws { _ = try await api.call("DELETE", path(name)) }
    func passwd(_ name: String, password: String) async throws {
        try await api.call("PUT", path(name, "/password"), sending: API.PasswordChange(password: password))
    }
    func setDisabled(_ name: String, _ disabled: Bool) async throws {
        _ = try await api.call("POST", path(name, disabled ? "/disable" : "/enable"))
    }
    func token(_ name: String, ttl: Duration?, label: String?) async throws -> (String, TokenRecord) {
        let answer = try await api.call("POST", path(name, "/tokens"), sending: API.NewToken(ttlSeconds: ttl?.components.seconds, label: label),
                                        answer: API.TokenAnswer.self)
        let now = Timestamp.nowMillis()
        return (answer.token, TokenRecord(id: answer.id, user: name, label: label, createdAt: now,
                                   expiresAt: ttl.map { now + $0.milliseconds }, lastUsedAt: nil))
    }
    func tokens(_ name: String) async throws -> [TokenRecord] {
        struct Answer: Decodable { var tokens: [TokenRecord] }
        return try JSONDecoder().decode(Answer.self, from: Data(try await api.call("GET", path(name, "/tokens")).utf8)).tokens
    }
    func revoke(_ name: String, id: Int64) async throws { _ = try await api.call("DELETE", path(name, "/tokens/\(id)")) }
    func revokeAll(_ name: String) async throws -> Int {
        try await api.call("DELETE", path(name, "/tokens"), answer: API.Revoked.self).revoked
    }
    func setOTP(_ name: String, enabled: Bool) async throws -> String? {
        guard enabled else {
            try await api.call("POST", path(name, "/otp"), sending: API.OTPChange(enable: false))
            return nil
        }
        return try await api.call("POST", path(name, "/otp"), sending: API.OTPChange(enable: true), answer: API.OTPAnswer.self).uri
    }
    func close() async {}
}
