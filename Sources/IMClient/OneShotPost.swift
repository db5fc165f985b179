public import IMWire

/// One message in one HTTP request: `POST /v1/messages` on a blocking socket, for `imctl send ROOM words…`.
///
/// A shell loop runs `send` once per message, so its cost is start-up plus one exchange. The WebSocket
/// path (event loops, upgrade, permessage-deflate, `auth`, `send`, `ack`, close) takes about 6 ms here;
/// this takes about one: connect, one request with the token, the server's ack after its commit. It is
/// only a shortcut: it either brings back the ack, or reports that it did not, and the caller then sends
/// the same message with the same client id the full way, which reconnects, retries and explains
/// refusals as always; the server stores a client id once, so nothing can be stored twice.
public enum OneShotPost {
    /// What an attempt came to.
    public enum Outcome: Sendable, Equatable {
        /// Stored (or found already stored): the server's ack.
        case acked(Ack)
        /// Not known to be stored: send it the full way. The reason is for debugging.
        case notDone(String)
    }

    /// Where the request goes: the server's host and port, when `server` is a plain `ws://`/`http://` URL
    /// whose socket is the standard `/v1/ws` (so `/v1/messages` is the same server). Nil otherwise
    /// (TLS, a custom path behind a proxy): those take the full path.
    public static func endpoint(of configuration: ClientConfiguration) -> (host: String, port: Int)? {
        // Of several servers, the first (the WebSocket path goes on to the others when it cannot be reached).
        let configuration = configuration.aimed(at: 0)
        guard !configuration.usesTLS else { return nil }
        let url = configuration.webSocketURL
        guard url.hasPrefix("ws://"), url.hasSuffix("/v1/ws") else { return nil }
        let authority = url.dropFirst(5).dropLast(6)
        guard !authority.isEmpty, !authority.contains("@"), !authority.contains("/") else { return nil }
        let host: Substring
        var portText: Substring?
        if authority.hasPrefix("[") {
            // [v6]:port
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let rest = authority[authority.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { return nil }
                portText = rest.dropFirst()
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            portText = authority[authority.index(after: colon)...]
        } else {
            host = authority
        }
        guard !host.isEmpty else { return nil }
        guard let portText else { return (String(host), 80) }
        guard let port = Int(portText), (1...65535).contains(port) else { return nil }
        return (String(host), port)
    }

    /// The request: HTTP/1.1, the token as a bearer header, the body as `API.PostMessage`'s JSON, and
    /// `Connection: close`. Nil when the token could not go in a header as it is (the full path's `auth`
    /// frame then carries it, and the server answers for it).
    static func request(host: String, port: Int, token: String, target: Target, body: String, clientID: String) -> [UInt8]? {
        guard !token.isEmpty, token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else { return nil }
        var json = JSONObjectWriter()
        json.add("to", target.description)
        json.add("body", body)
        json.add("id", clientID)
        let content = json.finish()
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        let head = "POST /v1/messages HTTP/1.1\r\nHost: \(authority)\r\nAuthorization: Bearer \(token)\r\n"
            + "Content-Type: application/json\r\nContent-Length: \(content.utf8.count)\r\nConnection: close\r\n\r\n"
        return Array(head.utf8) + Array(content.utf8)
    }

    /// A response read so far.
    enum Response: Equatable {
        /// More bytes are needed.
        case incomplete
        /// Status and body.
        case complete(status: Int, body: [UInt8])
        /// Not an HTTP/1.x response we can read (chunked, no length, malformed).
        case invalid
    }

    /// Reads `bytes` as one HTTP/1.x response with a `Content-Length` body.
    static func response(_ bytes: [UInt8]) -> Response {
        let end: [UInt8] = [13, 10, 13, 10]
        guard let headEnd = bytes.firstRange(of: end) else {
            return bytes.count > 16 << 10 ? .invalid : .incomplete
        }
        let head = String(decoding: bytes[..<headEnd.lowerBound], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusParts = lines[0].split(separator: " ", maxSplits: 2)
        guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else { return .invalid }
        var length: Int?
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { return .invalid }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingPrefix(while: { $0 == " " || $0 == "\t" })
            if name == "content-length" {
                guard let n = Int(value.trimmingSuffix(while: { $0 == " " || $0 == "\t" })), n >= 0, length == nil || length == n
                else { return .invalid }
                length = n
            } else if name == "transfer-encoding" {
                return .invalid
            }
        }
        guard let length, length <= 1 << 20 else { return .invalid }
        let bodyStart = headEnd.upperBound
        if bytes.count - bodyStart < length { return .incomplete }
        return .complete(status: status, body: Array(bytes[bodyStart..<bodyStart + length]))
    }

    /// What a complete response means: an ack for 200 (a resend) or 201 (stored) with an ack body, else
    /// not done.
    static func outcome(status: Int, body: [UInt8], clientID: String) -> Outcome {
        guard status == 200 || status == 201 else { return .notDone("HTTP \(status)") }
        guard let ack = Ack(jsonObject: body), ack.cid == clientID else { return .notDone("HTTP \(status) without an ack for \(clientID)") }
        return .acked(ack)
    }

    /// Posts `body` to `target` with `clientID`, giving up (not done) at `deadline`. Blocks the calling
    /// thread for at most that long.
    public static func send(_ configuration: ClientConfiguration, target: Target, body: String, clientID: String,
                            deadline: ContinuousClock.Instant) -> Outcome {
        guard let (host, port) = endpoint(of: configuration) else { return .notDone("not a plain ws:// server at /v1/ws") }
        guard let request = request(host: host, port: port, token: configuration.token, target: target, body: body, clientID: clientID)
        else { return .notDone("the token cannot go in a header") }
        do {
            var invalid = false
            let bytes = try BlockingExchange.run(host: host, port: port, request: request, deadline: deadline) { bytes in
                switch response(bytes) {
                case .incomplete: return false
                case .complete: return true
                case .invalid: invalid = true; return true
                }
            }
            guard !invalid, case .complete(let status, let content) = response(bytes) else { return .notDone("unreadable response") }
            return outcome(status: status, body: content, clientID: clientID)
        } catch {
            return .notDone("\(error)")
        }
    }
}

extension Substring {
    fileprivate func trimmingSuffix(while predicate: (Character) -> Bool) -> Substring {
        var s = self
        while let last = s.last, predicate(last) { s = s.dropLast() }
        return s
    }
}
