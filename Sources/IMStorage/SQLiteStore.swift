public import IMWire
import Logging
import NIOCore
import NIOPosix
import SQLiteNIO
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The embedded default store: one SQLite file in WAL mode.
///
/// Three connections: one for message appends (the group committer's), one for other writes, and one
/// for reads, so that history reads never wait behind a commit.
public final class SQLiteStore: ChatStore {
    private let writer: SQLiteConnection
    private let admin: SQLiteConnection
    private let reader: SQLiteConnection
    private let appendLock = AsyncLock()
    private let cache = ConversationCache()
    /// Binds per INSERT statement stay well under SQLite's limit of 32766.
    static let rowsPerInsert = 500

    private init(writer: SQLiteConnection, admin: SQLiteConnection, reader: SQLiteConnection) {
        self.writer = writer
        self.admin = admin
        self.reader = reader
    }

    /// Opens (creating if needed) the store at `path`: the folder 0700, the file 0600, schema migrated.
    public static func open(path: String, logger: Logger = Logger(label: "imctl.sqlite")) async throws -> SQLiteStore {
        try prepareFile(path)
        func connect() async throws -> SQLiteConnection {
            do {
                return try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
            } catch {
                throw StorageError.cannotOpen("\(path): \(error)")
            }
        }
        let writer = try await connect()
        do {
            _ = try await writer.query("PRAGMA journal_mode=WAL")
            try await configure(writer)
            try await Migrations.run(on: writer)
            let admin = try await connect()
            try await configure(admin)
            let reader = try await connect()
            try await configure(reader)
            return SQLiteStore(writer: writer, admin: admin, reader: reader)
        } catch let error as StorageError {
            try? await writer.close()
            throw error
        } catch {
            try? await writer.close()
            throw StorageError.cannotOpen("\(path): \(error)")
        }
    }

    private static func configure(_ c: SQLiteConnection) async throws {
        // FULL: the WAL is synced at every commit, so an acked message survives power loss, not only kill -9.
        _ = try await c.query("PRAGMA synchronous=FULL")
        _ = try await c.query("PRAGMA foreign_keys=ON")
        // Wait (sleeping) for another process's write lock instead of the driver's spinning retry.
        _ = try await c.query("PRAGMA busy_timeout=10000")
    }

