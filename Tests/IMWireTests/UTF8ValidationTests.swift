import IMWire
import Testing

@Suite struct UTF8ValidationTests {
    @Test func acceptsWellFormedText() {
        for text in ["", "plain ascii, longer than eight bytes", "é", "😀 at the end: 😀", "中文字符串", "\u{10FFFF}", "\u{7F}\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}"] {
            #expect(UTF8Validation.isValid(Array(text.utf8)), "\(text)")
        }
    }

    @Test(arguments: [
        [0x80] as [UInt8],  // lone continuation byte
        [0xC0, 0x80],  // overlong NUL
        [0xC1, 0xBF],  // overlong
        [0xE0, 0x80, 0x80],  // overlong 3-byte
        [0xED, 0xA0, 0x80],  // surrogate U+D800
        [0xF0, 0x80, 0x80, 0x80],  // overlong 4-byte
        [0xF4, 0x90, 0x80, 0x80],  // above U+10FFFF
        [0xF5, 0x80, 0x80, 0x80],
        [0xFF],
        [0xE2, 0x82],  // truncated
        Array("abcdefgh".utf8) + [0xCE],  // truncated after an ASCII run
        Array("κόσμε".utf8) + [0xED, 0xA0, 0x80] + Array("edited".utf8),
    ])
    func refusesMalformedText(_ bytes: [UInt8]) {
        #expect(!UTF8Validation.isValid(bytes))
    }

    /// The validator agrees with the standard library on every cut of a mixed text.
    @Test func agreesWithTheStandardLibraryOnEveryPrefix() {
        let bytes = Array("a€😀b\u{7FF}ééé中文😀😀xyz".utf8)
        for n in 0...bytes.count {
            let prefix = Array(bytes[..<n])
            #expect(UTF8Validation.isValid(prefix) == (String(validating: prefix, as: UTF8.self) != nil), "prefix \(n)")
        }
    }
}
