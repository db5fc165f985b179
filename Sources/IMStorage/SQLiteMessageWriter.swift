import IMWire
import NIOPosix
import Synchronization
// SQLite's C API, from the amalgamation sqlite-nio bundles (its symbols carry a `sqlite_nio_` prefix).
// Using the same copy of SQLite as sqlite-nio's connections matters: two copies in one process would
// each keep their own POSIX lock table for the same file.
import VaporCSQLite

/// Appends message batches to the SQLite file: SQLite's C API on a thread of its own, one job per
/// batch, with statements prepared once.
///
/// sqlite-nio runs every statement as its own thread-pool job and prepares it anew; at a hundred
/// thousand messages a second that costs more than the inserts. Here a batch is one hop: `BEGIN`,
/// one prepared insert per row, `COMMIT`.
///
/// Ids and seqs are assigned in memory (this is the file's one message writer), row by row as each
/// insert succeeds; a row the unique (sender, client id) index skips is a resend, answered with the
/// stored message, and takes no seq.
final class SQLiteMessageWriter: @unchecked Sendable {
    private let thread: NIOThreadPool
    // Touched only on `thread`.
    private var db: OpaquePointer?
    private var statements: [Statement: OpaquePointer] = [:]
    private var conversations: [ConversationKey: (id: Int64, nextSeq: Int64)] = [:]
    private var nextID: Int64?
    /// WAL pages after the last commit (SQLite's WAL hook reports it).
    private var walPages = 0
    private var checkpointPages = 0
    private var checkpointer: SQLiteCheckpointer?

    private enum Statement: String, CaseIterable {
        case begin = "BEGIN IMMEDIATE"
        case commit = "COMMIT"
        case rollback = "ROLLBACK"
        case insert = """
            INSERT INTO messages(id, conv_id, seq, sender, client_id, ts, body) VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(sender, client_id) DO NOTHING
            """
        case stored = """
            SELECT m.id, c.key, m.seq, m.ts, m.body FROM messages m JOIN conversations c ON c.id = m.conv_id
            WHERE m.sender = ? AND m.client_id = ?
            """
        case createConversation = "INSERT INTO conversations(key, member_a, member_b, next_seq) VALUES (?, ?, ?, 1) ON CONFLICT(key) DO NOTHING"
        case conversation = "SELECT c.id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conv_id = c.id) FROM conversations c WHERE c.key = ?"
        case maxID = "SELECT COALESCE(MAX(id), 0) + 1 FROM messages"
    }

    private init(thread: NIOThreadPool) {
        self.thread = thread
    }

    /// Opens a connection to the (already migrated) file at `path`.
    static func open(path: String, checkpointPages: Int) async throws -> SQLiteMessageWriter {
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        let writer = SQLiteMessageWriter(thread: thread)
        do {
            let checkpointer = try await SQLiteCheckpointer.open(path: path)
            try await thread.runIfActive {
                writer.checkpointer = checkpointer
                try writer.openOnThread(path: path, checkpointPages: checkpointPages)
            }
        } catch {
            try? await thread.runIfActive { writer.closeOnThread() }
            try? await thread.shutdownGracefully()
            throw error
        }
        return writer
    }

    func close() async {
        let checkpointer = try? await thread.runIfActive { () -> SQLiteCheckpointer? in
            self.closeOnThread()
            defer { self.checkpointer = nil }
            return self.checkpointer
        }
        await checkpointer?.close()
        try? await thread.shutdownGracefully()
    }

    /// Appends a batch in one transaction; see the type's description.
    func append(_ batch: [NewMessage]) async throws -> [AppendOutcome] {
        try await thread.runIfActive {
            do {
                return try self.appendOnThread(batch)
            } catch is StaleState {
                // Another process wrote messages to this file: the state was reloaded; once more.
                return try self.appendOnThread(batch)
            }
        }
    }

