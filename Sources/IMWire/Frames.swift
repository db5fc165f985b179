import Foundation

/// Longest client-chosen message id, in bytes.
public let maxClientIDLength = 128

/// A frame a client sends to the server, decoded from one JSON text frame.
public enum ClientFrame: Sendable, Equatable {
    /// Authenticate with an API token (browsers cannot set `Authorization` on an upgrade).
    case auth(token: String)
    /// Store a message; `id` is the client-chosen idempotency key.
    case send(id: String, to: Target, body: String)
    /// Follow a conversation, optionally replaying stored messages first.
    case subscribe(Subscription)
    /// Stop following a conversation.
    case unsubscribe(to: String)
    /// Liveness check; answered with `pong` carrying the same `ref`.
    case ping(ref: String?)
}

/// What a `sub` frame asks for.
public struct Subscription: Sendable, Equatable {
    /// What to follow: a room, `@user`, or `@*` for every direct conversation of the user.
    public enum Scope: Sendable, Hashable, CustomStringConvertible {
        case target(Target)
        case allDirect
        public var description: String {
            switch self {
            case .target(let t): t.description
            case .allDirect: "@*"
            }
        }
    }
    /// Where to start: live only, after a `seq`, the last N, or (for `@*`) after a message id.
    public enum Start: Sendable, Equatable {
        case live
        case afterSeq(Int64)
        case last(Int)
        case afterID(Int64)
    }
    public var scope: Scope
    public var start: Start

    public init(scope: Scope, start: Start) {
        self.scope = scope
        self.start = start
    }
}

private struct RawClientFrame: Decodable {
    var op: String?
    var token: String?
    var id: String?
    var to: String?
    var body: String?
    var after: Int64?
    var after_id: Int64?
    var history: Int?
    var ref: String?
}

extension RawClientFrame {
    /// The fast path for well-formed flat frames; nil sends the frame through Foundation's decoder, which
    /// also words the errors. Unknown fields are ignored, as by the decoder; a field given twice goes
    /// to the decoder too, so that both paths always answer alike.
    init?(fast bytes: some Collection<UInt8>) {
        guard let frame = bytes.withContiguousStorageIfAvailable({ Self(fastRaw: UnsafeRawBufferPointer($0)) }) ?? Array(bytes).withUnsafeBytes({
            Self(fastRaw: $0)
        }) else { return nil }
        self = frame
    }

    init?(fastRaw bytes: UnsafeRawBufferPointer) {
        var seen: UInt16 = 0
        var frame = RawClientFrame()
        let ok = FlatJSON.visit(bytes) { key, value in
            guard let field = Field(key) else { return true }  // not ours: ignored
            guard seen & field.bit == 0 else { return false }
            seen |= field.bit
            switch (field, value) {
            case (_, .null): return true
            case (.op, .string(let v)): frame.op = v
            case (.token, .string(let v)): frame.token = v
            case (.id, .string(let v)): frame.id = v
            case (.to, .string(let v)): frame.to = v
            case (.body, .string(let v)): frame.body = v
            case (.after, .int(let v)): frame.after = v
            case (.afterID, .int(let v)): frame.after_id = v
            case (.history, .int(let v)): frame.history = Int(exactly: v)
            case (.ref, .string(let v)): frame.ref = v
            default: return false
            }
            return true
        }
        guard ok else { return nil }
        self = frame
    }

    /// The fields of a client frame, recognised from a key's bytes without making a String.
    private enum Field: UInt16 {
        case op = 1, token = 2, id = 4, to = 8, body = 16, after = 32, afterID = 64, history = 128, ref = 256

        var bit: UInt16 { rawValue }

        init?(_ key: UnsafeRawBufferPointer) {
            func `is`(_ s: StaticString) -> Bool {
                key.count == s.utf8CodeUnitCount && memcmp(key.baseAddress!, s.utf8Start, key.count) == 0
            }
            guard key.count >= 2 else { return nil }
            switch key[0] {
            case UInt8(ascii: "o") where `is`("op"): self = .op
            case UInt8(ascii: "t") where `is`("to"): self = .to
            case UInt8(ascii: "t") where `is`("token"): self = .token
            case UInt8(ascii: "i") where `is`("id"): self = .id
            case UInt8(ascii: "b") where `is`("body"): self = .body
            case UInt8(ascii: "a") where `is`("after"): self = .after
            case UInt8(ascii: "a") where `is`("after_id"): self = .afterID
            case UInt8(ascii: "h") where `is`("history"): self = .history
            case UInt8(ascii: "r") where `is`("ref"): self = .ref
            default: return nil
            }
        }
    }
}