    /// Creates the folder (0700) and an empty file (0600) before SQLite does, so it never exists wider.
    private static func prepareFile(_ path: String) throws {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty, !FileManager.default.fileExists(atPath: dir) {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw StorageError.cannotOpen("cannot create folder \(dir): \(error.localizedDescription)")
            }
        }
        let fd = Glibc.open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw StorageError.cannotOpen("\(path): \(String(cString: strerror(errno)))")
        }
        Glibc.close(fd)
    }

    public func close() async throws {
        try await reader.close()
        try await admin.close()
        try await writer.close()
    }

    // MARK: users

    public func hasUsers() async throws -> Bool {
        try await reader.query("SELECT 1 FROM users LIMIT 1").isEmpty == false
    }

    public func createUser(name: String, passwordHash: String, isAdmin: Bool) async throws -> UserRecord {
        guard Names.isValidUser(name) else { throw StorageError.invalidName(name) }
        let now = Timestamp.nowMillis()
        do {
            let rows = try await admin.query(
                "INSERT INTO users(name, password_hash, is_admin, disabled, created_at) VALUES (?, ?, ?, 0, ?) RETURNING id",
                [.text(name), .text(passwordHash), .integer(isAdmin ? 1 : 0), .integer(Int(now))])
            let id = Int64(rows.first?.column("id")?.integer ?? 0)
            return UserRecord(id: id, name: name, isAdmin: isAdmin, isDisabled: false, createdAt: now)
        } catch let error as SQLiteError where error.reason == .constraintUniqueFailed || error.reason == .constraint {
            throw StorageError.userExists(name)
        }
    }

    private static func userRecord(_ row: SQLiteRow) -> UserRecord {
        UserRecord(id: Int64(row.column("id")?.integer ?? 0), name: row.column("name")?.string ?? "",
                   isAdmin: row.column("is_admin")?.integer == 1, isDisabled: row.column("disabled")?.integer == 1,
                   createdAt: Int64(row.column("created_at")?.integer ?? 0))
    }

    public func user(named name: String) async throws -> UserRecord? {
        try await reader.query("SELECT id, name, is_admin, disabled, created_at FROM users WHERE name = ?", [.text(name)])
            .first.map(Self.userRecord)
    }

    public func passwordHash(of name: String) async throws -> String? {
        try await reader.query("SELECT password_hash FROM users WHERE name = ?", [.text(name)]).first?.column("password_hash")?.string
    }

    public func listUsers() async throws -> [UserRecord] {
        try await reader.query("SELECT id, name, is_admin, disabled, created_at FROM users ORDER BY name").map(Self.userRecord)
    }

    private func userID(_ name: String, on c: SQLiteConnection) async throws -> Int64 {
        guard let id = try await c.query("SELECT id FROM users WHERE name = ?", [.text(name)]).first?.column("id")?.integer else {
            throw StorageError.noSuchUser(name)
        }
        return Int64(id)
    }

    public func removeUser(named name: String) async throws {
        let rows = try await admin.query("DELETE FROM users WHERE name = ? RETURNING id", [.text(name)])
        guard !rows.isEmpty else { throw StorageError.noSuchUser(name) }
    }

    public func setPasswordHash(of name: String, to hash: String) async throws {
        _ = try await admin.query("BEGIN IMMEDIATE")
        do {
            let id = try await userID(name, on: admin)
            _ = try await admin.query("UPDATE users SET password_hash = ? WHERE id = ?", [.text(hash), .integer(Int(id))])
            _ = try await admin.query("DELETE FROM tokens WHERE user_id = ?", [.integer(Int(id))])
            _ = try await admin.query("COMMIT")
        } catch {
            _ = try? await admin.query("ROLLBACK")
            throw error
        }
    }

    public func setDisabled(_ name: String, _ disabled: Bool) async throws {
        let rows = try await admin.query("UPDATE users SET disabled = ? WHERE name = ? RETURNING id", [.integer(disabled ? 1 : 0), .text(name)])
        guard !rows.isEmpty else { throw StorageError.noSuchUser(name) }
    }

    public func setOTPSecret(of name: String, to secret: String?) async throws {
        let rows = try await admin.query("UPDATE users SET otp_secret = ?, otp_last_step = NULL WHERE name = ? RETURNING id",
                                         [secret.map { .text($0) } ?? .null, .text(name)])
        guard !rows.isEmpty else { throw StorageError.noSuchUser(name) }
    }

    public func otpSecret(of name: String) async throws -> String? {
        try await reader.query("SELECT otp_secret FROM users WHERE name = ?", [.text(name)]).first?.column("otp_secret")?.string
    }

    public func useOTPStep(of name: String, step: Int64) async throws -> Bool {
        try await !admin.query(
            "UPDATE users SET otp_last_step = ? WHERE name = ? AND (otp_last_step IS NULL OR otp_last_step < ?) RETURNING id",
            [.integer(Int(step)), .text(name), .integer(Int(step))]).isEmpty
    }

    // MARK: tokens

    public func createToken(user: String, tokenHash: [UInt8], label: String?, expiresAt: Int64?) async throws -> TokenRecord {
        let id = try await userID(user, on: admin)
        let now = Timestamp.nowMillis()
        let rows = try await admin.query(
            "INSERT INTO tokens(user_id, hash, label, created_at, expires_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
            [.integer(Int(id)), .blob(ByteBuffer(bytes: tokenHash)), label.map { .text($0) } ?? .null, .integer(Int(now)),
             expiresAt.map { .integer(Int($0)) } ?? .null])
        return TokenRecord(id: Int64(rows.first?.column("id")?.integer ?? 0), user: user, label: label, createdAt: now,
                           expiresAt: expiresAt, lastUsedAt: nil)
    }

    public func tokens(of user: String) async throws -> [TokenRecord] {
        let uid = try await userID(user, on: reader)
        return try await reader.query(
            "SELECT id, label, created_at, expires_at, last_used_at FROM tokens WHERE user_id = ? ORDER BY id", [.integer(Int(uid))]
        ).map { row in
            TokenRecord(id: Int64(row.column("id")?.integer ?? 0), user: user, label: row.column("label")?.string,
                        createdAt: Int64(row.column("created_at")?.integer ?? 0),
                        expiresAt: row.column("expires_at")?.integer.map(Int64.init),
                        lastUsedAt: row.column("last_used_at")?.integer.map(Int64.init))
        }
    }

    public func revokeToken(user: String, id: Int64) async throws {
        let uid = try await userID(user, on: admin)
        let rows = try await admin.query("DELETE FROM tokens WHERE id = ? AND user_id = ? RETURNING id", [.integer(Int(id)), .integer(Int(uid))])
        guard !rows.isEmpty else { throw StorageError.noSuchToken(String(id)) }
    }

    public func revokeAllTokens(user: String) async throws -> Int {
        let uid = try await userID(user, on: admin)
        return try await admin.query("DELETE FROM tokens WHERE user_id = ? RETURNING id", [.integer(Int(uid))]).count
    }

    public func revokeToken(hash: [UInt8]) async throws -> Bool {
        try await !admin.query("DELETE FROM tokens WHERE hash = ? RETURNING id", [.blob(ByteBuffer(bytes: hash))]).isEmpty
    }

    public func authenticate(tokenHash: [UInt8], now: Int64) async throws -> UserRecord? {
        let rows = try await reader.query(
            """
            SELECT u.id, u.name, u.is_admin, u.disabled, u.created_at, t.id AS token_id, t.last_used_at FROM tokens t
            JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND (t.expires_at IS NULL OR t.expires_at > ?)
            """, [.blob(ByteBuffer(bytes: tokenHash)), .integer(Int(now))])
        guard let row = rows.first else { return nil }
        let user = Self.userRecord(row)
        guard !user.isDisabled else { return nil }
        // Record use at most once a minute per token so that reconnect storms do not turn into writes.
        let last = Int64(row.column("last_used_at")?.integer ?? 0)
        if now - last > 60_000, let tokenID = row.column("token_id")?.integer {
            _ = try? await admin.query("UPDATE tokens SET last_used_at = ? WHERE id = ?", [.integer(Int(now)), .integer(tokenID)])
        }
        return user
    }

    // MARK: messages

    public func append(_ batch: [NewMessage]) async throws -> [AppendOutcome] {
        guard !batch.isEmpty else { return [] }
        return try await appendLock.withLock {
            _ = try await writer.query("BEGIN IMMEDIATE")
            do {
                let outcomes = try await appendInTransaction(batch)
                _ = try await writer.query("COMMIT")
                await cache.commit()
                return outcomes
            } catch {
                _ = try? await writer.query("ROLLBACK")
                await cache.rollback()
                throw error
            }
        }
    }

    private func appendInTransaction(_ batch: [NewMessage]) async throws -> [AppendOutcome] {
        // 1. Earlier sends with the same (sender, client id): answer with the stored message.
        var existing: [IdemKey: StoredMessage] = [:]
        let bySender = Dictionary(grouping: batch, by: \.sender)
        for (sender, messages) in bySender {
            let ids = Array(Set(messages.map(\.clientID)))
            for chunk in stride(from: 0, to: ids.count, by: Self.rowsPerInsert) {
                let part = ids[chunk..<min(chunk + Self.rowsPerInsert, ids.count)]
                let marks = Array(repeating: "?", count: part.count).joined(separator: ",")
                let rows = try await writer.query(
                    """
                    SELECT m.id, c.key, m.seq, m.sender, m.client_id, m.ts, m.body FROM messages m
                    JOIN conversations c ON c.id = m.conv_id WHERE m.sender = ? AND m.client_id IN (\(marks))
                    """, [.text(sender)] + part.map { .text($0) })
                for row in rows {
                    let m = Self.storedMessage(row)
                    existing[IdemKey(sender: m.sender, clientID: m.clientID)] = m
                }
            }
        }
        // 2. Assign seqs in batch order, creating conversations on first use.
        var outcomes: [AppendOutcome?] = Array(repeating: nil, count: batch.count)
        var fresh: [(index: Int, convID: Int64, message: StoredMessage)] = []
        var firstInBatch: [IdemKey: Int] = [:]
        for (i, m) in batch.enumerated() {
            let key = IdemKey(sender: m.sender, clientID: m.clientID)
            if let stored = existing[key] {
                outcomes[i] = AppendOutcome(message: stored, duplicate: true)
                continue
            }
            if let earlier = firstInBatch[key] {
                fresh.append((i, -1, StoredMessage(id: Int64(earlier), conversation: m.conversation, seq: 0, sender: m.sender,
                                                   clientID: m.clientID, ts: m.ts, body: m.body)))
                continue
            }
            firstInBatch[key] = i
            let conv = try await conversation(m.conversation)
            let seq = await cache.takeSeq(m.conversation.description)
            fresh.append((i, conv, StoredMessage(id: 0, conversation: m.conversation, seq: seq, sender: m.sender,
                                                 clientID: m.clientID, ts: m.ts, body: m.body)))
        }
        // 3. Insert the new ones, many rows per statement.
        let inserts = fresh.filter { $0.convID >= 0 }
        var ids: [Int: Int64] = [:]
        for chunk in stride(from: 0, to: inserts.count, by: Self.rowsPerInsert) {
            let part = inserts[chunk..<min(chunk + Self.rowsPerInsert, inserts.count)]
            let values = Array(repeating: "(?,?,?,?,?,?)", count: part.count).joined(separator: ",")
            var binds: [SQLiteData] = []
            binds.reserveCapacity(part.count * 6)
            for row in part {
                let m = row.message
                binds += [.integer(Int(row.convID)), .integer(Int(m.seq)), .text(m.sender), .text(m.clientID), .integer(Int(m.ts)), .text(m.body)]
            }
            let rows = try await writer.query(
                "INSERT INTO messages(conv_id, seq, sender, client_id, ts, body) VALUES \(values) RETURNING id, conv_id, seq", binds)
            var byPosition: [SeqKey: Int64] = [:]
            for r in rows {
                byPosition[SeqKey(conv: Int64(r.column("conv_id")?.integer ?? 0), seq: Int64(r.column("seq")?.integer ?? 0))] =
                    Int64(r.column("id")?.integer ?? 0)
            }
            for row in part {
                guard let id = byPosition[SeqKey(conv: row.convID, seq: row.message.seq)] else {
                    throw StorageError.backend("insert returned no id for seq \(row.message.seq)")
                }
                ids[row.index] = id
            }
        }
        for row in fresh {
            if row.convID >= 0 {
                var m = row.message
                m.id = ids[row.index]!
                outcomes[row.index] = AppendOutcome(message: m, duplicate: false)
            } else {
                // A repeat inside this batch: the first occurrence (its index is in `id`) answers.
                let first = outcomes[Int(row.message.id)]!
                outcomes[row.index] = AppendOutcome(message: first.message, duplicate: true)
            }
        }
        // 4. Advance the conversations' next seq.
        for (convID, next) in await cache.dirty() {
            _ = try await writer.query("UPDATE conversations SET next_seq = ? WHERE id = ?", [.integer(Int(next)), .integer(Int(convID))])
        }
        return outcomes.map { $0! }
    }

    /// The id of a conversation, created on first use, with its next seq loaded into the cache.
    private func conversation(_ key: ConversationKey) async throws -> Int64 {
        let name = key.description
        if let id = await cache.id(of: name) { return id }
        var a: SQLiteData = .null
        var b: SQLiteData = .null
        if case .direct(let x, let y) = key {
            a = .text(x)
            b = .text(y)
        }
        _ = try await writer.query(
            "INSERT INTO conversations(key, member_a, member_b, next_seq) VALUES (?, ?, ?, 1) ON CONFLICT(key) DO NOTHING", [.text(name), a, b])
        guard let row = try await writer.query("SELECT id, next_seq FROM conversations WHERE key = ?", [.text(name)]).first,
              let id = row.column("id")?.integer, let next = row.column("next_seq")?.integer
        else { throw StorageError.backend("conversation '\(name)' vanished") }
        await cache.load(name, id: Int64(id), nextSeq: Int64(next))
        return Int64(id)
    }

    private static let messageColumns = "m.id, c.key, m.seq, m.sender, m.client_id, m.ts, m.body"

    private static func storedMessage(_ row: SQLiteRow) -> StoredMessage {
        StoredMessage(id: Int64(row.column("id")?.integer ?? 0),
                      conversation: ConversationKey(storageKey: row.column("key")?.string ?? "") ?? .room(""),
                      seq: Int64(row.column("seq")?.integer ?? 0), sender: row.column("sender")?.string ?? "",
                      clientID: row.column("client_id")?.string ?? "", ts: Int64(row.column("ts")?.integer ?? 0),
                      body: row.column("body")?.string ?? "")
    }

    public func messages(in conversation: ConversationKey, afterSeq: Int64, limit: Int) async throws -> [StoredMessage] {
        try await reader.query(
            """
            SELECT \(Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE c.key = ? AND m.seq > ? ORDER BY m.seq LIMIT ?
            """, [.text(conversation.description), .integer(Int(afterSeq)), .integer(limit)]
        ).map(Self.storedMessage)
    }

    public func lastMessages(in conversation: ConversationKey, count: Int) async throws -> [StoredMessage] {
        try await reader.query(
            """
            SELECT * FROM (SELECT \(Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE c.key = ? ORDER BY m.seq DESC LIMIT ?) ORDER BY seq
            """, [.text(conversation.description), .integer(count)]
        ).map(Self.storedMessage)
    }

    public func directMessages(of user: String, afterID: Int64, limit: Int) async throws -> [StoredMessage] {
        try await reader.query(
            """
            SELECT \(Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE (c.member_a = ? OR c.member_b = ?) AND m.id > ? ORDER BY m.id LIMIT ?
            """, [.text(user), .text(user), .integer(Int(afterID)), .integer(limit)]
        ).map(Self.storedMessage)
    }

    public func lastMessageID() async throws -> Int64 {
        Int64(try await reader.query("SELECT COALESCE(MAX(id), 0) AS id FROM messages").first?.column("id")?.integer ?? 0)
    }
}

private struct IdemKey: Hashable {
    var sender: String
    var clientID: String
}

private struct SeqKey: Hashable {
    var conv: Int64
    var seq: Int64
}

/// Conversation ids and next seqs of the single writer; changes in a transaction are undone on rollback.
private actor ConversationCache {
    private var ids: [String: Int64] = [:]
    private var nextSeq: [String: Int64] = [:]
    private var touched: Set<String> = []

    func id(of key: String) -> Int64? { ids[key] }

    func load(_ key: String, id: Int64, nextSeq next: Int64) {
        ids[key] = id
        nextSeq[key] = next
    }

    func takeSeq(_ key: String) -> Int64 {
        let seq = nextSeq[key]!
        nextSeq[key] = seq + 1
        touched.insert(key)
        return seq
    }

    func dirty() -> [(Int64, Int64)] {
        touched.map { (ids[$0]!, nextSeq[$0]!) }
    }

    func commit() { touched.removeAll() }

    /// Forget everything: the next transaction reloads from the file.
    func rollback() {
        ids.removeAll()
        nextSeq.removeAll()
        touched.removeAll()
    }
}
