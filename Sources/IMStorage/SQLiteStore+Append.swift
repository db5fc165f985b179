import IMWire
import SQLiteNIO

/// What the one writer knows between transactions: conversation ids, next seqs, the next message id.
///
/// Only touched while holding `SQLiteStore.appendLock`; forgotten after a failed transaction, so the
/// next one reloads from the file.
final class WriterState: @unchecked Sendable {
    var conversations: [ConversationKey: (id: Int64, nextSeq: Int64)] = [:]
    var nextID: Int64?

    func reset() {
        conversations = [:]
        nextID = nil
    }
}

/// A send in the batch repeats a (sender, client id) already stored: the insert skipped it.
private struct RepeatedSend: Error {}

extension SQLiteStore {
    /// Rows per INSERT statement: 7 binds each stays far under SQLite's limit of 32,766, and one
    /// statement per thousand rows keeps the per-statement cost (a thread hop, a prepare) small.
    static let rowsPerInsert = 1000

    /// Appends a batch in one transaction.
    ///
    /// The fast path assigns ids and seqs in memory (one writer), inserts many rows per statement and
    /// lets the unique (sender, client id) index catch repeats: if any row was skipped, the transaction
    /// is rolled back and run again, this time looking the repeats up first.
    public func append(_ batch: [NewMessage]) async throws -> [AppendOutcome] {
        guard !batch.isEmpty else { return [] }
        return try await appendLock.withLock {
            do {
                return try await appendInTransaction(batch, lookUpRepeats: false)
            } catch is RepeatedSend {
                return try await appendInTransaction(batch, lookUpRepeats: true)
            } catch let error as SQLiteError where error.reason == .constraint || error.reason == .constraintUniqueFailed
                || error.reason == .constraintPrimaryKeyFailed || error.reason == .constraintUniqueRowIDFailed {
                // Someone else wrote to the file (another process on the same store): reload and retry once.
                return try await appendInTransaction(batch, lookUpRepeats: true)
            }
        }
    }

    private struct IdemKey: Hashable {
        var sender: String
        var clientID: String
    }

    private struct Row {
        var index: Int
        var convID: Int64
        var message: StoredMessage
    }

    private func appendInTransaction(_ batch: [NewMessage], lookUpRepeats: Bool) async throws -> [AppendOutcome] {
        _ = try await writer.query("BEGIN IMMEDIATE")
        do {
            let outcomes = try await appendRows(batch, lookUpRepeats: lookUpRepeats)
            _ = try await writer.query("COMMIT")
            return outcomes
        } catch {
            _ = try? await writer.query("ROLLBACK")
            writerState.reset()
            throw error
        }
    }