    /// Appends a batch on the writer's thread and calls `completion` there.
    func append(_ batch: [NewMessage], completion: @escaping @Sendable (Result<[AppendOutcome], any Error>) -> Void) {
        thread.submit { state in
            guard case .active = state else { return completion(.failure(StorageError.backend("the store is closed"))) }
            completion(Result {
                do {
                    return try self.appendOnThread(batch)
                } catch is StaleState {
                    return try self.appendOnThread(batch)
                }
            })
        }
    }

    /// An insert hit a seq or id another writer took.
    private struct StaleState: Error {}

    // MARK: on the writer's thread

    private func openOnThread(path: String, checkpointPages: Int) throws {
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX
        guard sqlite_nio_sqlite3_open_v2(path, &db, flags, nil) == SQLITE_OK else {
            throw StorageError.cannotOpen("\(path): \(message())")
        }
        // FULL: the WAL is synced at every commit, so an acked message survives power loss, not only kill -9.
        try exec("PRAGMA synchronous=FULL")
        // Off for this connection only: it inserts messages into conversations it has just created or
        // read in the same transaction, and the check would cost a lookup per message.
        try exec("PRAGMA foreign_keys=OFF")
        sqlite_nio_sqlite3_busy_timeout(db, 10_000)
        // Checkpoints run on a connection and thread of their own (`SQLiteCheckpointer`), not inside a
        // commit: a checkpoint copies pages and syncs the database file, and a commit that ran one would
        // hold up every ack of its batch. The WAL hook (which replaces automatic checkpoints) reports the
        // WAL's size after each commit.
        self.checkpointPages = checkpointPages
        sqlite_nio_sqlite3_wal_hook(db, { context, _, _, pages in
            Unmanaged<SQLiteMessageWriter>.fromOpaque(context!).takeUnretainedValue().walPages = Int(pages)
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
        for s in Statement.allCases {
            var handle: OpaquePointer?
            guard sqlite_nio_sqlite3_prepare_v3(db, s.rawValue, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil) == SQLITE_OK,
                  let handle
            else { throw StorageError.backend("cannot prepare \(s): \(message())") }
            statements[s] = handle
        }
    }

    private func closeOnThread() {
        for handle in statements.values { sqlite_nio_sqlite3_finalize(handle) }
        statements = [:]
        sqlite_nio_sqlite3_close_v2(db)
        db = nil
    }

    private func message() -> String {
        sqlite_nio_sqlite3_errmsg(db).map { String(cString: $0) } ?? "unknown SQLite error"
    }

    private func exec(_ sql: String) throws {
        guard sqlite_nio_sqlite3_exec(db, sql, nil, nil, nil) == SQLITE_OK else { throw StorageError.backend("\(sql): \(message())") }
    }

    private func run(_ s: Statement) throws {
        let h = statements[s]!
        defer { sqlite_nio_sqlite3_reset(h) }
        let rc = sqlite_nio_sqlite3_step(h)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else { throw StorageError.backend("\(s): \(message())") }
    }

    private func appendOnThread(_ batch: [NewMessage]) throws -> [AppendOutcome] {
        guard !batch.isEmpty else { return [] }
        try run(.begin)
        // The batch's conversations: one hash lookup per message, into `convs`.
        var index: [ConversationKey: Int] = [:]
        var convs: [(key: ConversationKey, id: Int64, nextSeq: Int64)] = []
        do {
            var id = try nextID ?? loadNextID()
            var outcomes: [AppendOutcome] = []
            outcomes.reserveCapacity(batch.count)
            let insert = statements[.insert]!
            for m in batch {
                let c: Int
                if let known = index[m.conversation] {
                    c = known
                } else {
                    let loaded = try conversations[m.conversation] ?? loadConversation(m.conversation)
                    c = convs.count
                    convs.append((m.conversation, loaded.id, loaded.nextSeq))
                    index[m.conversation] = c
                }
                let conv = convs[c]
                sqlite_nio_sqlite3_bind_int64(insert, 1, id)
                sqlite_nio_sqlite3_bind_int64(insert, 2, conv.id)
                sqlite_nio_sqlite3_bind_int64(insert, 3, conv.nextSeq)
                sqlite_nio_sqlite3_bind_int64(insert, 6, m.ts)
                var sender = m.sender, clientID = m.clientID, body = m.body
                let rc = sender.withUTF8 { s in
                    clientID.withUTF8 { c in
                        body.withUTF8 { b in
                            // SQLite reads the text in place during the step (a nil destructor: SQLITE_STATIC).
                            Self.bind(insert, 4, s)
                            Self.bind(insert, 5, c)
                            Self.bind(insert, 7, b)
                            return sqlite_nio_sqlite3_step(insert)
                        }
                    }
                }
                sqlite_nio_sqlite3_reset(insert)
                guard rc == SQLITE_DONE else {
                    if rc & 0xFF == SQLITE_CONSTRAINT { throw StaleState() }
                    throw StorageError.backend("insert: \(message())")
                }
                if sqlite_nio_sqlite3_changes(db) == 1 {
                    outcomes.append(AppendOutcome(message: StoredMessage(id: id, conversation: m.conversation, seq: conv.nextSeq, sender: m.sender,
                                                                         clientID: m.clientID, ts: m.ts, body: m.body), duplicate: false))
                    id += 1
                    convs[c].nextSeq += 1
                } else {
                    // Skipped by the idempotency index: a resend (of an earlier batch, or of this one).
                    outcomes.append(AppendOutcome(message: try stored(sender: m.sender, clientID: m.clientID), duplicate: true))
                }
            }
            try run(.commit)
            nextID = id
            for conv in convs { conversations[conv.key] = (conv.id, conv.nextSeq) }
            checkpointIfDue()
            return outcomes
        } catch {
            try? run(.rollback)
            conversations = [:]
            nextID = nil
            throw error
        }
    }

    private static func bind(_ statement: OpaquePointer, _ i: Int32, _ text: UnsafeBufferPointer<UInt8>) {
        // An empty string still needs a non-nil pointer, or SQLite stores NULL.
        let p = text.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(bitPattern: 1)!
        sqlite_nio_sqlite3_bind_text64(statement, i, p.assumingMemoryBound(to: CChar.self), UInt64(text.count), nil, UInt8(SQLITE_UTF8))
    }

    /// Asks for a checkpoint once the WAL is over its size; if the checkpointer cannot keep up (a
    /// checkpoint cannot finish while commits keep adding to the WAL), the writer restarts the WAL itself.
    private func checkpointIfDue() {
        guard walPages >= checkpointPages else { return }
        if walPages >= checkpointPages * 4 {
            var log: Int32 = 0
            var done: Int32 = 0
            sqlite_nio_sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_RESTART, &log, &done)
            walPages = 0
        } else {
            checkpointer?.request()
        }
    }

    /// Binds text parameters for the length of `body` (SQLite reads them in place; nothing is copied).
    private static func withText<R>(_ statement: OpaquePointer, _ texts: [(Int32, String)], _ body: () -> R) -> R {
        func bind(_ i: Int) -> R {
            guard i < texts.count else { return body() }
            var text = texts[i].1
            return text.withUTF8 { u in
                Self.bind(statement, texts[i].0, u)
                return bind(i + 1)
            }
        }
        return bind(0)
    }

    private func loadNextID() throws -> Int64 {
        let h = statements[.maxID]!
        defer { sqlite_nio_sqlite3_reset(h) }
        guard sqlite_nio_sqlite3_step(h) == SQLITE_ROW else { throw StorageError.backend("max id: \(message())") }
        return sqlite_nio_sqlite3_column_int64(h, 0)
    }

    /// The id and next seq of a conversation, created on first use.
    private func loadConversation(_ key: ConversationKey) throws -> (id: Int64, nextSeq: Int64) {
        var a: String?
        var b: String?
        if case .direct(let x, let y) = key {
            a = x
            b = y
        }
        let create = statements[.createConversation]!
        let rc = Self.withText(create, [(1, key.description)] + [a.map { (2, $0) }, b.map { (3, $0) }].compactMap { $0 }) {
            if a == nil {
                sqlite_nio_sqlite3_bind_null(create, 2)
                sqlite_nio_sqlite3_bind_null(create, 3)
            }
            return sqlite_nio_sqlite3_step(create)
        }
        sqlite_nio_sqlite3_reset(create)
        guard rc == SQLITE_DONE else { throw StorageError.backend("conversation: \(message())") }
        let find = statements[.conversation]!
        defer { sqlite_nio_sqlite3_reset(find) }
        let found = Self.withText(find, [(1, key.description)]) { sqlite_nio_sqlite3_step(find) }
        guard found == SQLITE_ROW else { throw StorageError.backend("conversation '\(key)' vanished") }
        return (sqlite_nio_sqlite3_column_int64(find, 0), sqlite_nio_sqlite3_column_int64(find, 1))
    }

    /// The message stored earlier under (sender, client id).
    private func stored(sender: String, clientID: String) throws -> StoredMessage {
        let h = statements[.stored]!
        defer { sqlite_nio_sqlite3_reset(h) }
        let rc = Self.withText(h, [(1, sender), (2, clientID)]) { sqlite_nio_sqlite3_step(h) }
        guard rc == SQLITE_ROW else { throw StorageError.backend("resend of '\(clientID)' found no stored message: \(message())") }
        func text(_ column: Int32) -> String {
            guard let p = sqlite_nio_sqlite3_column_text(h, column) else { return "" }
            // Bodies may hold NUL characters: take the length SQLite reports.
            return String(decoding: UnsafeRawBufferPointer(start: p, count: Int(sqlite_nio_sqlite3_column_bytes(h, column))), as: UTF8.self)
        }
        return StoredMessage(id: sqlite_nio_sqlite3_column_int64(h, 0), conversation: ConversationKey(storageKey: text(1)) ?? .room(""),
                             seq: sqlite_nio_sqlite3_column_int64(h, 2), sender: sender, clientID: clientID,
                             ts: sqlite_nio_sqlite3_column_int64(h, 3), body: text(4))
    }
}

/// Runs passive WAL checkpoints for the message writer, on a connection and thread of its own.
final class SQLiteCheckpointer: @unchecked Sendable {
    private let thread: NIOThreadPool
    // Touched only on `thread`.
    private var db: OpaquePointer?
    private let pending = Mutex(false)

