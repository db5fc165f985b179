import Foundation
import IMWire
import Testing
import IMAuth
@testable import IMStorage

/// A fresh store in its own temporary folder.
func withStore<T>(_ body: (SQLiteStore, String) async throws -> T) async throws -> T {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-store-\(UUID().uuidString)")
    let path = dir.appendingPathComponent("sub/imctl.db").path
    defer { try? FileManager.default.removeItem(at: dir) }
    let store = try await SQLiteStore.open(path: path)
    do {
        let result = try await body(store, path)
        try await store.close()
        return result
    } catch {
        try? await store.close()
        throw error
    }
}

func message(_ conv: ConversationKey, _ sender: String, _ cid: String, _ body: String = "b") -> NewMessage {
    NewMessage(conversation: conv, sender: sender, clientID: cid, body: body, ts: Timestamp.nowMillis())
}

@Suite struct SQLiteStoreTests {
    @Test func fileAndFolderArePrivate() async throws {
        try await withStore { _, path in
            let file = try FileManager.default.attributesOfItem(atPath: path)
            #expect((file[.posixPermissions] as? Int) == 0o600)
            let dir = try FileManager.default.attributesOfItem(atPath: (path as NSString).deletingLastPathComponent)
            #expect((dir[.posixPermissions] as? Int) == 0o700)
        }
    }

    @Test func seqIsGapFreePerConversation() async throws {
        try await withStore { store, _ in
            let a = ConversationKey.room("a"), b = ConversationKey.room("b")
            let out = try await store.append([message(a, "u", "1"), message(b, "u", "2"), message(a, "u", "3")])
            #expect(out.map(\.message.seq) == [1, 1, 2])
            #expect(out.allSatisfy { !$0.duplicate })
            let more = try await store.append((4...10).map { message(a, "u", "\($0)") })
            #expect(more.map(\.message.seq) == Array(3...9))
            let ids = (out + more).map(\.message.id)
            #expect(ids == ids.sorted() && Set(ids).count == ids.count)
            let stored = try await store.messages(in: a, afterSeq: 0, limit: 100)
            #expect(stored.map(\.seq) == Array(1...9))
            #expect(try await store.messages(in: a, afterSeq: 7, limit: 100).map(\.seq) == [8, 9])
            #expect(try await store.lastMessages(in: a, count: 3).map(\.seq) == [7, 8, 9])
            #expect(try await store.messages(in: b, afterSeq: 0, limit: 100).map(\.seq) == [1])
        }
    }

    @Test func resendWithSameIDReturnsFirstAck() async throws {
        try await withStore { store, _ in
            let r = ConversationKey.room("r")
            let first = try await store.append([message(r, "alice", "x", "one")])[0]
            let again = try await store.append([message(r, "alice", "x", "changed"), message(r, "bob", "x", "bob's")])
            #expect(again[0].duplicate)
            #expect(again[0].message == first.message)
            #expect(!again[1].duplicate, "the id is per sender")
            #expect(again[1].message.seq == 2)
            // A repeat inside one batch stores once too.
            let batch = try await store.append([message(r, "alice", "y"), message(r, "alice", "y")])
            #expect(!batch[0].duplicate && batch[1].duplicate)
            #expect(batch[0].message == batch[1].message)
            #expect(try await store.messages(in: r, afterSeq: 0, limit: 10).map(\.seq) == [1, 2, 3])
        }
    }

