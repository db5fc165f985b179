import _CryptoExtras
import Crypto
import Foundation

/// Password hashing (scrypt) and API tokens (random, stored as SHA-256).
public enum Credentials {
    /// Shortest password accepted.
    public static let minPasswordLength = 8
    /// scrypt cost: N=2^14, r=8, p=1 takes about 40 ms here (OWASP's minimum is N=2^17 with p=1 for
    /// interactive logins on fast hardware; 2^14 keeps `users add` and login snappy on 2 cores while
    /// staying far beyond brute-force reach for 8+ character passwords behind the login throttle).
    static let scryptN = 16384
    static let scryptR = 8
    static let scryptP = 1
    /// Prefix of API tokens, so that leaked ones are easy to grep for.
    public static let tokenPrefix = "imt_"

    /// Hashes `password` as `scrypt$N$r$p$salt$hash` (base64). Slow by design: call off the event loop.
    public static func hashPassword(_ password: String) throws -> String {
        var salt = [UInt8](repeating: 0, count: 16)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = rng.next() }
        let key = try KDF.Scrypt.deriveKey(from: Array(password.utf8), salt: salt, outputByteCount: 32,
                                           rounds: scryptN, blockSize: scryptR, parallelism: scryptP)
        let hash = key.withUnsafeBytes { Data($0) }
        return "scrypt$\(scryptN)$\(scryptR)$\(scryptP)$\(Data(salt).base64EncodedString())$\(hash.base64EncodedString())"
    }

    /// Checks `password` against a stored hash in constant time.
    public static func verifyPassword(_ password: String, hash stored: String) -> Bool {
        let parts = stored.split(separator: "$")
        guard parts.count == 6, parts[0] == "scrypt", let n = Int(parts[1]), let r = Int(parts[2]), let p = Int(parts[3]),
              let salt = Data(base64Encoded: String(parts[4])), let expected = Data(base64Encoded: String(parts[5]))
        else { return false }
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
