import Foundation
public import IMWire
public import Logging
import NIOCore
import PostgresNIO

/// The store on PostgreSQL (`postgres://user:password@host:port/database`), for several `serve` nodes
/// sharing one service. Everything a node needs to agree on lives in the database:
///
/// - `seq` is gap-free per conversation because it comes from the conversation's counter, moved with
///   `UPDATE … RETURNING` inside the transaction that inserts the messages.
/// - Message ids are taken and committed in one order across nodes: every append transaction first
///   takes one transaction-level advisory lock, so no id becomes visible before a smaller one. A
///   reader resuming "after id N" (`@*`, and a node catching up) therefore never skips a message that
///   commits late. Group commit on each node keeps that lock to one transaction per batch.
/// - A resend is caught by the unique (sender, client id) key, whichever node it arrives on.
public final class PostgresStore: SharedChatStore {
    private let client: PostgresClient
    private let runner: Task<Void, Never>
    private let logger: Logger

    /// The advisory lock every append transaction holds until it commits (an arbitrary, fixed key).
    static let appendLock: Int64 = 0x696d_6374_6c00

    private init(client: PostgresClient, runner: Task<Void, Never>, logger: Logger) {
        self.client = client
        self.runner = runner
        self.logger = logger
    }

    /// Whether `database` names a PostgreSQL store rather than a SQLite file.
    public static func isURL(_ database: String) -> Bool {
        database.hasPrefix("postgres://") || database.hasPrefix("postgresql://")
    }

    /// Connects and migrates. `url`: `postgres://user[:password]@host[:port]/database[?sslmode=disable|prefer|require]`.
    public static func open(url: String, logger: Logger = Logger(label: "imctl.store"), maxConnections: Int = 8) async throws -> PostgresStore {
        let configuration = try configuration(from: url, maxConnections: maxConnections)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        // The pool must be running before the first query (else PostgresNIO warns that it is not yet):
        // wait until the runner is about to start it, then let it.
        let (started, start) = AsyncStream.makeStream(of: Void.self)
        let runner = Task {
            start.finish()
            await client.run()
        }
        for await _ in started {}
        try? await Task.sleep(for: .milliseconds(1))
        let store = PostgresStore(client: client, runner: runner, logger: logger)
        do {
            try await store.migrate()
        } catch {
            runner.cancel()
            throw StorageError.cannotOpen("\(redacted(url)): \(describe(error))")
        }
        return store
    }

    /// The URL without its password, for messages.
    public static func redacted(_ url: String) -> String {
        guard var parts = URLComponents(string: url), parts.password != nil else { return url }
        parts.password = "…"
        return parts.string ?? url
    }

