import IMAuth
import IMStorage
import IMWire

/// User administration on a store, written once: the server's admin routes and local `imctl users`
/// both go through it. Checks come before the (slow) password hash, so a bad name, a short password or
/// an unknown user costs no hashing.
public struct UserDirectory: Sendable {
    public let store: any ChatStore
    /// Hashes a password; the caller chooses the threads (the server's hashing pool, or NIO's).
    public let hash: @Sendable (String) async throws -> String

    public init(store: any ChatStore, hash: @escaping @Sendable (String) async throws -> String) {
        self.store = store
        self.hash = hash
    }

    public func add(_ name: String, password: String, admin: Bool) async throws -> UserRecord {
        guard Names.isValidUser(name) else { throw StorageError.invalidName(name) }
        try Credentials.checkPassword(password)
        return try await store.createUser(name: name, passwordHash: try await hash(password), isAdmin: admin)
    }

    /// Sets a new password; the store revokes the user's tokens and closes their sessions.
    public func setPassword(of name: String, to password: String) async throws {
        try Credentials.checkPassword(password)
        guard try await store.user(named: name) != nil else { throw StorageError.noSuchUser(name) }
        try await store.setPasswordHash(of: name, to: try await hash(password))
    }

    /// Mints an API token: the secret, once, and its record (the store keeps only the hash).
    /// - Parameter expiresAt: milliseconds since the epoch; nil for none.
    public func mintToken(for name: String, expiresAt: Int64?, label: String?) async throws -> (token: String, record: TokenRecord) {
        let token = Credentials.newToken()
        let record = try await store.createToken(user: name, tokenHash: Credentials.tokenHash(token), label: label, expiresAt: expiresAt)
        return (token, record)
    }

    /// Turns two-factor sign-in on, returning the `otpauth://` URI for an authenticator app (shown once),
    /// or off (nil).
    public func setOTP(of name: String, enabled: Bool) async throws -> String? {
        let secret = enabled ? TOTP.newSecret() : nil
        try await store.setOTPSecret(of: name, to: secret)
        return secret.map { TOTP.uri(secret: $0, user: name) }
    }
}
