/// A fast reader for the flat JSON objects the protocol uses (string, integer, boolean and null values).
///
/// It answers nil for anything else (nested values, fractions, invalid JSON), and callers then fall back
/// to Foundation's decoder, which also produces the precise error. Pure: bytes in, values out.
enum FlatJSON {
    enum Value: Equatable {
        case string(String)
        case int(Int64)
        case bool(Bool)
        case null
    }

    /// `parse` over any byte collection, copying only when it is not contiguous.
    static func parse(contiguous bytes: some Collection<UInt8>) -> [(key: String, value: Value)]? {
        if let result = bytes.withContiguousStorageIfAvailable({ parse(UnsafeRawBufferPointer($0)) }) { return result }
        return Array(bytes).withUnsafeBytes { parse($0) }
    }

    /// The members of a flat object, in order, or nil when `bytes` is not one.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> [(key: String, value: Value)]? {
        var p = Parser(bytes: bytes)
        return p.object()
    }

    /// Calls `member` with each member of a flat object, in order, the key as its raw bytes (no String is
    /// made for it). False when `bytes` is not a flat object, a key has escapes, or `member` said false.
    static func visit(_ bytes: UnsafeRawBufferPointer, _ member: (UnsafeRawBufferPointer, Value) -> Bool) -> Bool {
        var p = Parser(bytes: bytes)
        guard p.eat(UInt8(ascii: "{")) else { return false }
        if p.eat(UInt8(ascii: "}")) { return p.atEnd() }
        while true {
            p.skipSpace()
            guard let key = p.rawKey(), p.eat(UInt8(ascii: ":")), let value = p.value(), member(key, value) else { return false }
            if p.eat(UInt8(ascii: ",")) { continue }
            guard p.eat(UInt8(ascii: "}")) else { return false }
            return p.atEnd()
        }
    }

    private struct Parser {
        let bytes: UnsafeRawBufferPointer
        var i = 0

        mutating func skipSpace() {
            while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
        }

        mutating func eat(_ c: UInt8) -> Bool {
            skipSpace()
            guard i < bytes.count, bytes[i] == c else { return false }
            i += 1
            return true
        }

        mutating func object() -> [(key: String, value: Value)]? {
            guard eat(UInt8(ascii: "{")) else { return nil }
            var members: [(key: String, value: Value)] = []
            if eat(UInt8(ascii: "}")) { return end(members) }
            while true {
                skipSpace()
                guard let key = string(), eat(UInt8(ascii: ":")), let value = value() else { return nil }
                members.append((key, value))
                if eat(UInt8(ascii: ",")) { continue }
                guard eat(UInt8(ascii: "}")) else { return nil }
                return end(members)
            }
        }

        mutating func atEnd() -> Bool {
            skipSpace()
            return i == bytes.count
        }

        /// A key without escapes, as its bytes.
        mutating func rawKey() -> UnsafeRawBufferPointer? {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            let start = i + 1
            var j = start
            while j < bytes.count {
                let c = bytes[j]
                if c == UInt8(ascii: "\"") {
                    i = j + 1
                    return UnsafeRawBufferPointer(rebasing: bytes[start..<j])
                }
                if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
                j += 1
            }
            return nil
        }

        mutating func end(_ members: [(key: String, value: Value)]) -> [(key: String, value: Value)]? {
            skipSpace()
            return i == bytes.count ? members : nil
        }

        mutating func value() -> Value? {
            skipSpace()
            guard i < bytes.count else { return nil }
            switch bytes[i] {
            case UInt8(ascii: "\""): return string().map(Value.string)
            case UInt8(ascii: "t"): return literal("true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal("false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal("null") ? .null : nil
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return integer()
            default: return nil
            }
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard i + n <= bytes.count else { return false }
            for k in 0..<n where bytes[i + k] != word.utf8Start[k] { return false }
            i += n
            return true
        }

        /// An integer as JSON writes it; fractions and exponents are left to the full decoder.
        mutating func integer() -> Value? {
            var negative = false
            if bytes[i] == UInt8(ascii: "-") {
                negative = true
                i += 1
            }
            let start = i
            var value: Int64 = 0
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") {
                let (m, o1) = value.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(bytes[i] - UInt8(ascii: "0")))
                guard !o1, !o2 else { return nil }
                value = a
                i += 1
            }
            let digits = i - start
            guard digits > 0, !(digits > 1 && bytes[start] == UInt8(ascii: "0")) else { return nil }
            if i < bytes.count, bytes[i] == UInt8(ascii: ".") || bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") { return nil }
            return .int(negative ? -value : value)
        }

        /// A string; the input is valid UTF-8 (WebSocket text frames are checked), so runs are copied as they are.
        mutating func string() -> String? {
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { return nil }
            i += 1
            // Most strings have no escapes: make the String straight from the bytes.
            let start = i
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                    i += 1
                    return text
                }
                if c < 0x20 { return nil }
                if c == UInt8(ascii: "\\") { break }
                i += 1
            }
            var out: [UInt8] = []
            var runStart = start
            i = start
            while i < bytes.count {
                let c = bytes[i]
                if c == UInt8(ascii: "\"") {
                    out.append(contentsOf: bytes[runStart..<i])
                    i += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if c < 0x20 { return nil }
                if c == UInt8(ascii: "\\") {
                    out.append(contentsOf: bytes[runStart..<i])
                    i += 1
                    guard i < bytes.count else { return nil }
                    let e = bytes[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""): out.append(0x22)
                    case UInt8(ascii: "\\"): out.append(0x5C)
                    case UInt8(ascii: "/"): out.append(0x2F)
                    case UInt8(ascii: "b"): out.append(0x08)
                    case UInt8(ascii: "f"): out.append(0x0C)
                    case UInt8(ascii: "n"): out.append(0x0A)
                    case UInt8(ascii: "r"): out.append(0x0D)
                    case UInt8(ascii: "t"): out.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4() else { return nil }
                        if (0xD800...0xDBFF).contains(scalar) {
                            // A high surrogate must be followed by an escaped low one.
                            guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { return nil }
                            i += 2
                            guard let low = hex4(), (0xDC00...0xDFFF).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            return nil
                        }
                        guard let u = Unicode.Scalar(scalar) else { return nil }
                        out.append(contentsOf: String(Character(u)).utf8)
                    default:
                        return nil
                    }
                    runStart = i
                    continue
                }
                i += 1
            }
            return nil
        }

        mutating func hex4() -> UInt32? {
            guard i + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[i]
                let d: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
                default: return nil
                }
                v = v * 16 + d
                i += 1
            }
            return v
        }
    }
}
