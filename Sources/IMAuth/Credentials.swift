import _CryptoExtras
import Crypto
import Foundation

/// A password shorter than the rule allows (the server answers 400, the CLI exits 65).
public struct WeakPassword: Error, Equatable, Sendable, CustomStringConvertible {
    public init() {}
    public var description: String { "password must be at least \(Credentials.minPasswordLength) characters" }
}

/// Password hashing (scrypt) and API tokens (random, stored as SHA-256).
public enum Credentials {
    /// Shortest password accepted.
    public static let minPasswordLength = 8

    /// The password rule, for every way a password is set (server routes, local `users`).
    public static func checkPassword(_ password: String) throws(WeakPassword) {
        guard password.count >= minPasswordLength else { throw WeakPassword() }
    }
    /// scrypt parameters of new password hashes: OWASP's current minimum for scrypt, N=2^17, r=8, p=1
    /// (128 MiB and about 0.4 s per hash here). The server hashes on a small pool of its own.
    public static let scryptN = 1 << 17
    static let scryptR = 8
    static let scryptP = 1
    /// Stored hashes below this cost are refused outright (2^14 was this project's earlier cost; a hash
    /// at or above it but below `scryptN` is re-made with `scryptN` at the next successful sign-in).
    public static let minimumScryptN = 1 << 14
    /// Stored costs above this are refused too: a forged hash must not make the server spend a minute
    /// and gigabytes verifying one password.
    static let maximumScryptN = 1 << 20
    /// Prefix of API tokens, so that leaked ones are easy to grep for.
    public static let tokenPrefix = "imt_"

    /// Hashes `password` as `scrypt$N$r$p$salt$hash` (base64). Slow by design: call off the event loop.
    /// - Parameter cost: N; only tests pass anything but the default (the floor, to stay fast).
    public static func hashPassword(_ password: String, cost: Int = scryptN) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = rng.next() }
        let key = try KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: 32,
                                           rounds: cost, blockSize: scryptR, parallelism: scryptP)
        let hash = key.withUnsafeBytes { Data($0) }
        return "scrypt$\(cost)$\(scryptR)$\(scryptP)$\(Data(salt).base64EncodedString())$\(hash.base64EncodedString())"
    }

    /// Whether a stored hash was made with a lower cost than new ones get.
    public static func needsRehash(_ stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 6, let n = Int(parts[1]) else { return false }
        return n < scryptN
    }

    /// Checks `password` against a stored hash in constant time.
    public static func verifyPassword(_ password: String, hash stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 6, parts[0] == "scrypt", let n = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5]))
        else { return false }
        guard (minimumScryptN...maximumScryptN).contains(n), r == scryptR, p == scryptP, !expected.isEmpty else { return false }
        guard let key = try? KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: expected.count,
                                                  rounds: n, blockSize: r, parallelism: p)
        else { return false }
        let actual = key.withUnsafeBytes { Array($0) }
        guard actual.count == expected.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(actual, expected) { diff |= a ^ b }
        return diff == 0
    }

    /// Makes a new API token: `imt_` and 32 random bytes in base64url.
    public static func newToken() -> String {
        var bytes = [UInt8](repeating: 0, count: 32)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = rng.next() }
        let b64 = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        return tokenPrefix + b64
    }

    /// The SHA-256 of a token, which is all the store keeps.
    public static func tokenHash(_ token: String) -> [UInt8] {
        Array(SHA256.hash(data: Array(token.utf8)))
    }
}
