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
/// Three connections: one for message appends (the group committer's, on a thread of its own), one for
/// other writes, and one for reads, so that history reads never wait behind a commit.
public final class SQLiteStore: ChatStore {
    private let messages: SQLiteMessageWriter
    private let admin: SQLiteConnection
    private let reader: SQLiteConnection
    /// The threads of the two sqlite-nio connections: the store's own, so that nothing else queued on
    /// NIO's shared pool (or any other) holds up its reads and admin writes.
    private let threads: NIOThreadPool

    private init(messages: SQLiteMessageWriter, admin: SQLiteConnection, reader: SQLiteConnection, threads: NIOThreadPool) {
        self.messages = messages
        self.admin = admin
        self.reader = reader
        self.threads = threads
    }

    /// WAL pages between automatic checkpoints (SQLite's default is 1,000). Busy index pages are
    /// written to the WAL at every commit but copied to the database once per checkpoint, so a longer
    /// interval copies each one less often: a third less write work at 100,000 messages/s, for a WAL
    /// of up to 32 MiB.
    static let walCheckpointPages = 8192

    /// Opens (creating if needed) the store at `path`: the folder 0700, the file 0600, schema migrated.
    public static func open(path: String, logger: Logger = Logger(label: "imctl.sqlite")) async throws -> SQLiteStore {
        try prepareFile(path)
        let threads = NIOThreadPool(numberOfThreads: 2)
        threads.start()
        func connect() async throws -> SQLiteConnection {
            do {
                return try await SQLiteConnection.open(storage: .file(path: path), threadPool: threads, logger: logger,
                                                       on: MultiThreadedEventLoopGroup.singleton.any())
            } catch {
                throw StorageError.cannotOpen("\(path): \(error)")
            }
        }
        // The first connection sets WAL mode and migrates the schema; the others find both done.
        let migrator = try await connect()
        do {
            _ = try await migrator.query("PRAGMA journal_mode=WAL")
            try await configure(migrator)
            try await Migrations.run(on: migrator)
        } catch {
            try? await migrator.close()
            try? await threads.shutdownGracefully()
            if let error = error as? StorageError { throw error }
            throw StorageError.cannotOpen("\(path): \(error)")
        }
        var opened: [SQLiteConnection] = []
        do {
            let admin = try await connect()
            opened.append(admin)
            try await configure(admin)
            let reader = try await connect()
            opened.append(reader)
            try await configure(reader)
            let messages = try await SQLiteMessageWriter.open(path: path, checkpointPages: walCheckpointPages)
            try? await migrator.close()
            return SQLiteStore(messages: messages, admin: admin, reader: reader, threads: threads)
        } catch {
            for c in opened { try? await c.close() }
            try? await migrator.close()
            try? await threads.shutdownGracefully()
            if let error = error as? StorageError { throw error }
            throw StorageError.cannotOpen("\(path): \(error)")
        }
    }

    private static func configure(_ c: SQLiteConnection) async throws {
        // FULL: the WAL is synced at every commit, so an acked message survives power loss, not only kill -9.
        _ = try await c.query("PRAGMA synchronous=FULL")
        _ = try await c.query("PRAGMA foreign_keys=ON")
        // Wait (sleeping) for another process's write lock instead of the driver's spinning retry.
        _ = try await c.query("PRAGMA busy_timeout=10000")
        _ = try await c.query("PRAGMA wal_autocheckpoint=\(walCheckpointPages)")
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
        await messages.close()
        try await reader.close()
        try await admin.close()
        try? await threads.shutdownGracefully()
    }

    // MARK: users

