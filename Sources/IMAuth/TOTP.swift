import Crypto
import Foundation

/// Time-based one-time passwords (RFC 6238: HMAC-SHA-1, 6 digits, 30-second steps), as authenticator
/// apps generate them.
public enum TOTP {
    public static let digits = 6
    public static let period: Int64 = 30
    /// Codes from one step before or after are accepted, for clock drift and slow typing.
    public static let window: Int64 = 1

    /// A new random 160-bit secret, base32-encoded (the form authenticator apps take).
    public static func newSecret() -> String {
        var bytes = [UInt8](repeating: 0, count: 20)
        var rng = SystemRandomNumberGenerator()
        for i in bytes.indices { bytes[i] = rng.next() }
        return Base32.encode(bytes)
    }

    /// The `otpauth://` URI an authenticator app scans or imports.
    public static func uri(secret: String, user: String, issuer: String = "imctl") -> String {
        // User names are [a-z0-9_.-]: nothing in the label needs escaping.
        let label = "\(issuer):\(user)"
        return "otpauth://totp/\(label)?secret=\(secret)&issuer=\(issuer)&algorithm=SHA1&digits=\(digits)&period=\(period)"
    }

    /// The time step of a Unix time in seconds.
    public static func step(at unixSeconds: Int64) -> Int64 { unixSeconds / period }

    /// The code for a step (RFC 4226's HOTP with the step as counter).
    public static func code(secret: [UInt8], step: Int64, digits: Int = digits) -> String {
        var counter = UInt64(step).bigEndian
        let message = withUnsafeBytes(of: &counter) { Array($0) }
        let mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: SymmetricKey(data: secret)))
        let offset = Int(mac[mac.count - 1] & 0x0F)
        let value = (UInt32(mac[offset] & 0x7F) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8) | UInt32(mac[offset + 3])
        var modulus: UInt32 = 1
        for _ in 0..<digits { modulus *= 10 }
        let text = String(value % modulus)
        return String(repeating: "0", count: digits - text.count) + text
    }

    /// The step whose code matches `code` within the window around `unixSeconds`, if any.
    public static func matchingStep(_ code: String, secret base32: String, at unixSeconds: Int64) -> Int64? {
        guard code.count == digits, code.allSatisfy(\.isASCII), code.allSatisfy(\.isNumber),
              let secret = Base32.decode(base32)
        else { return nil }
        let now = step(at: unixSeconds)
        for s in (now - window)...(now + window) where constantTimeEqual(self.code(secret: secret, step: s), code) {
            return s
        }
        return nil
    }

    private static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for (p, q) in zip(x, y) { diff |= p ^ q }
        return diff == 0
    }
}

/// RFC 4648 base32 without padding.
public enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for b in bytes {
            buffer = (buffer << 8) | UInt32(b)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 31)])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 31)]) }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for c in text.uppercased().utf8 where c != UInt8(ascii: "=") && c != UInt8(ascii: " ") {
            guard let v = alphabet.firstIndex(of: c) else { return nil }
            buffer = (buffer << 5) | UInt32(v)
            bits += 5
            if bits >= 8 {
                out.append(UInt8((buffer >> UInt32(bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        return out
    }
}