    @Test func seqSurvivesReopen() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-reopen-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("imctl.db").path
        var store = try await SQLiteStore.open(path: path)
        _ = try await store.append((1...5).map { message(.room("r"), "u", "\($0)") })
        try await store.close()
        store = try await SQLiteStore.open(path: path)
        let next = try await store.append([message(.room("r"), "u", "6"), message(.room("r"), "u", "1")])
        #expect(next[0].message.seq == 6)
        #expect(next[1].duplicate && next[1].message.seq == 1)
        try await store.close()
    }

    @Test func directMessagesAreFoundByEitherMember() async throws {
        try await withStore { store, _ in
            let ab = ConversationKey(target: .direct("bob"), user: "alice")
            let ac = ConversationKey(target: .direct("carol"), user: "alice")
            _ = try await store.append([message(ab, "alice", "1"), message(.room("r"), "alice", "2"), message(ac, "carol", "3")])
            #expect(try await store.directMessages(of: "bob", afterID: 0, limit: 10).map(\.clientID) == ["1"])
            #expect(try await store.directMessages(of: "alice", afterID: 0, limit: 10).map(\.clientID) == ["1", "3"])
            #expect(try await store.directMessages(of: "carol", afterID: 0, limit: 10).map(\.clientID) == ["3"])
            let m = try #require(try await store.directMessages(of: "bob", afterID: 0, limit: 10).first)
            #expect(m.view(for: "bob").room == "@alice")
            #expect(m.view(for: "alice").room == "@bob")
        }
    }

    @Test func usersAndTokens() async throws {
        try await withStore { store, _ in
            #expect(try await !store.hasUsers())
            let hash = try Credentials.hashPassword("password1", cost: Credentials.minimumScryptN)
            _ = try await store.createUser(name: "alice", passwordHash: hash, isAdmin: true)
            await #expect(throws: StorageError.userExists("alice")) { try await store.createUser(name: "alice", passwordHash: hash, isAdmin: false) }
            await #expect(throws: StorageError.invalidName("Bad Name")) { try await store.createUser(name: "Bad Name", passwordHash: hash, isAdmin: false) }
            #expect(try await store.hasUsers())
            #expect(Credentials.verifyPassword("password1", hash: try #require(try await store.passwordHash(of: "alice"))))
            #expect(!Credentials.verifyPassword("password2", hash: hash))

            let token = Credentials.newToken()
            let now = Timestamp.nowMillis()
            let record = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash(token), label: "ci", expiresAt: nil)
            #expect(try await store.authenticate(tokenHash: Credentials.tokenHash(token), now: now)?.name == "alice")
            #expect(try await store.authenticate(tokenHash: Credentials.tokenHash(token + "x"), now: now) == nil)
            #expect(try await store.tokens(of: "alice").map(\.id) == [record.id])

            // Expired tokens do not authenticate.
            let old = Credentials.newToken()
            _ = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash(old), label: nil, expiresAt: now - 1)
            #expect(try await store.authenticate(tokenHash: Credentials.tokenHash(old), now: now) == nil)

            // Disabled users do not authenticate.
            try await store.setDisabled("alice", true)
            #expect(try await store.authenticate(tokenHash: Credentials.tokenHash(token), now: now) == nil)
            try await store.setDisabled("alice", false)
            #expect(try await store.authenticate(tokenHash: Credentials.tokenHash(token), now: now) != nil)

            // A new password revokes every token.
            try await store.setPasswordHash(of: "alice", to: try Credentials.hashPassword("password2", cost: Credentials.minimumScryptN))
            #expect(try await store.authenticate(tokenHash: Credentials.tokenHash(token), now: now) == nil)
            #expect(try await store.tokens(of: "alice").isEmpty)

            let t2 = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash("a"), label: nil, expiresAt: nil)
            try await store.revokeToken(user: "alice", id: t2.id)
            await #expect(throws: StorageError.noSuchToken(String(t2.id))) { try await store.revokeToken(user: "alice", id: t2.id) }
            _ = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash("b"), label: nil, expiresAt: nil)
            _ = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash("c"), label: nil, expiresAt: nil)
            #expect(try await store.revokeAllTokens(user: "alice") == 2)

            try await store.removeUser(named: "alice")
            await #expect(throws: StorageError.noSuchUser("alice")) { try await store.removeUser(named: "alice") }
            #expect(try await store.listUsers().isEmpty)
        }
    }

    @Test func tokensAreStoredOnlyAsHashes() async throws {
        try await withStore { store, path in
            _ = try await store.createUser(name: "alice", passwordHash: "x", isAdmin: false)
            let token = Credentials.newToken()
            _ = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash(token), label: nil, expiresAt: nil)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path)) + ((try? Data(contentsOf: URL(fileURLWithPath: path + "-wal"))) ?? Data())
            #expect(bytes.range(of: Data(token.utf8)) == nil)
            #expect(bytes.range(of: Data(Credentials.tokenHash(token))) != nil)
        }
    }

    @Test func largeBatchesRoundTrip() async throws {
        try await withStore { store, _ in
            let n = 2_500
            let out = try await store.append((0..<n).map { message(.room("big"), "u", "\($0)", "body \($0)") })
            #expect(out.map(\.message.seq) == (1...Int64(n)).map { $0 })
            let back = try await store.messages(in: .room("big"), afterSeq: 0, limit: n)
            #expect(back.map(\.body) == (0..<n).map { "body \($0)" })
            #expect(try await store.lastMessageID() == back.last?.id)
        }
    }

    /// A resend inside a batch takes no seq: the messages after it keep the run gap-free.
    @Test func resendsTakeNoSeq() async throws {
        try await withStore { store, _ in
            let r = ConversationKey.room("r")
            _ = try await store.append([message(r, "a", "1"), message(r, "a", "2")])
            let out = try await store.append([message(r, "a", "3"), message(r, "a", "1"), message(r, "b", "1"), message(r, "a", "3"),
                                              message(r, "a", "4")])
            #expect(out.map(\.duplicate) == [false, true, false, true, false])
            #expect(out.map(\.message.seq) == [3, 1, 4, 3, 5])
            #expect(out[3].message == out[0].message)
            #expect(try await store.messages(in: r, afterSeq: 0, limit: 10).map(\.seq) == [1, 2, 3, 4, 5])
        }
    }

    /// Bodies come back byte for byte, NUL characters and empty ones included.
    @Test func bodiesRoundTripExactly() async throws {
        try await withStore { store, _ in
            let r = ConversationKey.room("r")
            let bodies = ["", "nul \u{0} inside", "é😀", String(repeating: "x", count: 70_000)]
            _ = try await store.append(bodies.enumerated().map { message(r, "a", "\($0.offset)", $0.element) })
            #expect(try await store.messages(in: r, afterSeq: 0, limit: 10).map(\.body) == bodies)
            // A resend answers with the stored body too.
            let again = try await store.append([message(r, "a", "1", "ignored")])
            #expect(again[0].duplicate && again[0].message.body == bodies[1])
        }
    }

    /// Seqs and ids go on where they were after a reopen, and when another process appended meanwhile.
    @Test func seqsContinueAcrossWriters() async throws {
        try await withStore { store, path in
            let r = ConversationKey.room("r")
            _ = try await store.append([message(r, "a", "1"), message(r, "a", "2")])
            let other = try await SQLiteStore.open(path: path)
            let theirs = try await other.append([message(r, "b", "1")])
            #expect(theirs[0].message.seq == 3)
            try await other.close()
            // This writer's cached next seq (3) is stale now: it must notice and reload.
            let ours = try await store.append([message(r, "a", "3")])
            #expect(ours[0].message.seq == 4)
            #expect(ours[0].message.id > theirs[0].message.id)
            #expect(try await store.messages(in: r, afterSeq: 0, limit: 10).map(\.seq) == [1, 2, 3, 4])
        }
    }
}
