public import IMWire
import Synchronization

/// A store in memory, for tests and throwaway servers: everything `ChatStore` promises, nothing kept.
///
/// It is the contract in its plainest form (hummingbird's `MemoryPersistDriver` plays the same part),
/// and the storage contract tests run against it as against every other store.
public final class MemoryStore: ChatStore {
    private struct User {
        var record: UserRecord
        var passwordHash: String
        var otpSecret: String?
        var otpLastStep: Int64?
        var removed = false
    }

    private struct Token {
        var record: TokenRecord
        var hash: [UInt8]
    }

    private struct Conversation {
        var messages: [StoredMessage] = []
    }

    private struct State {
        var users: [String: User] = [:]
        var nextUserID: Int64 = 1
        var tokens: [Int64: Token] = [:]
        var nextTokenID: Int64 = 1
        var epoch: Int64 = 0
        var conversations: [ConversationKey: Conversation] = [:]
        /// (sender, client id) → (conversation, index in it).
        var sent: [SentKey: (ConversationKey, Int)] = [:]
        var lastMessageID: Int64 = 0

        func liveUser(_ name: String) throws(StorageError) -> User {
            guard let user = users[name], !user.removed else { throw .noSuchUser(name) }
            return user
        }

        /// Drops the user's tokens; each one moves the epoch, as in SQLite (a trigger per row).
        mutating func dropTokens(of name: String) -> Int {
            let ids = tokens.filter { $0.value.record.user == name }.map(\.key)
            for id in ids { tokens[id] = nil }
            epoch += Int64(ids.count)
            return ids.count
        }
    }

    private struct SentKey: Hashable {
        var sender: String
        var clientID: String
    }

    private let state = Mutex(State())

    public init() {}

    public func close() async throws {}

    // MARK: users

    public func hasUsers() async throws -> Bool {
        state.withLock { s in s.users.values.contains { !$0.removed } }
    }

    public func createUser(name: String, passwordHash: String, isAdmin: Bool) async throws -> UserRecord {
        guard Names.isValidUser(name) else { throw StorageError.invalidName(name) }
        return try state.withLock { s throws(StorageError) in
            if let existing = s.users[name] { throw existing.removed ? .nameRetired(name) : .userExists(name) }
            let record = UserRecord(id: s.nextUserID, name: name, isAdmin: isAdmin, isDisabled: false, createdAt: Timestamp.nowMillis())
            s.nextUserID += 1
            s.users[name] = User(record: record, passwordHash: passwordHash)
            return record
        }
    }

    public func user(named name: String) async throws -> UserRecord? {
        state.withLock { s in (try? s.liveUser(name))?.record }
    }

    public func passwordHash(of name: String) async throws -> String? {
        state.withLock { s in (try? s.liveUser(name))?.passwordHash }
    }

    public func listUsers() async throws -> [UserRecord] {
        state.withLock { s in s.users.values.filter { !$0.removed }.map(\.record).sorted { $0.name < $1.name } }
    }

    public func removeUser(named name: String) async throws {
        try state.withLock { s throws(StorageError) in
            var user = try s.liveUser(name)
            user.removed = true
            user.record.isDisabled = true
            user.passwordHash = "!"
            user.otpSecret = nil
            s.users[name] = user
            s.epoch += 1
            _ = s.dropTokens(of: name)
        }
    }

    public func setPasswordHash(of name: String, to hash: String) async throws {
        try state.withLock { s throws(StorageError) in
            _ = try s.liveUser(name)
            s.users[name]!.passwordHash = hash
            s.epoch += 1
            _ = s.dropTokens(of: name)
        }
    }

    public func upgradePasswordHash(of name: String, from old: String, to hash: String) async throws {
        state.withLock { s in
            guard let user = try? s.liveUser(name), user.passwordHash == old else { return }
            s.users[name]!.passwordHash = hash
            s.epoch += 1
        }
    }

    public func setDisabled(_ name: String, _ disabled: Bool) async throws {
        try state.withLock { s throws(StorageError) in
            _ = try s.liveUser(name)
            s.users[name]!.record.isDisabled = disabled
            s.epoch += 1
        }
    }

    public func setOTPSecret(of name: String, to secret: String?) async throws {
        try state.withLock { s throws(StorageError) in
            _ = try s.liveUser(name)
            s.users[name]!.otpSecret = secret
            s.users[name]!.otpLastStep = nil
        }
    }

    public func otpSecret(of name: String) async throws -> String? {
        state.withLock { s in (try? s.liveUser(name))?.otpSecret }
    }

    public func useOTPStep(of name: String, step: Int64) async throws -> Bool {
        state.withLock { s in
            guard let user = try? s.liveUser(name) else { return false }
            if let last = user.otpLastStep, last >= step { return false }
            s.users[name]!.otpLastStep = step
            return true
        }
    }

    // MARK: tokens

    public func createToken(user: String, tokenHash: [UInt8], label: String?, expiresAt: Int64?) async throws -> TokenRecord {
        try state.withLock { s throws(StorageError) in
            _ = try s.liveUser(user)
            let record = TokenRecord(id: s.nextTokenID, user: user, label: label, createdAt: Timestamp.nowMillis(), expiresAt: expiresAt,
                                     lastUsedAt: nil)
            s.nextTokenID += 1
            s.tokens[record.id] = Token(record: record, hash: tokenHash)
            return record
        }
    }