extension ClientFrame {
    /// Decodes one client frame, checking types, names and the body limit.
    /// - Parameters:
    ///   - bytes: the UTF-8 JSON text of the frame.
    ///   - maxBodyBytes: the server's `--max-message-bytes`.
    public static func decode(_ bytes: some Collection<UInt8>, maxBodyBytes: Int) throws(WireError) -> ClientFrame {
        if let result = bytes.withContiguousStorageIfAvailable({ b in
            Result { () throws(WireError) in try decode(UnsafeRawBufferPointer(b), maxBodyBytes: maxBodyBytes) }
        }) {
            return try result.get()
        }
        return try Array(bytes).withUnsafeBytes { b in
            Result { () throws(WireError) in try decode(b, maxBodyBytes: maxBodyBytes) }
        }.get()
    }

    /// Decodes one client frame from contiguous bytes (the server's path: no generic dispatch).
    public static func decode(_ bytes: UnsafeRawBufferPointer, maxBodyBytes: Int) throws(WireError) -> ClientFrame {
        try decode(bytes, maxBodyBytes: maxBodyBytes, fastPath: true)
    }

    /// Decodes with or without the flat-JSON fast path; both must answer alike (the differential test
    /// and the fuzzer hold them to it).
    static func decode(_ bytes: UnsafeRawBufferPointer, maxBodyBytes: Int, fastPath: Bool) throws(WireError) -> ClientFrame {
        let raw: RawClientFrame
        do {
            raw = try (fastPath ? RawClientFrame(fastRaw: bytes) : nil) ?? JSONDecoder().decode(RawClientFrame.self, from: Data(bytes))
        } catch let DecodingError.typeMismatch(_, context) where context.codingPath.isEmpty {
            throw .badJSON("frame is not a JSON object")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw .badFrame("field '\(field)' has the wrong type")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw .badFrame("field '\(field)' is invalid")
        } catch {
            throw .badJSON("frame is not a JSON object")
        }
        guard let op = raw.op else { throw .badFrame("missing 'op'") }
        switch op {
        case "auth":
            guard let token = raw.token, !token.isEmpty else { throw .badFrame("auth needs 'token'") }
            return .auth(token: token)
        case "send":
            guard let id = raw.id, !id.isEmpty else { throw .badFrame("send needs a client 'id'") }
            guard id.utf8.count <= maxClientIDLength else { throw .badFrame("'id' is longer than \(maxClientIDLength) bytes") }
            guard let to = raw.to else { throw .badFrame("send needs 'to'") }
            guard let body = raw.body else { throw .badFrame("send needs 'body'") }
            let target = try Target(parsing: to)
            let size = body.utf8.count
            guard size <= maxBodyBytes else {
                throw .tooLarge("message body is \(size) bytes; the limit is \(maxBodyBytes)")
            }
            return .send(id: id, to: target, body: body)
        case "sub":
            guard let to = raw.to else { throw .badFrame("sub needs 'to'") }
            let scope: Subscription.Scope = to == "@*" ? .allDirect : .target(try Target(parsing: to))
            var start = Subscription.Start.live
            let starts = [raw.after != nil, raw.history != nil, raw.after_id != nil].filter { $0 }.count
            guard starts <= 1 else { throw .badFrame("give at most one of 'after', 'history', 'after_id'") }
            if let after = raw.after {
                guard after >= 0 else { throw .badFrame("'after' must be >= 0") }
                start = .afterSeq(after)
            } else if let n = raw.history {
                guard n >= 0 else { throw .badFrame("'history' must be >= 0") }
                start = .last(n)
            } else if let id = raw.after_id {
                guard id >= 0 else { throw .badFrame("'after_id' must be >= 0") }
                start = .afterID(id)
            }
            if case .allDirect = scope, case .afterSeq = start {
                throw .badFrame("'@*' resumes with 'after_id', not 'after'")
            }
            return .subscribe(Subscription(scope: scope, start: start))
        case "unsub":
            guard let to = raw.to else { throw .badFrame("unsub needs 'to'") }
            return .unsubscribe(to: to)
        case "ping":
            return .ping(ref: raw.ref)
        default:
            throw .unknownOp(op)
        }
    }

