import Foundation
import IMAuth
import IMTestSupport
import IMWire
import Testing
@testable import IMStorage

/// Every store the server can run on.
enum StoreKind: String, CaseIterable, CustomTestStringConvertible {
    case sqlite, memory, postgres
    var testDescription: String { rawValue }

    /// The kinds this run covers: PostgreSQL unless `IMCTL_SKIP_POSTGRES=1`.
    static var covered: [StoreKind] { TestPostgres.skipped ? [.sqlite, .memory] : allCases }
}

/// A fresh, empty store of `kind` (SQLite in its own temporary folder, PostgreSQL in a database of its
/// own on the test server), closed afterwards.
func withStore<T>(_ kind: StoreKind, _ body: (any ChatStore) async throws -> T) async throws -> T {
    switch kind {
    case .memory:
        return try await body(MemoryStore())
    case .sqlite:
        return try await withStore { store, _ in try await body(store) }
    case .postgres:
        let store = try await PostgresStore.open(url: try TestPostgres.database())
        do {
            let result = try await body(store)
            try await store.close()
            return result
        } catch {
            try? await store.close()
            throw error
        }
    }
}

/// The storage contract: what the server and `users` rely on from any store, run against each one.
@Suite struct StoreContractTests {
    @Test(arguments: StoreKind.covered) func seqIsGapFreePerConversation(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
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

    @Test(arguments: StoreKind.covered) func resendWithSameIDReturnsFirstAck(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
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

    @Test(arguments: StoreKind.covered) func directMessagesAreFoundByEitherMember(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
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

    @Test(arguments: StoreKind.covered) func usersAndTokens(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
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

    @Test(arguments: StoreKind.covered) func largeBatchesRoundTrip(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let n = 2_500
            let out = try await store.append((0..<n).map { message(.room("big"), "u", "\($0)", "body \($0)") })
            #expect(out.map(\.message.seq) == (1...Int64(n)).map { $0 })
            let back = try await store.messages(in: .room("big"), afterSeq: 0, limit: n)
            #expect(back.map(\.body) == (0..<n).map { "body \($0)" })
            #expect(try await store.lastMessageID() == back.last?.id)
        }
    }

    /// A resend inside a batch takes no seq: the messages after it keep the run gap-free.
    @Test(arguments: StoreKind.covered) func resendsTakeNoSeq(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
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
    @Test(arguments: StoreKind.covered) func bodiesRoundTripExactly(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let r = ConversationKey.room("r")
            let bodies = ["", "nul \u{0} inside", "é😀", String(repeating: "x", count: 70_000)]
            _ = try await store.append(bodies.enumerated().map { message(r, "a", "\($0.offset)", $0.element) })
            #expect(try await store.messages(in: r, afterSeq: 0, limit: 10).map(\.body) == bodies)
            // A resend answers with the stored body too.
            let again = try await store.append([message(r, "a", "1", "ignored")])
            #expect(again[0].duplicate && again[0].message.body == bodies[1])
        }
    }

    /// A removed user's name is never given again; the tombstone is invisible otherwise.
    @Test(arguments: StoreKind.covered) func removedNamesAreRetired(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(name: "bob", passwordHash: "x", isAdmin: false)
            _ = try await store.createToken(user: "bob", tokenHash: Credentials.tokenHash("t"), label: nil, expiresAt: nil)
            try await store.removeUser(named: "bob")
            #expect(try await store.user(named: "bob") == nil)
            #expect(try await store.passwordHash(of: "bob") == nil)
            #expect(try await !store.hasUsers())
            #expect(try await store.authenticate(tokenHash: Credentials.tokenHash("t"), now: Timestamp.nowMillis()) == nil)
            await #expect(throws: StorageError.nameRetired("bob")) { try await store.createUser(name: "bob", passwordHash: "y", isAdmin: false) }
            await #expect(throws: StorageError.noSuchUser("bob")) { try await store.tokens(of: "bob") }
            await #expect(throws: StorageError.noSuchUser("bob")) { try await store.setDisabled("bob", false) }
        }
    }

    /// Every change that can end a session moves the epoch; reads and new tokens do not.
    @Test(arguments: StoreKind.covered) func theSecurityEpochMovesOnEveryCutOff(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(name: "alice", passwordHash: "h1", isAdmin: false)
            var epoch = try await store.securityEpoch()
            func moved(_ what: String, _ change: () async throws -> Void) async throws {
                try await change()
                let now = try await store.securityEpoch()
                #expect(now > epoch, "\(what) did not move the epoch")
                epoch = now
            }
            func still(_ what: String, _ change: () async throws -> Void) async throws {
                try await change()
                #expect(try await store.securityEpoch() == epoch, "\(what) moved the epoch")
            }
            let token = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash("a"), label: nil, expiresAt: nil)
            try await still("a read") { _ = try await store.authenticate(tokenHash: Credentials.tokenHash("a"), now: Timestamp.nowMillis()) }
            try await still("a new token") { _ = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash("b"), label: nil, expiresAt: nil) }
            try await moved("revoking one token") { try await store.revokeToken(user: "alice", id: token.id) }
            try await moved("revoking by hash") { let revoked = try await store.revokeToken(hash: Credentials.tokenHash("b")); #expect(revoked) }
            try await still("revoking an unknown hash") { let revoked = try await store.revokeToken(hash: Credentials.tokenHash("zz")); #expect(!revoked) }
            _ = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash("c"), label: nil, expiresAt: nil)
            try await moved("revoking all") { let count = try await store.revokeAllTokens(user: "alice"); #expect(count == 1) }
            try await moved("a new password") { try await store.setPasswordHash(of: "alice", to: "h2") }
            try await moved("disabling") { try await store.setDisabled("alice", true) }
            try await moved("removing") { try await store.removeUser(named: "alice") }
        }
    }

    /// Which of many tokens still sign someone in: expired ones, disabled and removed users' do not.
    @Test(arguments: StoreKind.covered) func validTokensAreThoseThatStillSignIn(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let now = Timestamp.nowMillis()
            for name in ["alice", "dora", "rob"] { _ = try await store.createUser(name: name, passwordHash: "x", isAdmin: false) }
            let hashes = ["a", "expired", "dora", "rob", "unknown"].map { Credentials.tokenHash($0) }
            _ = try await store.createToken(user: "alice", tokenHash: hashes[0], label: nil, expiresAt: now + 60_000)
            _ = try await store.createToken(user: "alice", tokenHash: hashes[1], label: nil, expiresAt: now)
            _ = try await store.createToken(user: "dora", tokenHash: hashes[2], label: nil, expiresAt: nil)
            _ = try await store.createToken(user: "rob", tokenHash: hashes[3], label: nil, expiresAt: nil)
            try await store.setDisabled("dora", true)
            try await store.removeUser(named: "rob")
            #expect(try await store.validTokens(among: hashes, now: now) == [hashes[0]])
            #expect(try await store.validTokens(among: [], now: now).isEmpty)
        }
    }

