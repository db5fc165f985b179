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

    /// Parses `text`; an unknown `{name}` is an error naming it.
    public init(_ text: String) throws(WireError) {
        var pieces: [Piece] = []
        var literal = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            if c == "{", let close = text[i...].firstIndex(of: "}") {
                let name = String(text[text.index(after: i)..<close])
                guard let field = Field(rawValue: name) else {
                    throw .badFrame("unknown field {\(name)} in --format; use {id} {room} {seq} {from} {ts} {body}")
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

    /// Renders `m` (the body verbatim).
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
                case .body: out += m.body
                }
            }
        }
        return out
    }

    /// The default text line: `TS ROOM FROM: BODY`, with newlines in the body written `\n`.
    public static func textLine(_ m: MessageView) -> String {
        var body = m.body
        if body.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) {
            body = body.replacingOccurrences(of: "\r\n", with: "\\n").replacingOccurrences(of: "\n", with: "\\n").replacingOccurrences(of: "\r", with: "\\r")
        }
        return "\(m.ts) \(m.room) \(m.from): \(body)"
    }
}