    private func appendRows(_ batch: [NewMessage], lookUpRepeats: Bool) async throws -> [AppendOutcome] {
        let existing = lookUpRepeats ? try await storedRepeats(of: batch) : [:]
        let state = writerState
        var nextID: Int64
        if let known = state.nextID {
            nextID = known
        } else {
            nextID = Int64(try await writer.query("SELECT COALESCE(MAX(id), 0) + 1 AS n FROM messages").first?.column("n")?.integer ?? 1)
        }
        var conversations: [ConversationKey: (id: Int64, nextSeq: Int64)] = [:]
        var outcomes: [AppendOutcome?] = Array(repeating: nil, count: batch.count)
        var repeats: [(index: Int, first: Int)] = []
        var firstInBatch: [IdemKey: Int] = [:]
        firstInBatch.reserveCapacity(batch.count)
        var rows: [Row] = []
        rows.reserveCapacity(batch.count)
        for (i, m) in batch.enumerated() {
            let key = IdemKey(sender: m.sender, clientID: m.clientID)
            if let stored = existing[key] {
                outcomes[i] = AppendOutcome(message: stored, duplicate: true)
                continue
            }
            if let first = firstInBatch.updateValue(i, forKey: key) {
                firstInBatch[key] = first
                repeats.append((i, first))
                continue
            }
            var conv: (id: Int64, nextSeq: Int64)
            if let c = conversations[m.conversation] {
                conv = c
            } else if let c = state.conversations[m.conversation] {
                conv = c
            } else {
                conv = try await loadConversation(m.conversation)
            }
            rows.append(Row(index: i, convID: conv.id, message: StoredMessage(
                id: nextID, conversation: m.conversation, seq: conv.nextSeq, sender: m.sender, clientID: m.clientID, ts: m.ts, body: m.body)))
            nextID += 1
            conv.nextSeq += 1
            conversations[m.conversation] = conv
        }
        for start in stride(from: 0, to: rows.count, by: Self.rowsPerInsert) {
            let part = rows[start..<min(start + Self.rowsPerInsert, rows.count)]
            var binds: [SQLiteData] = []
            binds.reserveCapacity(part.count * 7)
            for row in part {
                let m = row.message
                binds.append(.integer(Int(m.id)))
                binds.append(.integer(Int(row.convID)))
                binds.append(.integer(Int(m.seq)))
                binds.append(.text(m.sender))
                binds.append(.text(m.clientID))
                binds.append(.integer(Int(m.ts)))
                binds.append(.text(m.body))
            }
            let values = String(repeating: "(?,?,?,?,?,?,?),", count: part.count).dropLast()
            _ = try await writer.query(
                "INSERT INTO messages(id, conv_id, seq, sender, client_id, ts, body) VALUES \(values) ON CONFLICT(sender, client_id) DO NOTHING",
                binds)
            let inserted = try await writer.query("SELECT changes() AS n").first?.column("n")?.integer ?? -1
            if inserted != part.count { throw RepeatedSend() }
        }
        for row in rows {
            outcomes[row.index] = AppendOutcome(message: row.message, duplicate: false)
        }
        for (index, first) in repeats {
            outcomes[index] = AppendOutcome(message: outcomes[first]!.message, duplicate: true)
        }
        // Committed by the caller; only then is the in-memory state advanced.
        state.nextID = nextID
        for (key, conv) in conversations { state.conversations[key] = conv }
        return outcomes.map { $0! }
    }

    /// The stored messages whose (sender, client id) the batch repeats.
    private func storedRepeats(of batch: [NewMessage]) async throws -> [IdemKey: StoredMessage] {
        var existing: [IdemKey: StoredMessage] = [:]
        for (sender, messages) in Dictionary(grouping: batch, by: \.sender) {
            let ids = Array(Set(messages.map(\.clientID)))
            for start in stride(from: 0, to: ids.count, by: Self.rowsPerInsert) {
                let part = ids[start..<min(start + Self.rowsPerInsert, ids.count)]
                let marks = String(repeating: "?,", count: part.count).dropLast()
                let rows = try await writer.query(
                    """
                    SELECT \(Self.messageColumns) FROM messages m
                    JOIN conversations c ON c.id = m.conv_id WHERE m.sender = ? AND m.client_id IN (\(marks))
                    """, [.text(sender)] + part.map { .text($0) })
                for row in rows {
                    let m = Self.storedMessage(row)
                    existing[IdemKey(sender: m.sender, clientID: m.clientID)] = m
                }
            }
        }
        return existing
    }

    /// The id and next seq of a conversation, created on first use. The next seq comes from the
    /// messages themselves (`conversations.next_seq` is no longer kept up to date).
    private func loadConversation(_ key: ConversationKey) async throws -> (id: Int64, nextSeq: Int64) {
        let name = key.description
        var a: SQLiteData = .null
        var b: SQLiteData = .null
        if case .direct(let x, let y) = key {
            a = .text(x)
            b = .text(y)
        }
        _ = try await writer.query(
            "INSERT INTO conversations(key, member_a, member_b, next_seq) VALUES (?, ?, ?, 1) ON CONFLICT(key) DO NOTHING", [.text(name), a, b])
        guard let row = try await writer.query(
            "SELECT c.id, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE conv_id = c.id) AS next FROM conversations c WHERE c.key = ?",
            [.text(name)]).first,
            let id = row.column("id")?.integer, let next = row.column("next")?.integer
        else { throw StorageError.backend("conversation '\(name)' vanished") }
        return (Int64(id), Int64(next))
    }
}
