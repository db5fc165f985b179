/// permessage-deflate (RFC 7692) as negotiated for one connection. Pure: headers in, settings out.
struct DeflateParameters: Equatable, Sendable {
    /// The window the server compresses with (its inflating peer needs no more than this).
    var serverWindowBits: Int
    /// The window the client may compress with: what the server's inflater needs.
    var clientWindowBits: Int
    /// Whether the server resets its compressor after every message.
    var serverNoContextTakeover: Bool
    /// Whether the client resets its compressor after every message.
    var clientNoContextTakeover: Bool

    /// The `Sec-WebSocket-Extensions` value sent back.
    var responseHeader: String
}

enum DeflateNegotiation {
    /// Picks the first permessage-deflate offer the server can accept.
    ///
    /// The server compresses with at most `windowBits` (a smaller window than the client's is always
    /// readable), and asks a client that allows it to compress with at most `windowBits` too, so each
    /// connection's inflater stays that small. Offers with a window below 9 bits are declined: zlib
    /// cannot write a raw 8-bit window.
    /// - Parameters:
    ///   - offers: every `Sec-WebSocket-Extensions` header value of the request.
    ///   - windowBits: the server's limit, 9–15.
    static func negotiate(offers: [String], windowBits: Int) -> DeflateParameters? {
        for header in offers {
            for offer in splitOutsideQuotes(header, on: ",") {
                let parts = splitOutsideQuotes(offer, on: ";").map { $0.trimmingWhitespace() }
                guard parts.first?.lowercased() == "permessage-deflate" else { continue }
                if let accepted = accept(parameters: parts.dropFirst(), windowBits: windowBits) { return accepted }
            }
        }
        return nil
    }

    private static func accept(parameters: ArraySlice<String>, windowBits: Int) -> DeflateParameters? {
        var seen: Set<String> = []
        var serverBits: Int?
        var clientBitsOffered = false
        var clientBits: Int?
        var serverNoTakeover = false
        var clientNoTakeover = false
        for parameter in parameters {
            let pieces = parameter.split(separator: "=", maxSplits: 1).map { String($0).trimmingWhitespace() }
            let name = pieces[0].lowercased()
            var value = pieces.count > 1 ? pieces[1] : nil
            if let v = value, v.count >= 2, v.hasPrefix("\""), v.hasSuffix("\"") { value = String(v.dropFirst().dropLast()) }
            guard seen.insert(name).inserted else { return nil }  // RFC 7692 §7: a repeated parameter declines the offer
            switch name {
            case "server_no_context_takeover":
                guard value == nil else { return nil }
                serverNoTakeover = true
            case "client_no_context_takeover":
                guard value == nil else { return nil }
                clientNoTakeover = true
            case "server_max_window_bits":
                guard let v = value.flatMap(Int.init), (8...15).contains(v) else { return nil }
                guard v >= 9 else { return nil }
                serverBits = v
            case "client_max_window_bits":
                clientBitsOffered = true
                if let value {
                    guard let v = Int(value), (8...15).contains(v) else { return nil }
                    guard v >= 9 else { return nil }
                    clientBits = v
                }
            default:
                return nil
            }
        }
        let server = min(windowBits, serverBits ?? 15)
        // Without `client_max_window_bits` in the offer the client may use any window: inflate with 15.
        let client = clientBitsOffered ? min(windowBits, clientBits ?? 15) : 15
        var response = "permessage-deflate"
        if serverNoTakeover { response += "; server_no_context_takeover" }
        if clientNoTakeover { response += "; client_no_context_takeover" }
        if serverBits != nil { response += "; server_max_window_bits=\(server)" }
        if clientBitsOffered && client < 15 { response += "; client_max_window_bits=\(client)" }
        return DeflateParameters(serverWindowBits: server, clientWindowBits: client, serverNoContextTakeover: serverNoTakeover,
                                 clientNoContextTakeover: clientNoTakeover, responseHeader: response)
    }

    private static func splitOutsideQuotes(_ s: String, on separator: Character) -> [String] {
        var parts: [String] = []
        var current = ""
        var quoted = false
        for c in s {
            if c == "\"" { quoted.toggle() }
            if c == separator && !quoted {
                parts.append(current)
                current = ""
            } else {
                current.append(c)
            }
        }
        parts.append(current)
        return parts.map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
