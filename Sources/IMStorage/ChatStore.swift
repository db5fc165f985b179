public import IMWire

/// The store behind the server and the local `users` commands. Drivers: SQLite (default).
///
/// `append` must not be called concurrently with itself: the server's group committer is its one caller.
public protocol ChatStore: Sendable {
    // MARK: users
    /// Whether any user exists (an empty store gets set-up advice).
    func hasUsers() async throws -> Bool
    func createUser(name: String, passwordHash: String, isAdmin: Bool) async throws -> UserRecord
    func user(named name: String) async throws -> UserRecord?
    /// The stored password hash of an enabled or disabled user.
    func passwordHash(of name: String) async throws -> String?
    func listUsers() async throws -> [UserRecord]
    func removeUser(named name: String) async throws
    /// Replaces the password hash and revokes every token of the user.
    func setPasswordHash(of name: String, to hash: String) async throws
    func setDisabled(_ name: String, _ disabled: Bool) async throws

    /// Turns two-factor sign-in on (a base32 TOTP secret) or off (nil).
    func setOTPSecret(of name: String, to secret: String?) async throws
    func otpSecret(of name: String) async throws -> String?
    /// Records that a TOTP step was used; false when it (or a later one) already was, so a code works once.
    func useOTPStep(of name: String, step: Int64) async throws -> Bool

    // MARK: tokens
    /// Stores the SHA-256 of a new token.
    func createToken(user: String, tokenHash: [UInt8], label: String?, expiresAt: Int64?) async throws -> TokenRecord
    func tokens(of user: String) async throws -> [TokenRecord]
    func revokeToken(user: String, id: Int64) async throws
    func revokeAllTokens(user: String) async throws -> Int
    /// Revokes the token with this hash, if any; returns whether one was revoked.
    func revokeToken(hash: [UInt8]) async throws -> Bool
    /// The enabled user owning an unexpired token with this hash; records its use.
    func authenticate(tokenHash: [UInt8], now: Int64) async throws -> UserRecord?
    /// Which of these token hashes still sign someone in (unexpired, user enabled and not removed).
    func validTokens(among hashes: [[UInt8]], now: Int64) async throws -> Set<[UInt8]>
    /// A counter that every change able to end a session moves (a token revoked, a password changed, a
    /// user disabled or removed), whichever process made it: servers re-check live sessions when it moves.
    func securityEpoch() async throws -> Int64
    /// Replaces a password hash made with weaker parameters after a successful sign-in, keeping tokens;
    /// nothing happens if the hash changed meanwhile.
    func upgradePasswordHash(of name: String, from old: String, to hash: String) async throws

    // MARK: messages
    /// Appends a batch in one transaction, assigning per-conversation `seq`s; repeats of a stored
    /// (sender, client id) return the first message and store nothing.
    func append(_ batch: [NewMessage]) async throws -> [AppendOutcome]
    /// The same, calling `completion` when done, on whatever thread the store finishes on (SQLite: its
    /// writer thread), so that a caller can carry on there without a hop through a task.
    func append(_ batch: [NewMessage], completion: @escaping @Sendable (Result<[AppendOutcome], any Error>) -> Void)
    /// Messages of a conversation with `seq > afterSeq`, in order, at most `limit`.
    func messages(in conversation: ConversationKey, afterSeq: Int64, limit: Int) async throws -> [StoredMessage]
    /// The last `count` messages of a conversation, in order.
    func lastMessages(in conversation: ConversationKey, count: Int) async throws -> [StoredMessage]
    /// Messages of every direct conversation of `user` with `id > afterID`, in id order, at most `limit`.
    func directMessages(of user: String, afterID: Int64, limit: Int) async throws -> [StoredMessage]
    /// Messages of every conversation with `id > afterID`, in id order, at most `limit`.
    func messages(afterID: Int64, limit: Int) async throws -> [StoredMessage]
    /// The largest message id stored (0 when none).
    func lastMessageID() async throws -> Int64
    /// The conversations `user` may read that hold messages (every room, their direct ones), the most
    /// recently written first, at most `limit`, each with its last message's id, seq and time.
    func conversations(of user: String, limit: Int) async throws -> [ConversationSummary]

    /// Releases the store's connections.
    func close() async throws
}

/// A store that several servers write at once (PostgreSQL): each must hear of the others' messages.
/// Message ids become visible in increasing order, so "after the last id seen" misses nothing.
public protocol SharedChatStore: ChatStore {
    /// Calls `onChange` after messages were committed by any server, and once after each (re)connection
    /// of the watch (something may have been missed meanwhile), until the returned task is cancelled.
    func watch(_ onChange: @escaping @Sendable () -> Void) -> Task<Void, Never>
}

extension ChatStore {
    public func append(_ batch: [NewMessage], completion: @escaping @Sendable (Result<[AppendOutcome], any Error>) -> Void) {
        Task {
            do {
                completion(.success(try await append(batch)))
            } catch {
                completion(.failure(error))
            }
        }
    }
}
