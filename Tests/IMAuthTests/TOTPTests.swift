import Testing
@testable import IMAuth

@Suite struct TOTPTests {
    /// RFC 6238, Appendix B, SHA-1 column (8 digits).
    @Test(arguments: [
        (Int64(59), "94287082"), (1_111_111_109, "07081804"), (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"), (2_000_000_000, "69279037"), (20_000_000_000, "65353130"),
    ])
    func rfc6238Vectors(time: Int64, expected: String) {
        let secret = Array("12345678901234567890".utf8)
        #expect(TOTP.code(secret: secret, step: TOTP.step(at: time), digits: 8) == expected)
        #expect(TOTP.code(secret: secret, step: TOTP.step(at: time)) == String(expected.suffix(6)))
    }

    @Test func base32RoundTrip() {
        #expect(Base32.encode(Array("foobar".utf8)) == "MZXW6YTBOI")
        #expect(Base32.decode("MZXW6YTBOI") == Array("foobar".utf8))
        #expect(Base32.decode("mzxw6ytboi======") == Array("foobar".utf8))
        #expect(Base32.decode("not base32!") == nil)
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            #expect(Base32.decode(Base32.encode(bytes)) == bytes)
        }
    }

    @Test func matchingAcceptsTheWindowOnly() throws {
        let secret = TOTP.newSecret()
        let bytes = try #require(Base32.decode(secret))
        let now: Int64 = 1_800_000_000
        let step = TOTP.step(at: now)
        #expect(TOTP.matchingStep(TOTP.code(secret: bytes, step: step), secret: secret, at: now) == step)
        #expect(TOTP.matchingStep(TOTP.code(secret: bytes, step: step - 1), secret: secret, at: now) == step - 1)
        #expect(TOTP.matchingStep(TOTP.code(secret: bytes, step: step + 1), secret: secret, at: now) == step + 1)
        #expect(TOTP.matchingStep(TOTP.code(secret: bytes, step: step - 3), secret: secret, at: now) == nil)
        #expect(TOTP.matchingStep("12345", secret: secret, at: now) == nil)
        #expect(TOTP.matchingStep("abcdef", secret: secret, at: now) == nil)
        #expect(TOTP.uri(secret: secret, user: "alice").hasPrefix("otpauth://totp/imctl:alice?secret=\(secret)&issuer=imctl"))
    }
}