    public func hasUsers() async throws -> Bool {
        try await reader.query("SELECT 1 FROM users WHERE removed_at IS NULL LIMIT 1").isEmpty == false
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
            let removed = try? await admin.query("SELECT 1 FROM users WHERE name = ? AND removed_at IS NOT NULL", [.text(name)])
            throw removed?.isEmpty == false ? StorageError.nameRetired(name) : StorageError.userExists(name)
        }
    }

    private static func userRecord(_ row: SQLiteRow) -> UserRecord {
        UserRecord(id: Int64(row.column("id")?.integer ?? 0), name: row.column("name")?.string ?? "",
                   isAdmin: row.column("is_admin")?.integer == 1, isDisabled: row.column("disabled")?.integer == 1,
                   createdAt: Int64(row.column("created_at")?.integer ?? 0))
    }

    public func user(named name: String) async throws -> UserRecord? {
        try await reader.query("SELECT id, name, is_admin, disabled, created_at FROM users WHERE name = ? AND removed_at IS NULL", [.text(name)])
            .first.map(Self.userRecord)
    }

    public func passwordHash(of name: String) async throws -> String? {
        try await reader.query("SELECT password_hash FROM users WHERE name = ? AND removed_at IS NULL", [.text(name)]).first?.column("password_hash")?.string
    }

    public func listUsers() async throws -> [UserRecord] {
        try await reader.query("SELECT id, name, is_admin, disabled, created_at FROM users WHERE removed_at IS NULL ORDER BY name").map(Self.userRecord)
    }

    private func userID(_ name: String, on c: SQLiteConnection) async throws -> Int64 {
        guard let id = try await c.query("SELECT id FROM users WHERE name = ? AND removed_at IS NULL", [.text(name)]).first?.column("id")?.integer else {
            throw StorageError.noSuchUser(name)
        }
        return Int64(id)
    }

    /// Removes a user: their tokens go, and the row stays as a tombstone, so that the name is never
    /// given to someone new (who would otherwise read the old user's direct messages).
    public func removeUser(named name: String) async throws {
        _ = try await admin.query("BEGIN IMMEDIATE")
        do {
            let rows = try await admin.query(
                "UPDATE users SET removed_at = ?, disabled = 1, password_hash = '!', otp_secret = NULL WHERE name = ? AND removed_at IS NULL RETURNING id",
                [.integer(Int(Timestamp.nowMillis())), .text(name)])
            guard let id = rows.first?.column("id")?.integer else { throw StorageError.noSuchUser(name) }
            _ = try await admin.query("DELETE FROM tokens WHERE user_id = ?", [.integer(id)])
            _ = try await admin.query("COMMIT")
        } catch {
            _ = try? await admin.query("ROLLBACK")
            throw error
        }
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

    public func upgradePasswordHash(of name: String, from old: String, to hash: String) async throws {
        _ = try await admin.query("UPDATE users SET password_hash = ? WHERE name = ? AND password_hash = ? AND removed_at IS NULL",
                                  [.text(hash), .text(name), .text(old)])
    }

    public func setDisabled(_ name: String, _ disabled: Bool) async throws {
        let rows = try await admin.query("UPDATE users SET disabled = ? WHERE name = ? AND removed_at IS NULL RETURNING id",
                                         [.integer(disabled ? 1 : 0), .text(name)])
        guard !rows.isEmpty else { throw StorageError.noSuchUser(name) }
    }

    public func setOTPSecret(of name: String, to secret: String?) async throws {
        let rows = try await admin.query("UPDATE users SET otp_secret = ?, otp_last_step = NULL WHERE name = ? AND removed_at IS NULL RETURNING id",
                                         [secret.map { .text($0) } ?? .null, .text(name)])
        guard !rows.isEmpty else { throw StorageError.noSuchUser(name) }
    }

    public func otpSecret(of name: String) async throws -> String? {
        try await reader.query("SELECT otp_secret FROM users WHERE name = ? AND removed_at IS NULL", [.text(name)]).first?.column("otp_secret")?.string
    }

    public func useOTPStep(of name: String, step: Int64) async throws -> Bool {
        try await !admin.query(
            "UPDATE users SET otp_last_step = ? WHERE name = ? AND removed_at IS NULL AND (otp_last_step IS NULL OR otp_last_step < ?) RETURNING id",
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

    public func securityEpoch() async throws -> Int64 {
        Int64(try await reader.query("SELECT value FROM security_epoch WHERE id = 1").first?.column("value")?.integer ?? 0)
    }

    public func validTokens(among hashes: [[UInt8]], now: Int64) async throws -> Set<[UInt8]> {
        var valid: Set<[UInt8]> = []
        for start in stride(from: 0, to: hashes.count, by: 500) {
            let part = hashes[start..<min(start + 500, hashes.count)]
            let marks = String(repeating: "?,", count: part.count).dropLast()
            let rows = try await reader.query(
                """
                SELECT t.hash FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash IN (\(marks))
                AND (t.expires_at IS NULL OR t.expires_at > ?) AND u.disabled = 0 AND u.removed_at IS NULL
                """, part.map { .blob(ByteBuffer(bytes: $0)) } + [.integer(Int(now))])
            for row in rows {
                if let blob = row.column("hash")?.blob { valid.insert(Array(blob.readableBytesView)) }
            }
        }
        return valid
    }

    public func authenticate(tokenHash: [UInt8], now: Int64) async throws -> UserRecord? {
        let rows = try await reader.query(
            """
            SELECT u.id, u.name, u.is_admin, u.disabled, u.created_at, t.id AS token_id, t.last_used_at FROM tokens t
            JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND (t.expires_at IS NULL OR t.expires_at > ?) AND u.removed_at IS NULL
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

    /// Appends a batch in one transaction (see `SQLiteMessageWriter`).
    public func append(_ batch: [NewMessage]) async throws -> [AppendOutcome] {
        try await messages.append(batch)
    }

    /// Appends a batch; `completion` runs on the writer's thread.
    public func append(_ batch: [NewMessage], completion: @escaping @Sendable (Result<[AppendOutcome], any Error>) -> Void) {
        messages.append(batch, completion: completion)
    }

    /// The body is read as a blob: sqlite-nio reads text with `String(cString:)`, which would end a body
    /// at its first NUL character.
    private static let messageColumns = "m.id, c.key, m.seq, m.sender, m.client_id, m.ts, CAST(m.body AS BLOB) AS body"

    private static func storedMessage(_ row: SQLiteRow) -> StoredMessage {
        StoredMessage(id: Int64(row.column("id")?.integer ?? 0),
                      conversation: ConversationKey(storageKey: row.column("key")?.string ?? "") ?? .room(""),
                      seq: Int64(row.column("seq")?.integer ?? 0), sender: row.column("sender")?.string ?? "",
                      clientID: row.column("client_id")?.string ?? "", ts: Int64(row.column("ts")?.integer ?? 0),
                      body: row.column("body")?.blob.map { String(buffer: $0) } ?? row.column("body")?.string ?? "")
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

    public func conversations(of user: String, limit: Int) async throws -> [ConversationSummary] {
        // The last message of each conversation is one probe of the (conv_id, seq) index.
        try await reader.query(
            """
            SELECT c.key, m.id, m.seq, m.ts FROM conversations c
            JOIN messages m ON m.conv_id = c.id AND m.seq = (SELECT MAX(seq) FROM messages WHERE conv_id = c.id)
            WHERE c.member_a IS NULL OR c.member_a = ? OR c.member_b = ?
            ORDER BY m.id DESC LIMIT ?
            """, [.text(user), .text(user), .integer(limit)]
        ).compactMap { row in
            guard let key = row.column("key")?.string, let conversation = ConversationKey(storageKey: key) else { return nil }
            return ConversationSummary(conversation: conversation, lastID: Int64(row.column("id")?.integer ?? 0),
                                       lastSeq: Int64(row.column("seq")?.integer ?? 0), lastTS: Int64(row.column("ts")?.integer ?? 0))
        }
    }

    public func messages(afterID: Int64, limit: Int) async throws -> [StoredMessage] {
        try await reader.query(
            """
            SELECT \(Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE m.id > ? ORDER BY m.id LIMIT ?
            """, [.integer(Int(afterID)), .integer(limit)]
        ).map(Self.storedMessage)
    }

    public func lastMessageID() async throws -> Int64 {
        Int64(try await reader.query("SELECT COALESCE(MAX(id), 0) AS id FROM messages").first?.column("id")?.integer ?? 0)
    }
}