    public func tokens(of user: String) async throws -> [TokenRecord] {
        try state.withLock { s throws(StorageError) in
            _ = try s.liveUser(user)
            return s.tokens.values.filter { $0.record.user == user }.map(\.record).sorted { $0.id < $1.id }
        }
    }

    public func revokeToken(user: String, id: Int64) async throws {
        try state.withLock { s throws(StorageError) in
            _ = try s.liveUser(user)
            guard s.tokens[id]?.record.user == user else { throw .noSuchToken(String(id)) }
            s.tokens[id] = nil
            s.epoch += 1
        }
    }

    public func revokeAllTokens(user: String) async throws -> Int {
        try state.withLock { s throws(StorageError) in
            _ = try s.liveUser(user)
            return s.dropTokens(of: user)
        }
    }

    public func revokeToken(hash: [UInt8]) async throws -> Bool {
        state.withLock { s in
            guard let id = s.tokens.first(where: { $0.value.hash == hash })?.key else { return false }
            s.tokens[id] = nil
            s.epoch += 1
            return true
        }
    }

    public func securityEpoch() async throws -> Int64 {
        state.withLock { $0.epoch }
    }

    /// The user a token signs in, if it is unexpired and the user enabled and not removed.
    private static func owner(of token: Token, now: Int64, in s: State) -> UserRecord? {
        if let expires = token.record.expiresAt, expires <= now { return nil }
        guard let user = s.users[token.record.user], !user.removed, !user.record.isDisabled else { return nil }
        return user.record
    }

    public func validTokens(among hashes: [[UInt8]], now: Int64) async throws -> Set<[UInt8]> {
        let wanted = Set(hashes)
        return state.withLock { s in
            Set(s.tokens.values.filter { wanted.contains($0.hash) && Self.owner(of: $0, now: now, in: s) != nil }.map(\.hash))
        }
    }

    public func authenticate(tokenHash: [UInt8], now: Int64) async throws -> UserRecord? {
        state.withLock { s in
            guard let (id, token) = s.tokens.first(where: { $0.value.hash == tokenHash }).map({ ($0.key, $0.value) }),
                  let user = Self.owner(of: token, now: now, in: s) else { return nil }
            // As in SQLite: use is recorded at most once a minute.
            if now - (token.record.lastUsedAt ?? 0) > 60_000 { s.tokens[id]!.record.lastUsedAt = now }
            return user
        }
    }

    // MARK: messages

    public func append(_ batch: [NewMessage]) async throws -> [AppendOutcome] {
        state.withLock { s in
            batch.map { new in
                let key = SentKey(sender: new.sender, clientID: new.clientID)
                if let (conversation, index) = s.sent[key] {
                    return AppendOutcome(message: s.conversations[conversation]!.messages[index], duplicate: true)
                }
                s.lastMessageID += 1
                let messages = s.conversations[new.conversation]?.messages ?? []
                let stored = StoredMessage(id: s.lastMessageID, conversation: new.conversation, seq: Int64(messages.count + 1),
                                           sender: new.sender, clientID: new.clientID, ts: new.ts, body: new.body)
                s.conversations[new.conversation, default: Conversation()].messages.append(stored)
                s.sent[key] = (new.conversation, messages.count)
                return AppendOutcome(message: stored, duplicate: false)
            }
        }
    }

    public func messages(in conversation: ConversationKey, afterSeq: Int64, limit: Int) async throws -> [StoredMessage] {
        state.withLock { s in
            let all = s.conversations[conversation]?.messages ?? []
            // seq n is at index n - 1.
            let start = Int(min(max(afterSeq, 0), Int64(all.count)))
            return Array(all[start...].prefix(max(limit, 0)))
        }
    }

    public func lastMessages(in conversation: ConversationKey, count: Int) async throws -> [StoredMessage] {
        state.withLock { s in Array((s.conversations[conversation]?.messages ?? []).suffix(max(count, 0))) }
    }

    private static func isMember(_ user: String, of conversation: ConversationKey) -> Bool {
        if case .direct(let a, let b) = conversation { return a == user || b == user }
        return false
    }

    public func directMessages(of user: String, afterID: Int64, limit: Int) async throws -> [StoredMessage] {
        state.withLock { s in
            let found = s.conversations.filter { Self.isMember(user, of: $0.key) }.values.flatMap { $0.messages.filter { $0.id > afterID } }
            return Array(found.sorted { $0.id < $1.id }.prefix(max(limit, 0)))
        }
    }

    public func messages(afterID: Int64, limit: Int) async throws -> [StoredMessage] {
        state.withLock { s in
            let found = s.conversations.values.flatMap { $0.messages.filter { $0.id > afterID } }
            return Array(found.sorted { $0.id < $1.id }.prefix(max(limit, 0)))
        }
    }

    public func lastMessageID() async throws -> Int64 {
        state.withLock { $0.lastMessageID }
    }

    public func conversations(of user: String, limit: Int) async throws -> [ConversationSummary] {
        state.withLock { s in
            s.conversations.compactMap { key, conversation -> ConversationSummary? in
                guard let last = conversation.messages.last else { return nil }
                if case .direct = key, !Self.isMember(user, of: key) { return nil }
                return ConversationSummary(conversation: key, lastID: last.id, lastSeq: last.seq, lastTS: last.ts)
            }
            .sorted { $0.lastID > $1.lastID }
            .prefix(max(limit, 0))
            .map { $0 }
        }
    }
}