    /// A stronger hash replaces the one that was checked, and only that one.
    @Test(arguments: StoreKind.covered) func passwordUpgradesAreConditional(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(name: "alice", passwordHash: "weak", isAdmin: false)
            _ = try await store.createToken(user: "alice", tokenHash: Credentials.tokenHash("t"), label: nil, expiresAt: nil)
            try await store.upgradePasswordHash(of: "alice", from: "other", to: "strong")
            #expect(try await store.passwordHash(of: "alice") == "weak")
            try await store.upgradePasswordHash(of: "alice", from: "weak", to: "strong")
            #expect(try await store.passwordHash(of: "alice") == "strong")
            #expect(try await store.tokens(of: "alice").count == 1, "an upgrade keeps the tokens")
        }
    }

    /// The conversation list: every room, the reader's own direct ones, newest first, limited.
    @Test(arguments: StoreKind.covered) func conversationsAreTheReadersNewestFirst(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            #expect(try await store.conversations(of: "alice", limit: 10).isEmpty)
            #expect(try await store.lastMessageID() == 0)
            let ab = ConversationKey(target: .direct("bob"), user: "alice")
            let bc = ConversationKey(target: .direct("carol"), user: "bob")
            _ = try await store.append([message(.room("general"), "bob", "1"), message(ab, "bob", "2"), message(bc, "bob", "3"),
                                        message(.room("dev"), "carol", "4"), message(.room("general"), "carol", "5")])
            let list = try await store.conversations(of: "alice", limit: 10)
            #expect(list.map(\.conversation) == [.room("general"), .room("dev"), ab])
            #expect(list.map(\.lastSeq) == [2, 1, 1])
            #expect(list.first?.lastID == (try await store.lastMessageID()))
            #expect(try await store.conversations(of: "alice", limit: 2).count == 2)
            #expect(try await store.conversations(of: "carol", limit: 10).map(\.conversation) == [.room("general"), .room("dev"), bc])
        }
    }

    /// Reads page: `afterSeq` and `limit` for a conversation, `afterID` and `limit` for direct ones.
    @Test(arguments: StoreKind.covered) func readsPage(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            let r = ConversationKey.room("r")
            let ab = ConversationKey(target: .direct("bob"), user: "alice")
            _ = try await store.append((1...10).map { message($0 % 2 == 0 ? r : ab, "alice", "\($0)") })
            #expect(try await store.messages(in: r, afterSeq: 1, limit: 2).map(\.seq) == [2, 3])
            #expect(try await store.messages(in: r, afterSeq: 5, limit: 10).isEmpty)
            #expect(try await store.messages(in: .room("none"), afterSeq: 0, limit: 10).isEmpty)
            #expect(try await store.lastMessages(in: ab, count: 2).map(\.seq) == [4, 5])
            #expect(try await store.lastMessages(in: ab, count: 50).map(\.seq) == [1, 2, 3, 4, 5])
            let first = try await store.directMessages(of: "bob", afterID: 0, limit: 3)
            #expect(first.map(\.clientID) == ["1", "3", "5"])
            #expect(try await store.directMessages(of: "bob", afterID: first.last!.id, limit: 3).map(\.clientID) == ["7", "9"])
            // Every conversation, in id order (how servers sharing a store hear of each other's messages).
            let all = try await store.messages(afterID: 0, limit: 100)
            #expect(all.map(\.clientID) == (1...10).map { "\($0)" })
            #expect(try await store.messages(afterID: all[6].id, limit: 2).map(\.clientID) == ["8", "9"])
            #expect(try await store.messages(afterID: all[9].id, limit: 2).isEmpty)
        }
    }

    @Test(arguments: StoreKind.covered) func aStepIsUsedOnce(_ kind: StoreKind) async throws {
        try await withStore(kind) { store in
            _ = try await store.createUser(name: "alice", passwordHash: "x", isAdmin: false)
            try await store.setOTPSecret(of: "alice", to: "JBSWY3DPEHPK3PXP")
            #expect(try await store.otpSecret(of: "alice") == "JBSWY3DPEHPK3PXP")
            #expect(try await store.useOTPStep(of: "alice", step: 100))
            #expect(try await !store.useOTPStep(of: "alice", step: 100))
            #expect(try await !store.useOTPStep(of: "alice", step: 99))
            #expect(try await store.useOTPStep(of: "alice", step: 101))
            // A new secret starts over.
            try await store.setOTPSecret(of: "alice", to: "KRSXG5DSNFXGOIDB")
            #expect(try await store.useOTPStep(of: "alice", step: 50))
            try await store.setOTPSecret(of: "alice", to: nil)
            #expect(try await store.otpSecret(of: "alice") == nil)
        }
    }
}