    private init(thread: NIOThreadPool) {
        self.thread = thread
    }

    static func open(path: String) async throws -> SQLiteCheckpointer {
        let thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
        let c = SQLiteCheckpointer(thread: thread)
        do {
            try await thread.runIfActive {
                guard sqlite_nio_sqlite3_open_v2(path, &c.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nil) == SQLITE_OK else {
                    throw StorageError.cannotOpen("\(path): checkpoint connection")
                }
                sqlite_nio_sqlite3_busy_timeout(c.db, 10_000)
                // The checkpoint syncs the database file before it lets the WAL be reused.
                _ = sqlite_nio_sqlite3_exec(c.db, "PRAGMA synchronous=FULL", nil, nil, nil)
            }
        } catch {
            try? await thread.shutdownGracefully()
            throw error
        }
        return c
    }

    /// Runs a passive checkpoint soon, unless one is already waiting.
    func request() {
        let first = pending.withLock { p -> Bool in
            defer { p = true }
            return !p
        }
        guard first else { return }
        thread.submit { [self] state in
            pending.withLock { $0 = false }
            guard case .active = state, let db else { return }
            var log: Int32 = 0
            var done: Int32 = 0
            sqlite_nio_sqlite3_wal_checkpoint_v2(db, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &done)
        }
    }

    func close() async {
        try? await thread.runIfActive { [self] in
            sqlite_nio_sqlite3_close_v2(db)
            db = nil
        }
        try? await thread.shutdownGracefully()
    }
}