    /// Encodes the frame as JSON text.
    public func encoded() -> String {
        var w = JSONObjectWriter()
        switch self {
        case .auth(let token):
            w.add("op", "auth"); w.add("token", token)
        case .send(let id, let to, let body):
            w.add("op", "send"); w.add("id", id); w.add("to", to.description); w.add("body", body)
        case .subscribe(let sub):
            w.add("op", "sub"); w.add("to", sub.scope.description)
            switch sub.start {
            case .live: break
            case .afterSeq(let s): w.add("after", s)
            case .last(let n): w.add("history", Int64(n))
            case .afterID(let id): w.add("after_id", id)
            }
        case .unsubscribe(let to):
            w.add("op", "unsub"); w.add("to", to)
        case .ping(let ref):
            w.add("op", "ping")
            if let ref { w.add("ref", ref) }
        }
        return w.finish()
    }
}

/// A stored message as one reader sees it.
public struct MessageView: Sendable, Equatable, Codable {
    /// The server's message id (unique in the store, increasing in commit order).
    public var id: Int64
    /// The room name, or `@peer` for a direct conversation.
    public var room: String
    public var seq: Int64
    public var from: String
    /// RFC 3339 UTC with milliseconds.
    public var ts: String
    public var body: String

    public init(id: Int64, room: String, seq: Int64, from: String, ts: String, body: String) {
        self.id = id
        self.room = room
        self.seq = seq
        self.from = from
        self.ts = ts
        self.body = body
    }

    /// One-line JSON with the fields `id`, `room`, `seq`, `from`, `ts`, `body`.
    public func jsonLine(op: String? = nil) -> String {
        var w = JSONObjectWriter()
        if let op { w.add("op", op) }
        w.add("id", id); w.add("room", room); w.add("seq", seq); w.add("from", from); w.add("ts", ts); w.add("body", body)
        return w.finish()
    }
}

/// The server's acknowledgement that a message is durable.
public struct Ack: Sendable, Equatable, Codable {
    /// The client-chosen id the send carried.
    public var cid: String
    /// The server's message id.
    public var id: Int64
    public var room: String
    public var seq: Int64
    public var ts: String
    /// True when this send repeated an id already stored; nothing new was stored.
    public var duplicate: Bool

    public init(cid: String, id: Int64, room: String, seq: Int64, ts: String, duplicate: Bool) {
        self.cid = cid
        self.id = id
        self.room = room
        self.seq = seq
        self.ts = ts
        self.duplicate = duplicate
    }

    /// The `send --json` line: `id`, `room`, `seq`, `ts` (and `cid`).
    public func jsonLine() -> String {
        var w = JSONObjectWriter()
        w.add("id", id); w.add("room", room); w.add("seq", seq); w.add("ts", ts); w.add("cid", cid)
        if duplicate { w.add("duplicate", true) }
        return w.finish()
    }
}

extension Ack {
    /// Reads an acknowledgement as `POST /v1/messages` answers it: the fields of `jsonLine()` (`id`,
    /// `room`, `seq`, `ts`, `cid`, and `duplicate` when true), the `ack` frame without its `op`. Nil for
    /// anything else.
    public init?(jsonObject bytes: some Collection<UInt8>) {
        guard let raw = ServerFrame.Raw(fast: bytes, op: "ack"), case .ack(let ack)? = try? ServerFrame.frame(raw) else { return nil }
        self = ack
    }
}

/// A frame the server sends to a client.
public enum ServerFrame: Sendable, Equatable {
    /// Signed in; `maxMessageBytes` is the server's body limit, so clients can check before sending.
    case authed(user: String, maxMessageBytes: Int?)
    case ack(Ack)
    case message(MessageView)
    /// Sent after a subscription's replay: live messages follow. `seq` is the position reached (the
    /// last seq sent or the conversation's head; for `@*`, a message id): resume after it.
    case subscribed(to: String, seq: Int64)
    case error(code: WireError.Code, message: String, id: String?)
    case pong(ref: String?)

    /// Encodes the frame as JSON text.
    public func encoded() -> String {
        switch self {
        case .authed(let user, let maxMessageBytes):
            var w = JSONObjectWriter(); w.add("op", "authed"); w.add("user", user)
            if let maxMessageBytes { w.add("max_message_bytes", Int64(maxMessageBytes)) }
            return w.finish()
        case .ack(let a):
            var w = JSONObjectWriter()
            w.add("op", "ack"); w.add("cid", a.cid); w.add("id", a.id); w.add("room", a.room); w.add("seq", a.seq); w.add("ts", a.ts)
            if a.duplicate { w.add("duplicate", true) }
            return w.finish()
        case .message(let m):
            return m.jsonLine(op: "msg")
        case .subscribed(let to, let seq):
            var w = JSONObjectWriter(); w.add("op", "subscribed"); w.add("to", to); w.add("seq", seq); return w.finish()
        case .error(let code, let message, let id):
            var w = JSONObjectWriter(); w.add("op", "error"); w.add("code", code.rawValue); w.add("message", message)
            if let id { w.add("id", id) }
            return w.finish()
        case .pong(let ref):
            var w = JSONObjectWriter(); w.add("op", "pong")
            if let ref { w.add("ref", ref) }
            return w.finish()
        }
    }

