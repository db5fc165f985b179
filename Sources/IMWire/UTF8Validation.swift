/// Strict UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF).
public enum UTF8Validation {
    /// Whether `bytes` are well-formed UTF-8.
    public static func isValid(_ bytes: some Collection<UInt8>) -> Bool {
        if let result = bytes.withContiguousStorageIfAvailable({ isValid(UnsafeRawBufferPointer($0)) }) {
            return result
        }
        return Array(bytes).withUnsafeBytes { isValid($0) }
    }

    /// Whether the bytes are well-formed UTF-8; ASCII runs are checked eight bytes at a time.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        guard let base = bytes.baseAddress else { return true }
        var i = 0
        while i < count {
            // ASCII fast path.
            while i + 8 <= count {
                let word = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                if word & 0x8080_8080_8080_8080 != 0 { break }
                i += 8
            }
            guard i < count else { return true }
            let b0 = base.load(fromByteOffset: i, as: UInt8.self)
            if b0 < 0x80 {
                i += 1
                continue
            }
            func cont(_ k: Int) -> UInt8? {
                guard i + k < count else { return nil }
                let b = base.load(fromByteOffset: i + k, as: UInt8.self)
                return b & 0xC0 == 0x80 ? b : nil
            }
            switch b0 {
            case 0xC2...0xDF:
                guard cont(1) != nil else { return false }
                i += 2
            case 0xE0...0xEF:
                guard let b1 = cont(1), cont(2) != nil else { return false }
                if b0 == 0xE0 && b1 < 0xA0 { return false }  // overlong
                if b0 == 0xED && b1 > 0x9F { return false }  // surrogates
                i += 3
            case 0xF0...0xF4:
                guard let b1 = cont(1), cont(2) != nil, cont(3) != nil else { return false }
                if b0 == 0xF0 && b1 < 0x90 { return false }  // overlong
                if b0 == 0xF4 && b1 > 0x8F { return false }  // past U+10FFFF
                i += 4
            default:
                return false
            }
        }
        return true
    }
}