    static func configuration(from url: String, maxConnections: Int) throws -> PostgresClient.Configuration {
        guard let parts = URLComponents(string: url), let scheme = parts.scheme, scheme == "postgres" || scheme == "postgresql",
              let host = parts.host, !host.isEmpty
        else { throw StorageError.cannotOpen("\(redacted(url)): expected postgres://user:password@host:port/database") }
        let database = String(parts.path.drop(while: { $0 == "/" }))
        let mode = parts.queryItems?.first(where: { $0.name == "sslmode" })?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
        default: throw StorageError.cannotOpen("\(redacted(url)): sslmode must be disable, prefer or require")
        }
        var configuration = PostgresClient.Configuration(
            host: host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host, port: parts.port ?? 5432,
            username: parts.user?.removingPercentEncoding ?? "postgres", password: parts.password?.removingPercentEncoding,
            database: database.isEmpty ? nil : database.removingPercentEncoding, tls: tls)
        configuration.options.maximumConnections = maxConnections
        configuration.options.connectTimeout = .seconds(10)
        return configuration
    }

    /// SQLSTATE and the server's text (a PSQLError's description is generic).
    static func describe(_ error: any Error) -> String {
        if let e = error as? PSQLError, let message = e.serverInfo?[.message] {
            return "\(e.serverInfo?[.sqlState] ?? "?"): \(message)"
        }
        if let e = error as? StorageError { return e.description }
        return String(reflecting: error)
    }

    static func isUniqueViolation(_ error: any Error) -> Bool {
        (error as? PSQLError)?.serverInfo?[.sqlState] == "23505"
    }

    public func close() async throws {
        runner.cancel()
        _ = await runner.value
    }

    /// Runs `body`, turning driver errors into `StorageError.backend` (ours pass through).
    private func run<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as StorageError {
            throw error
        } catch let error as PostgresTransactionError {
            // A refusal of ours inside a transaction (it was rolled back) stays itself.
            if let ours = error.closureError as? StorageError, error.rollbackError == nil { throw ours }
            throw StorageError.backend(Self.describe(error.closureError ?? error.commitError ?? error.beginError ?? error))
        } catch {
            throw StorageError.backend(Self.describe(error))
        }
    }

    // MARK: schema

    static let migrations: [(version: Int, statements: [String])] = [
        (1, [
            """
            CREATE TABLE users(id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
              is_admin BOOLEAN NOT NULL DEFAULT false, disabled BOOLEAN NOT NULL DEFAULT false, created_at BIGINT NOT NULL,
              otp_secret TEXT, otp_last_step BIGINT, removed_at BIGINT)
            """,
            """
            CREATE TABLE tokens(id BIGSERIAL PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
              hash BYTEA NOT NULL UNIQUE, label TEXT, created_at BIGINT NOT NULL, expires_at BIGINT, last_used_at BIGINT)
            """,
            "CREATE INDEX tokens_user ON tokens(user_id)",
            """
            CREATE TABLE conversations(id BIGSERIAL PRIMARY KEY, key TEXT NOT NULL UNIQUE, member_a TEXT, member_b TEXT,
              last_seq BIGINT NOT NULL DEFAULT 0)
            """,
            "CREATE INDEX conversations_a ON conversations(member_a)",
            "CREATE INDEX conversations_b ON conversations(member_b)",
            // Bodies are bytes: PostgreSQL's text cannot hold NUL, which a message may.
            """
            CREATE TABLE messages(id BIGSERIAL PRIMARY KEY, conv_id BIGINT NOT NULL REFERENCES conversations(id),
              seq BIGINT NOT NULL, sender TEXT NOT NULL, client_id TEXT NOT NULL, ts BIGINT NOT NULL, body BYTEA NOT NULL,
              UNIQUE(conv_id, seq), UNIQUE(sender, client_id))
            """,
            "CREATE TABLE security_epoch(id INT PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL)",
            "INSERT INTO security_epoch(id, value) VALUES (1, 0)",
            """
            CREATE FUNCTION imctl_bump_security_epoch() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN UPDATE security_epoch SET value = value + 1 WHERE id = 1; RETURN NULL; END $$
            """,
            """
            CREATE TRIGGER security_tokens_deleted AFTER DELETE ON tokens FOR EACH ROW
            EXECUTE FUNCTION imctl_bump_security_epoch()
            """,
            """
            CREATE TRIGGER security_users_changed AFTER UPDATE OF password_hash, disabled, removed_at ON users FOR EACH ROW
            EXECUTE FUNCTION imctl_bump_security_epoch()
            """,
            """
            CREATE TRIGGER security_users_deleted AFTER DELETE ON users FOR EACH ROW
            EXECUTE FUNCTION imctl_bump_security_epoch()
            """,
        ]),
    ]

    /// Runs the migrations not yet applied, each in its own transaction, one node at a time.
    private func migrate() async throws {
        try await client.withTransaction(logger: logger) { c in
            // Nodes starting together migrate one after the other.
            try await c.query("SELECT pg_advisory_xact_lock(\(Self.appendLock + 1))", logger: logger)
            try await c.query("CREATE TABLE IF NOT EXISTS imctl_schema(version INT NOT NULL)", logger: logger)
            var current = 0
            for try await v in try await c.query("SELECT COALESCE(MAX(version), 0) FROM imctl_schema", logger: logger).decode(Int.self) {
                current = v
            }
            let newest = Self.migrations.last?.version ?? 0
            if current > newest { throw StorageError.schemaTooNew(current) }
            for step in Self.migrations where step.version > current {
                for statement in step.statements {
                    try await c.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await c.query("INSERT INTO imctl_schema(version) VALUES (\(step.version))", logger: logger)
            }
        }
    }

    // MARK: users

    private static let userColumns = "id, name, is_admin, disabled, created_at"
    private typealias UserRow = (Int64, String, Bool, Bool, Int64)

    private static func user(_ row: UserRow) -> UserRecord {
        UserRecord(id: row.0, name: row.1, isAdmin: row.2, isDisabled: row.3, createdAt: row.4)
    }

    private func users(_ query: PostgresQuery) async throws -> [UserRecord] {
        try await run {
            var found: [UserRecord] = []
            for try await row in try await client.query(query, logger: logger).decode(UserRow.self) { found.append(Self.user(row)) }
            return found
        }
    }

    /// The first column of the first row, if any.
    private func value<T: PostgresDecodable>(_ query: PostgresQuery, as type: T.Type = T.self, on c: PostgresConnection? = nil) async throws -> T? {
        try await run {
            let rows: PostgresRowSequence
            if let c { rows = try await c.query(query, logger: logger) } else { rows = try await client.query(query, logger: logger) }
            for try await v in rows.decode(T.self) { return v }
            return nil
        }
    }

    public func hasUsers() async throws -> Bool {
        try await value("SELECT 1 FROM users WHERE removed_at IS NULL LIMIT 1", as: Int.self) != nil
    }

    public func createUser(name: String, passwordHash: String, isAdmin: Bool) async throws -> UserRecord {
        guard Names.isValidUser(name) else { throw StorageError.invalidName(name) }
        let now = Timestamp.nowMillis()
        do {
            let id = try await client.query(
                "INSERT INTO users(name, password_hash, is_admin, created_at) VALUES (\(name), \(passwordHash), \(isAdmin), \(now)) RETURNING id",
                logger: logger)
            for try await id in id.decode(Int64.self) {
                return UserRecord(id: id, name: name, isAdmin: isAdmin, isDisabled: false, createdAt: now)
            }
            throw StorageError.backend("no id for the new user")
        } catch let error where Self.isUniqueViolation(error) {
            let removed = try await value("SELECT 1 FROM users WHERE name = \(name) AND removed_at IS NOT NULL", as: Int.self) != nil
            throw removed ? StorageError.nameRetired(name) : StorageError.userExists(name)
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError.backend(Self.describe(error))
        }
    }

    public func user(named name: String) async throws -> UserRecord? {
        try await users("SELECT id, name, is_admin, disabled, created_at FROM users WHERE name = \(name) AND removed_at IS NULL").first
    }

    public func passwordHash(of name: String) async throws -> String? {
        try await value("SELECT password_hash FROM users WHERE name = \(name) AND removed_at IS NULL")
    }

    public func listUsers() async throws -> [UserRecord] {
        try await users("SELECT id, name, is_admin, disabled, created_at FROM users WHERE removed_at IS NULL ORDER BY name")
    }

    /// Runs `body` in a transaction, mapping errors.
    private func transaction<T: Sendable>(_ body: @escaping (PostgresConnection) async throws -> T) async throws -> T {
        try await run { try await client.withTransaction(logger: logger) { c in try await body(c) } }
    }

    private func userID(_ name: String, on c: PostgresConnection) async throws -> Int64 {
        guard let id = try await value("SELECT id FROM users WHERE name = \(name) AND removed_at IS NULL", as: Int64.self, on: c) else {
            throw StorageError.noSuchUser(name)
        }
        return id
    }

    /// Removes a user: their tokens go, and the row stays as a tombstone, so that the name is never
    /// given to someone new (who would otherwise read the old user's direct messages).
    public func removeUser(named name: String) async throws {
        let now = Timestamp.nowMillis()
        try await transaction { c in
            let id = try await self.value(
                """
                UPDATE users SET removed_at = \(now), disabled = true, password_hash = '!', otp_secret = NULL
                WHERE name = \(name) AND removed_at IS NULL RETURNING id
                """, as: Int64.self, on: c)
            guard let id else { throw StorageError.noSuchUser(name) }
            try await c.query("DELETE FROM tokens WHERE user_id = \(id)", logger: self.logger)
        }
    }

    public func setPasswordHash(of name: String, to hash: String) async throws {
        try await transaction { c in
            let id = try await self.userID(name, on: c)
            try await c.query("UPDATE users SET password_hash = \(hash) WHERE id = \(id)", logger: self.logger)
            try await c.query("DELETE FROM tokens WHERE user_id = \(id)", logger: self.logger)
        }
    }

    public func upgradePasswordHash(of name: String, from old: String, to hash: String) async throws {
        try await run {
            try await client.query("UPDATE users SET password_hash = \(hash) WHERE name = \(name) AND password_hash = \(old) AND removed_at IS NULL",
                                   logger: logger)
        }
    }

    public func setDisabled(_ name: String, _ disabled: Bool) async throws {
        let id = try await value("UPDATE users SET disabled = \(disabled) WHERE name = \(name) AND removed_at IS NULL RETURNING id", as: Int64.self)
        if id == nil { throw StorageError.noSuchUser(name) }
    }

    public func setOTPSecret(of name: String, to secret: String?) async throws {
        let id = try await value(
            "UPDATE users SET otp_secret = \(secret), otp_last_step = NULL WHERE name = \(name) AND removed_at IS NULL RETURNING id", as: Int64.self)
        if id == nil { throw StorageError.noSuchUser(name) }
    }

    public func otpSecret(of name: String) async throws -> String? {
        try await run {
            for try await secret in try await client.query("SELECT otp_secret FROM users WHERE name = \(name) AND removed_at IS NULL",
                                                           logger: logger).decode(String?.self) {
                return secret
            }
            return nil
        }
    }

    public func useOTPStep(of name: String, step: Int64) async throws -> Bool {
        try await value(
            """
            UPDATE users SET otp_last_step = \(step) WHERE name = \(name) AND removed_at IS NULL
            AND (otp_last_step IS NULL OR otp_last_step < \(step)) RETURNING id
            """, as: Int64.self) != nil
    }

    // MARK: tokens

    public func createToken(user: String, tokenHash: [UInt8], label: String?, expiresAt: Int64?) async throws -> TokenRecord {
        let now = Timestamp.nowMillis()
        return try await transaction { c in
            let uid = try await self.userID(user, on: c)
            let id = try await self.value(
                """
                INSERT INTO tokens(user_id, hash, label, created_at, expires_at)
                VALUES (\(uid), \(ByteBuffer(bytes: tokenHash)), \(label), \(now), \(expiresAt)) RETURNING id
                """, as: Int64.self, on: c)
            guard let id else { throw StorageError.backend("no id for the new token") }
            return TokenRecord(id: id, user: user, label: label, createdAt: now, expiresAt: expiresAt, lastUsedAt: nil)
        }
    }

    public func tokens(of user: String) async throws -> [TokenRecord] {
        try await transaction { c in
            let uid = try await self.userID(user, on: c)
            var found: [TokenRecord] = []
            let rows = try await c.query("SELECT id, label, created_at, expires_at, last_used_at FROM tokens WHERE user_id = \(uid) ORDER BY id",
                                         logger: self.logger)
            for try await (id, label, created, expires, used) in rows.decode((Int64, String?, Int64, Int64?, Int64?).self) {
                found.append(TokenRecord(id: id, user: user, label: label, createdAt: created, expiresAt: expires, lastUsedAt: used))
            }
            return found
        }
    }

    public func revokeToken(user: String, id: Int64) async throws {
        try await transaction { c in
            let uid = try await self.userID(user, on: c)
            let deleted = try await self.value("DELETE FROM tokens WHERE id = \(id) AND user_id = \(uid) RETURNING id", as: Int64.self, on: c)
            if deleted == nil { throw StorageError.noSuchToken(String(id)) }
        }
    }

    public func revokeAllTokens(user: String) async throws -> Int {
        try await transaction { c in
            let uid = try await self.userID(user, on: c)
            var count = 0
            for try await _ in try await c.query("DELETE FROM tokens WHERE user_id = \(uid) RETURNING id", logger: self.logger).decode(Int64.self) {
                count += 1
            }
            return count
        }
    }

    public func revokeToken(hash: [UInt8]) async throws -> Bool {
        try await value("DELETE FROM tokens WHERE hash = \(ByteBuffer(bytes: hash)) RETURNING id", as: Int64.self) != nil
    }

    public func securityEpoch() async throws -> Int64 {
        try await value("SELECT value FROM security_epoch WHERE id = 1") ?? 0
    }

    public func validTokens(among hashes: [[UInt8]], now: Int64) async throws -> Set<[UInt8]> {
        guard !hashes.isEmpty else { return [] }
        let wanted = hashes.map { ByteBuffer(bytes: $0) }
        return try await run {
            var valid: Set<[UInt8]> = []
            let rows = try await client.query(
                """
                SELECT t.hash FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ANY(\(wanted))
                AND (t.expires_at IS NULL OR t.expires_at > \(now)) AND NOT u.disabled AND u.removed_at IS NULL
                """, logger: logger)
            for try await hash in rows.decode(ByteBuffer.self) { valid.insert(Array(hash.readableBytesView)) }
            return valid
        }
    }

    public func authenticate(tokenHash: [UInt8], now: Int64) async throws -> UserRecord? {
        try await run {
            let rows = try await client.query(
                """
                SELECT u.id, u.name, u.is_admin, u.disabled, u.created_at, t.id, t.last_used_at FROM tokens t
                JOIN users u ON u.id = t.user_id WHERE t.hash = \(ByteBuffer(bytes: tokenHash))
                AND (t.expires_at IS NULL OR t.expires_at > \(now)) AND u.removed_at IS NULL
                """, logger: logger)
            for try await (id, name, admin, disabled, created, tokenID, used) in rows.decode((Int64, String, Bool, Bool, Int64, Int64, Int64?).self) {
                guard !disabled else { return nil }
                // Record use at most once a minute per token so that reconnect storms do not turn into writes.
                if now - (used ?? 0) > 60_000 {
                    _ = try? await client.query("UPDATE tokens SET last_used_at = \(now) WHERE id = \(tokenID)", logger: logger)
                }
                return UserRecord(id: id, name: name, isAdmin: admin, isDisabled: false, createdAt: created)
            }
            return nil
        }
    }

    // MARK: messages

    private typealias MessageRow = (Int64, String, Int64, String, String, Int64, ByteBuffer)
    private static let messageColumns = "m.id, c.key, m.seq, m.sender, m.client_id, m.ts, m.body"

    private static func message(_ row: MessageRow) -> StoredMessage {
        StoredMessage(id: row.0, conversation: ConversationKey(storageKey: row.1) ?? .room(row.1), seq: row.2, sender: row.3,
                      clientID: row.4, ts: row.5, body: String(buffer: row.6))
    }

    private func messages(_ query: PostgresQuery, on c: PostgresConnection? = nil) async throws -> [StoredMessage] {
        try await run {
            let rows: PostgresRowSequence
            if let c { rows = try await c.query(query, logger: logger) } else { rows = try await client.query(query, logger: logger) }
            var found: [StoredMessage] = []
            for try await row in rows.decode(MessageRow.self) { found.append(Self.message(row)) }
            return found
        }
    }

    /// Appends a batch in one transaction: resends found by their (sender, client id), the rest given
    /// ids and seqs in batch order, under the append lock (see the type's documentation).
    public func append(_ batch: [NewMessage]) async throws -> [AppendOutcome] {
        guard !batch.isEmpty else { return [] }
        return try await transaction { c in
            try await c.query("SELECT pg_advisory_xact_lock(\(Self.appendLock))", logger: self.logger)
            // Already stored: the first copy answers.
            var stored: [SentKey: StoredMessage] = [:]
            let known = try await self.messages(
                """
                SELECT \(unescaped: Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
                JOIN unnest(\(batch.map(\.sender)), \(batch.map(\.clientID))) AS k(sender, client_id)
                  ON m.sender = k.sender AND m.client_id = k.client_id
                """, on: c)
            for m in known { stored[SentKey(sender: m.sender, clientID: m.clientID)] = m }
            let storedBefore = Set(stored.keys)
            // The new ones, in order, without repeats inside the batch.
            var fresh: [NewMessage] = []
            var seen = Set<SentKey>()
            for m in batch {
                let key = SentKey(sender: m.sender, clientID: m.clientID)
                if stored[key] == nil, seen.insert(key).inserted { fresh.append(m) }
            }
            if !fresh.isEmpty {
                for m in try await self.insert(fresh, on: c) { stored[SentKey(sender: m.sender, clientID: m.clientID)] = m }
                // Delivered when the transaction commits, to every server listening (this one too).
                try await c.query("NOTIFY \(unescaped: Self.channel)", logger: self.logger)
            }
            var firstSeen = Set<SentKey>()
            return batch.map { m in
                let key = SentKey(sender: m.sender, clientID: m.clientID)
                let isFirst = firstSeen.insert(key).inserted
                let message = stored[key]!
                // New only for the copy that was inserted: the first in the batch, if not stored before.
                let duplicate = !isFirst || storedBefore.contains(key)
                return AppendOutcome(message: message, duplicate: duplicate)
            }
        }
    }

    private struct SentKey: Hashable {
        var sender: String
        var clientID: String
    }

    /// Inserts messages that are new: conversations made as needed, their counters moved by how many
    /// each gets, seqs handed out in batch order.
    private func insert(_ fresh: [NewMessage], on c: PostgresConnection) async throws -> [StoredMessage] {
        var counts: [String: Int64] = [:]
        var order: [String] = []
        var members: [String: (String, String)] = [:]
        for m in fresh {
            let key = m.conversation.description
            if counts[key] == nil {
                order.append(key)
                if case .direct(let a, let b) = m.conversation { members[key] = (a, b) } else { members[key] = ("", "") }
            }
            counts[key, default: 0] += 1
        }
        try await c.query(
            """
            INSERT INTO conversations(key, member_a, member_b)
            SELECT key, NULLIF(a, ''), NULLIF(b, '')
            FROM unnest(\(order), \(order.map { members[$0]!.0 }), \(order.map { members[$0]!.1 })) AS n(key, a, b)
            ON CONFLICT (key) DO NOTHING
            """, logger: logger)
        var next: [String: (id: Int64, seq: Int64)] = [:]
        let moved = try await c.query(
            """
            UPDATE conversations SET last_seq = last_seq + n.count FROM unnest(\(order), \(order.map { counts[$0]! })) AS n(key, count)
            WHERE conversations.key = n.key RETURNING conversations.key, conversations.id, conversations.last_seq - n.count
            """, logger: logger)
        for try await (key, id, before) in moved.decode((String, Int64, Int64).self) { next[key] = (id, before + 1) }
        var convIDs: [Int64] = [], seqs: [Int64] = [], bodies: [ByteBuffer] = []
        for m in fresh {
            let key = m.conversation.description
            guard let n = next[key] else { throw StorageError.backend("conversation \(key) was not found after its insert") }
            convIDs.append(n.id)
            seqs.append(n.seq)
            next[key] = (n.id, n.seq + 1)
            bodies.append(ByteBuffer(string: m.body))
        }
        // Ids in batch order: one row at a time from the arrays, in their order.
        let rows = try await c.query(
            """
            INSERT INTO messages(conv_id, seq, sender, client_id, ts, body)
            SELECT conv_id, seq, sender, client_id, ts, body
            FROM unnest(\(convIDs), \(seqs), \(fresh.map(\.sender)), \(fresh.map(\.clientID)), \(fresh.map(\.ts)), \(bodies))
              WITH ORDINALITY AS r(conv_id, seq, sender, client_id, ts, body, n)
            ORDER BY n RETURNING id, seq, conv_id
            """, logger: logger)
        var ids: [Int64: [Int64: Int64]] = [:]   // conv id → seq → message id
        for try await (id, seq, conv) in rows.decode((Int64, Int64, Int64).self) { ids[conv, default: [:]][seq] = id }
        return try fresh.enumerated().map { i, m in
            guard let id = ids[convIDs[i]]?[seqs[i]] else { throw StorageError.backend("no id for an inserted message") }
            return StoredMessage(id: id, conversation: m.conversation, seq: seqs[i], sender: m.sender, clientID: m.clientID, ts: m.ts, body: m.body)
        }
    }

    public func messages(in conversation: ConversationKey, afterSeq: Int64, limit: Int) async throws -> [StoredMessage] {
        try await messages(
            """
            SELECT \(unescaped: Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE c.key = \(conversation.description) AND m.seq > \(afterSeq) ORDER BY m.seq LIMIT \(limit)
            """)
    }

    public func lastMessages(in conversation: ConversationKey, count: Int) async throws -> [StoredMessage] {
        try await messages(
            """
            SELECT * FROM (SELECT \(unescaped: Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE c.key = \(conversation.description) ORDER BY m.seq DESC LIMIT \(count)) AS last ORDER BY seq
            """)
    }

    public func directMessages(of user: String, afterID: Int64, limit: Int) async throws -> [StoredMessage] {
        try await messages(
            """
            SELECT \(unescaped: Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE (c.member_a = \(user) OR c.member_b = \(user)) AND m.id > \(afterID) ORDER BY m.id LIMIT \(limit)
            """)
    }

    public func messages(afterID: Int64, limit: Int) async throws -> [StoredMessage] {
        try await messages(
            """
            SELECT \(unescaped: Self.messageColumns) FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE m.id > \(afterID) ORDER BY m.id LIMIT \(limit)
            """)
    }

    /// The channel each append transaction notifies when it commits messages.
    static let channel = "imctl_messages"

    public func watch(_ onChange: @escaping @Sendable () -> Void) -> Task<Void, Never> {
        let logger = self.logger
        return Task { [client] in
            while !Task.isCancelled {
                do {
                    try await client.withConnection { c in
                        try await c.listen(on: Self.channel) { notifications in
                            // Listening now: whatever was committed before is read by this first call.
                            onChange()
                            for try await _ in notifications { onChange() }
                        }
                    }
                } catch is CancellationError {
                    return
                } catch {
                    if Task.isCancelled { return }
                    logger.warning("lost the PostgreSQL notifications (\(Self.describe(error))); listening again in 1 s")
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
    }

    public func lastMessageID() async throws -> Int64 {
        try await value("SELECT COALESCE(MAX(id), 0)::BIGINT FROM messages") ?? 0
    }

    public func conversations(of user: String, limit: Int) async throws -> [ConversationSummary] {
        try await run {
            let rows = try await client.query(
                """
                SELECT c.key, m.id, m.seq, m.ts FROM conversations c JOIN messages m ON m.conv_id = c.id AND m.seq = c.last_seq
                WHERE c.member_a IS NULL OR c.member_a = \(user) OR c.member_b = \(user)
                ORDER BY m.id DESC LIMIT \(limit)
                """, logger: logger)
            var found: [ConversationSummary] = []
            for try await (key, id, seq, ts) in rows.decode((String, Int64, Int64, Int64).self) {
                guard let conversation = ConversationKey(storageKey: key) else { continue }
                found.append(ConversationSummary(conversation: conversation, lastID: id, lastSeq: seq, lastTS: ts))
            }
            return found
        }
    }
}
