import Foundation

/// A `listen --format` template: `{id} {room} {seq} {from} {ts} {body}` are replaced, `\n` and `\t` unescaped.
public struct OutputTemplate: Sendable {
    private enum Piece: Sendable {
        case literal(String)
        case field(Field)
    }
    private enum Field: String, Sendable, CaseIterable {
        case id, room, seq, from, ts, body
    }
    private let pieces: [Piece]

    /// A template that cannot be used, with the reason to show.
    public struct Invalid: Error, Sendable, Equatable {
        public let message: String
    }

    /// Parses `text`; an unknown `{name}` is an error naming it.
    public init(_ text: String) throws(Invalid) {
        var pieces: [Piece] = []
        var literal = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == "{", let close = text[i...].firstIndex(of: "}") {
                let name = String(text[text.index(after: i)..<close])
                guard let field = Field(rawValue: name) else {
                    throw Invalid(message: "unknown field {\(name)} in --format; use {id} {room} {seq} {from} {ts} {body}")
                }
                if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" }
                pieces.append(.field(field))
                i = text.index(after: close)
                continue
            }
            if c == "\\", text.index(after: i) < text.endIndex {
                let next = text[text.index(after: i)]
                let mapped: String? = switch next {
                case "n": "\n"
                case "t": "\t"
                case "\\": "\\"
                default: nil
                }
                if let mapped {
                    literal += mapped
                    i = text.index(i, offsetBy: 2)
                    continue
                }
            }
            literal.append(c)
            i = text.index(after: i)
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        self.pieces = pieces
    }

    /// Renders `m`; the body with its control characters escaped (`terminalSafe`), but for its newlines
    /// and tabs, which a template may want as they are (and which cannot drive a terminal).
    public func render(_ m: MessageView) -> String {
        var out = ""
        for p in pieces {
            switch p {
            case .literal(let s): out += s
            case .field(let f):
                switch f {
                case .id: out += String(m.id)
                case .room: out += m.room
                case .seq: out += String(m.seq)
                case .from: out += m.from
                case .ts: out += m.ts
                case .body: out += Self.terminalSafe(m.body, keepingLayout: true)
                }
            }
        }
        return out
    }

    /// The default text line: `TS ROOM FROM: BODY`, the body made `terminalSafe`.
    public static func textLine(_ m: MessageView) -> String {
        "\(m.ts) \(m.room) \(m.from): \(terminalSafe(m.body))"
    }

    /// `text` with every control character written out, so that no message can drive the reader's
    /// terminal (escape sequences, bells, cursor moves, title changes): a CR LF or LF as `\n`, CR as `\r`,
    /// tab as `\t`, other C0 characters and DEL as `\x1b` and the like, C1 characters (U+0080–U+009F,
    /// which some terminals obey as ESC-sequences) as `\u{9b}` and the like.
    /// - Parameter keepingLayout: leave newlines (CR LF as LF) and tabs as they are (for `--format`).
    public static func terminalSafe(_ text: String, keepingLayout: Bool = false) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        var scalars = text.unicodeScalars.makeIterator()
        var pending = scalars.next()
        while let c = pending {
            pending = scalars.next()
            guard isControl(c) else {
                out.unicodeScalars.append(c)
                continue
            }
            switch c.value {
            case 0x0D where pending?.value == 0x0A:
                out += keepingLayout ? "\n" : "\\n"
                pending = scalars.next()
            case 0x0A: out += keepingLayout ? "\n" : "\\n"
            case 0x09 where keepingLayout: out += "\t"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x00...0x1F, 0x7F: out += "\\x" + hex2(c.value)
            default: out += "\\u{" + hex2(c.value) + "}"
            }
        }
        return out
    }

    private static func isControl(_ c: Unicode.Scalar) -> Bool {
        c.value < 0x20 || (0x7F...0x9F).contains(c.value)
    }

    private static func hex2(_ v: UInt32) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(v >> 4) & 0xF], digits[Int(v) & 0xF]])
    }
}
