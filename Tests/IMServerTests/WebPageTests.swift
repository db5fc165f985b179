import Foundation
import IMClient
import IMServer
import IMStorage
import IMWire
import Testing

/// The chat page's side of the server: its files from inside the binary, with headers that keep them
/// fresh and keep the page to its own code; the conversation list and newest-N history it reads.
/// (The page itself is tried in Chromium: imctlTests/BrowserTests.)
@Suite(.timeLimit(.minutes(2))) struct WebPageTests {
    @Test func thePageAndItsFilesAreServedFromTheBinary() async throws {
        try await withServer { server in
            let page = try await rawHTTPResponse(port: server.port, method: "GET", path: "/")
            #expect(page.status == 200)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.body.contains(#"<script src="/assets/app.js" defer></script>"#))
            let policy = try #require(page.headers["content-security-policy"])
            #expect(policy.contains("script-src 'self'") && policy.contains("default-src 'none'") && policy.contains("frame-ancestors 'none'"))
            #expect(page.headers["x-content-type-options"] == "nosniff")
            #expect(page.headers["cache-control"] == "no-cache")
            let etag = try #require(page.headers["etag"])

            // Every file the page names is there, with its type.
            for (path, type) in [("/assets/app.js", "text/javascript"), ("/assets/style.css", "text/css"), ("/assets/icon.svg", "image/svg+xml")] {
                #expect(page.body.contains(path), "the page does not name \(path)")
                let file = try await rawHTTPResponse(port: server.port, method: "GET", path: path)
                #expect(file.status == 200, "\(path)")
                #expect(file.headers["content-type"]?.hasPrefix(type) == true, "\(path): \(file.headers)")
                #expect(!file.body.isEmpty)
            }
            // The script speaks the protocol with an auth frame and writes bodies as text.
            let script = try await rawHTTPResponse(port: server.port, method: "GET", path: "/assets/app.js").body
            #expect(script.contains(#"op: "auth""#))
            #expect(!script.contains("innerHTML"))

            let again = try await rawHTTPResponse(port: server.port, method: "GET", path: "/", headers: ["If-None-Match: \(etag)"])
            #expect(again.status == 304)
            #expect(again.body.isEmpty)
            let head = try await rawHTTPResponse(port: server.port, method: "HEAD", path: "/")
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(head.headers["content-length"] == page.headers["content-length"])
            #expect(try await rawHTTPResponse(port: server.port, method: "GET", path: "/assets/nothing.js").status == 404)
            #expect(try await rawHTTPResponse(port: server.port, method: "GET", path: "/assets/../Package.swift").status == 404)
        }
    }

    @Test func theConversationListShowsRoomsAndOnlyTheReadersDirectOnes() async throws {
        try await withServer { server in
            let alice = try await server.user("alice")
            let bob = try await server.user("bob")
            let carol = try await server.user("carol")
            _ = try await send(["one", "two"], to: .room("general"), server.client(alice))
            _ = try await send(["psst"], to: .direct("bob"), server.client(alice))
            _ = try await send(["just us"], to: .direct("carol"), server.client(bob))
            _ = try await send(["later"], to: .room("random"), server.client(carol))

            func list(_ token: String) async throws -> [[String: Any]] {
                let text = try await APIClient(server: server.url, token: token).call("GET", "/v1/conversations")
                let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
                return try #require(object["conversations"] as? [[String: Any]])
            }
            // Newest first, each with its last seq and message id; direct ones labelled @peer.
            let seenByAlice = try await list(alice)
            #expect(seenByAlice.map { $0["room"] as? String } == ["random", "@bob", "general"])
            #expect(seenByAlice.map { $0["seq"] as? Int } == [1, 1, 2])
            let ids = seenByAlice.compactMap { $0["id"] as? Int }
            #expect(ids == ids.sorted(by: >) && ids.count == 3)
            #expect(try await list(bob).map { $0["room"] as? String } == ["random", "@carol", "@alice", "general"])
            #expect(try await list(carol).map { $0["room"] as? String } == ["random", "@bob", "general"])
            await #expect(throws: ClientError.self) { try await APIClient(server: server.url, token: nil).call("GET", "/v1/conversations") }
        }
    }

    @Test func historyGivesTheNewestN() async throws {
        try await withServer { server in
            let alice = try await server.user("alice")
            _ = try await send((1...30).map { "m\($0)" }, to: .room("general"), server.client(alice))
            let text = try await APIClient(server: server.url, token: alice).call("GET", "/v1/history?to=general&last=5")
            let object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            let messages = try #require(object["messages"] as? [[String: Any]])
            #expect(messages.map { $0["seq"] as? Int } == [26, 27, 28, 29, 30])
            #expect(messages.last?["body"] as? String == "m30")
        }
    }
}
