import SQLiteNIO

/// Versioned schema migrations; each runs once, in order, in its own transaction.
enum Migrations {
    static let steps: [(version: Int, statements: [String])] = [
        (1, [
            """
            CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
              is_admin INTEGER NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
              otp_secret TEXT)
            """,
            """
            CREATE TABLE tokens(id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
              hash BLOB NOT NULL UNIQUE, label TEXT, created_at INTEGER NOT NULL, expires_at INTEGER, last_used_at INTEGER)
            """,
            "CREATE INDEX tokens_user ON tokens(user_id)",
            """
            CREATE TABLE conversations(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, member_a TEXT, member_b TEXT,
              next_seq INTEGER NOT NULL DEFAULT 1)
            """,
            "CREATE INDEX conversations_a ON conversations(member_a)",
            "CREATE INDEX conversations_b ON conversations(member_b)",
            """
            CREATE TABLE messages(id INTEGER PRIMARY KEY, conv_id INTEGER NOT NULL REFERENCES conversations(id),
              seq INTEGER NOT NULL, sender TEXT NOT NULL, client_id TEXT NOT NULL, ts INTEGER NOT NULL, body TEXT NOT NULL,
              UNIQUE(conv_id, seq))
            """,
            // The idempotency keys: one stored message per (sender, client id).
            "CREATE UNIQUE INDEX messages_idempotency ON messages(sender, client_id)",
        ]),
        // Two-factor sign-in: the last TOTP step used, so that a code is accepted once.
        (2, [
            "ALTER TABLE users ADD COLUMN otp_last_step INTEGER",
        ]),
        // Removed users stay as tombstones (their name is never reused), and every change that can end a
        // session bumps a counter that servers watch, whichever process made it.
        (3, [
            "ALTER TABLE users ADD COLUMN removed_at INTEGER",
            "CREATE TABLE security_epoch(id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)",
            "INSERT INTO security_epoch(id, value) VALUES (1, 0)",
            "CREATE TRIGGER security_tokens_deleted AFTER DELETE ON tokens BEGIN UPDATE security_epoch SET value = value + 1 WHERE id = 1; END",
            """
            CREATE TRIGGER security_users_changed AFTER UPDATE OF password_hash, disabled, removed_at ON users
            BEGIN UPDATE security_epoch SET value = value + 1 WHERE id = 1; END
            """,
            "CREATE TRIGGER security_users_deleted AFTER DELETE ON users BEGIN UPDATE security_epoch SET value = value + 1 WHERE id = 1; END",
        ]),
    ]

    static var latest: Int { steps.last?.version ?? 0 }

    static func run(on db: SQLiteConnection) async throws {
        _ = try await db.query("CREATE TABLE IF NOT EXISTS schema_migrations(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
        let current = try await db.query("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations").first?.column("v")?.integer ?? 0
        guard current <= latest else { throw StorageError.schemaTooNew(current) }
        for step in steps where step.version > current {
            _ = try await db.query("BEGIN IMMEDIATE")
            do {
                // Another process may have migrated while we waited for the lock.
                let now = try await db.query("SELECT 1 FROM schema_migrations WHERE version = ?", [.integer(step.version)])
                if now.isEmpty {
                    for sql in step.statements { _ = try await db.query(sql) }
                    _ = try await db.query("INSERT INTO schema_migrations(version, applied_at) VALUES (?, strftime('%s','now'))",
                                           [.integer(step.version)])
                }
                _ = try await db.query("COMMIT")
            } catch {
                _ = try? await db.query("ROLLBACK")
                throw error
            }
        }
    }
}