    fileprivate struct Raw: Decodable {
        var op: String
        var user: String?
        var cid: String?
        var id: RawID?
        var room: String?
        var seq: Int64?
        var ts: String?
        var from: String?
        var body: String?
        var to: String?
        var code: String?
        var message: String?
        var duplicate: Bool?
        var ref: String?
        var max_message_bytes: Int64?
    }

    /// `id` is a number on messages and acks and a string on errors.
    fileprivate typealias RawFrame = Raw
    fileprivate enum RawID: Decodable {
        case number(Int64)
        case text(String)
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let n = try? c.decode(Int64.self) { self = .number(n) } else { self = .text(try c.decode(String.self)) }
        }
        var number: Int64? { if case .number(let n) = self { return n }; return nil }
        var text: String? { if case .text(let s) = self { return s }; return nil }
    }

    /// Decodes a server frame (used by clients).
    public static func decode(_ bytes: some Collection<UInt8>) throws(WireError) -> ServerFrame {
        let raw: Raw
        do {
            raw = try Raw(fast: bytes) ?? JSONDecoder().decode(Raw.self, from: Data(bytes))
        } catch {
            throw .badJSON("server sent a frame that is not valid: \(error)")
        }
        return try frame(raw)
    }

    /// The frame a decoded object describes.
    fileprivate static func frame(_ raw: Raw) throws(WireError) -> ServerFrame {
        func need<T>(_ v: T?, _ name: String) throws(WireError) -> T {
            guard let v else { throw .badFrame("server frame '\(raw.op)' lacks '\(name)'") }
            return v
        }
        switch raw.op {
        case "authed": return .authed(user: try need(raw.user, "user"), maxMessageBytes: raw.max_message_bytes.flatMap { Int(exactly: $0) })
        case "ack":
            return .ack(Ack(cid: try need(raw.cid, "cid"), id: try need(raw.id?.number, "id"), room: try need(raw.room, "room"),
                            seq: try need(raw.seq, "seq"), ts: try need(raw.ts, "ts"), duplicate: raw.duplicate ?? false))
        case "msg":
            return .message(MessageView(id: try need(raw.id?.number, "id"), room: try need(raw.room, "room"), seq: try need(raw.seq, "seq"),
                                        from: try need(raw.from, "from"), ts: try need(raw.ts, "ts"), body: try need(raw.body, "body")))
        case "subscribed":
            return .subscribed(to: try need(raw.to, "to"), seq: raw.seq ?? 0)
        case "error":
            let code = WireError.Code(rawValue: raw.code ?? "") ?? .internal
            return .error(code: code, message: raw.message ?? "", id: raw.id?.text)
        case "pong": return .pong(ref: raw.ref)
        default: throw .unknownOp(raw.op)
        }
    }
}

extension ServerFrame.Raw {
    /// The fast path for the server's own flat frames (every `msg` and `ack`); nil falls back to the decoder.
    /// `op` stands in when the object has none (the HTTP API's ack).
    init?(fast bytes: some Collection<UInt8>, op given: String? = nil) {
        guard let members = FlatJSON.parse(contiguous: bytes) else { return nil }
        var op: String?
        for (key, value) in members {
            switch (key, value) {
            case (_, .null): continue
            case ("op", .string(let v)): op = v
            case ("user", .string(let v)): user = v
            case ("cid", .string(let v)): cid = v
            case ("id", .int(let v)): id = .number(v)
            case ("id", .string(let v)): id = .text(v)
            case ("room", .string(let v)): room = v
            case ("seq", .int(let v)): seq = v
            case ("ts", .string(let v)): ts = v
            case ("from", .string(let v)): from = v
            case ("body", .string(let v)): body = v
            case ("to", .string(let v)): to = v
            case ("code", .string(let v)): code = v
            case ("message", .string(let v)): message = v
            case ("duplicate", .bool(let v)): duplicate = v
            case ("ref", .string(let v)): ref = v
            case ("max_message_bytes", .int(let v)): max_message_bytes = v
            case ("op", _), ("user", _), ("cid", _), ("id", _), ("room", _), ("seq", _), ("ts", _), ("from", _), ("body", _), ("to", _),
                 ("code", _), ("message", _), ("duplicate", _), ("ref", _), ("max_message_bytes", _):
                return nil
            default: continue
            }
        }
        guard let op = op ?? given else { return nil }
        self.op = op
    }
}
