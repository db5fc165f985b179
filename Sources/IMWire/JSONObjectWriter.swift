/// Writes one flat JSON object quickly, without Foundation's encoder.
public struct JSONObjectWriter: Sendable {
    private var out: String = "{"
    private var first = true

    public init() {
        out.reserveCapacity(128)
    }

    private mutating func key(_ k: String) {
        if !first { out.append(",") }
        first = false
        JSONObjectWriter.appendString(k, to: &out)
        out.append(":")
    }

    public mutating func add(_ k: String, _ v: String) {
        key(k)
        JSONObjectWriter.appendString(v, to: &out)
    }

    public mutating func add(_ k: String, _ v: Int64) {
        key(k)
        out.append(String(v))
    }

    public mutating func add(_ k: String, _ v: Bool) {
        key(k)
        out.append(v ? "true" : "false")
    }

    /// Adds a pre-encoded JSON value verbatim.
    public mutating func addRaw(_ k: String, _ json: String) {
        key(k)
        out.append(json)
    }

    public mutating func finish() -> String {
        out.append("}")
        return out
    }

    /// Appends `s` as a JSON string literal, escaping quotes, backslashes and control characters.
    public static func appendString(_ s: String, to out: inout String) {
        out.append("\"")
        var needsEscape = false
        for b in s.utf8 where b < 0x20 || b == 0x22 || b == 0x5C {
            needsEscape = true
            break
        }
        if !needsEscape {
            out.append(s)
        } else {
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\"": out.append("\\\"")
                case "\\": out.append("\\\\")
                case "\n": out.append("\\n")
                case "\r": out.append("\\r")
                case "\t": out.append("\\t")
                case _ where scalar.value < 0x20:
                    let hex = String(scalar.value, radix: 16)
                    out.append("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                default: out.unicodeScalars.append(scalar)
                }
            }
        }
        out.append("\"")
    }
}
