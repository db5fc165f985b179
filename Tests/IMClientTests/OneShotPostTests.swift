@testable import IMClient
import IMWire
import Testing

/// The one-request send's pure parts: where it goes, what it writes, how it reads the answer.
@Suite struct OneShotPostTests {
    @Test(arguments: [
        ("ws://127.0.0.1:7700", "127.0.0.1", 7700),
        ("ws://127.0.0.1:7700/", "127.0.0.1", 7700),
        ("ws://127.0.0.1:7700/v1/ws", "127.0.0.1", 7700),
        ("http://chat.local:81", "chat.local", 81),
        ("ws://chat.local", "chat.local", 80),
        ("ws://[::1]:7700", "::1", 7700),
    ])
    func plainServersAtTheStandardPathArePostedTo(server: String, host: String, port: Int) throws {
        let endpoint = try #require(OneShotPost.endpoint(of: ClientConfiguration(server: server, token: "imt_x")))
        #expect(endpoint.host == host)
        #expect(endpoint.port == port)
    }

    /// TLS and custom paths (a proxy's prefix: `/v1/messages` may not be the same server there) take
    /// the WebSocket path, as do URLs that are not quite right (that path explains them).
    @Test(arguments: ["wss://chat.example.com", "https://h:1", "ws://h:1/chat/v1/ws", "ws://h:1/custom", "ws://h:0",
                      "ws://h:99999", "ws://user@h:1", "ws://:1", "ws://[::1", "h:1"])
    func otherServersAreLeftToTheWebSocketPath(server: String) {
        #expect(OneShotPost.endpoint(of: ClientConfiguration(server: server, token: "imt_x")) == nil)
    }

    @Test func theRequestCarriesTokenTargetBodyAndID() throws {
        let bytes = try #require(OneShotPost.request(host: "::1", port: 7700, token: "imt_abc", target: .direct("bob"),
                                                     body: "say \"hi\"\n\u{1}é", clientID: "cid-1"))
        let text = String(decoding: bytes, as: UTF8.self)
        let (head, body) = try #require(text.split(separator: "\r\n\r\n", maxSplits: 1).map(String.init).pairs)
        #expect(head.hasPrefix("POST /v1/messages HTTP/1.1\r\n"))
        #expect(head.contains("\r\nHost: [::1]:7700\r\n"))
        #expect(head.contains("\r\nAuthorization: Bearer imt_abc\r\n"))
        #expect(head.contains("\r\nConnection: close"))
        #expect(head.contains("\r\nContent-Length: \(body.utf8.count)\r\n") || head.hasSuffix("Content-Length: \(body.utf8.count)"))
        #expect(body == #"{"to":"@bob","body":"say \"hi\"\n\u0001é","id":"cid-1"}"#)
    }

    /// A token that could break out of its header line is not put in one.
    @Test(arguments: ["imt_a\r\nX-Evil: 1", "imt a", "", "imt_é"])
    func tokensThatCannotBeAHeaderAreRefused(token: String) {
        #expect(OneShotPost.request(host: "h", port: 1, token: token, target: .room("r"), body: "x", clientID: "c") == nil)
    }

    @Test func responsesAreReadWhenCompleteOnly() {
        let ack = #"{"id":7,"room":"r","seq":3,"ts":"2026-11-28T20:00:00.000Z","cid":"c-1"}"#
        let whole = Array("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\ncontent-length:  \(ack.utf8.count)\r\n\r\n\(ack)".utf8)
        #expect(OneShotPost.response(Array(whole.prefix(20))) == .incomplete)
        #expect(OneShotPost.response(Array(whole.dropLast(5))) == .incomplete)
        #expect(OneShotPost.response(whole) == .complete(status: 201, body: Array(ack.utf8)))
        // Bytes after the body (there should be none) are not part of it.
        #expect(OneShotPost.response(whole + Array("junk".utf8)) == .complete(status: 201, body: Array(ack.utf8)))
        #expect(OneShotPost.response(Array("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".utf8)) == .complete(status: 204, body: []))
    }

    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n\r\nno length",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "SSH-2.0-OpenSSH\r\n\r\n",
        "HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    ])
    func responsesWeCannotReadAreInvalid(text: String) {
        #expect(OneShotPost.response(Array(text.utf8)) == .invalid)
    }

    @Test func onlyAnAckForOurIDCountsAsDone() {
        let ack = Array(#"{"id":7,"room":"@bob","seq":3,"ts":"2026-11-28T20:00:00.000Z","cid":"c-1"}"#.utf8)
        let duplicate = Array(#"{"id":7,"room":"@bob","seq":3,"ts":"2026-11-28T20:00:00.000Z","cid":"c-1","duplicate":true}"#.utf8)
        #expect(OneShotPost.outcome(status: 201, body: ack, clientID: "c-1")
                == .acked(Ack(cid: "c-1", id: 7, room: "@bob", seq: 3, ts: "2026-11-28T20:00:00.000Z", duplicate: false)))
        #expect(OneShotPost.outcome(status: 200, body: duplicate, clientID: "c-1")
                == .acked(Ack(cid: "c-1", id: 7, room: "@bob", seq: 3, ts: "2026-11-28T20:00:00.000Z", duplicate: true)))
        for (status, body, cid) in [(201, ack, "c-2"), (413, ack, "c-1"), (503, Array("{}".utf8), "c-1"), (201, Array("{}".utf8), "c-1"),
                                    (401, Array(#"{"error":{"message":"no"}}"#.utf8), "c-1")] {
            guard case .notDone = OneShotPost.outcome(status: status, body: body, clientID: cid) else {
                Issue.record("\(status) with \(String(decoding: body, as: UTF8.self)) for \(cid) counted as done")
                continue
            }
        }
    }
}

extension Array where Element == String {
    fileprivate var pairs: (String, String)? { count == 2 ? (self[0], self[1]) : nil }
}
