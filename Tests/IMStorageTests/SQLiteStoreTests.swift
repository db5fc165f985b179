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
