public import IMWire

/// A user account as stored.
public struct UserRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var name: String
    public var isAdmin: Bool
    public var isDisabled: Bool
    /// Creation time, milliseconds since the epoch.
    public var createdAt: Int64

    public init(id: Int64, name: String, isAdmin: Bool, isDisabled: Bool, createdAt: Int64) {
        self.id = id
        self.name = name
        self.isAdmin = isAdmin
        self.isDisabled = isDisabled
        self.createdAt = createdAt
    }
}

/// An API token's metadata; the secret itself is never stored, only its SHA-256.
public struct TokenRecord: Sendable, Equatable, Codable {
    public var id: Int64
    public var user: String
    public var label: String?
    public var createdAt: Int64
    public var expiresAt: Int64?
    public var lastUsedAt: Int64?

    public init(id: Int64, user: String, label: String?, createdAt: Int64, expiresAt: Int64?, lastUsedAt: Int64?) {
        self.id = id
        self.user = user
        self.label = label
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.lastUsedAt = lastUsedAt
    }
}

/// A message to append: who sent it where, with the client's idempotency id.
public struct NewMessage: Sendable, Equatable {
    public var conversation: ConversationKey
    public var sender: String
    public var clientID: String
    public var body: String
    /// Server time for the message, milliseconds since the epoch.
    public var ts: Int64

    public init(conversation: ConversationKey, sender: String, clientID: String, body: String, ts: Int64) {
        self.conversation = conversation
        self.sender = sender
        self.clientID = clientID
        self.body = body
        self.ts = ts
    }
}

/// A stored message.
public struct StoredMessage: Sendable, Equatable {
    public var id: Int64
    public var conversation: ConversationKey
    public var seq: Int64
    public var sender: String
    public var clientID: String
    public var ts: Int64
    public var body: String

    public init(id: Int64, conversation: ConversationKey, seq: Int64, sender: String, clientID: String, ts: Int64, body: String) {
        self.id = id
        self.conversation = conversation
        self.seq = seq
        self.sender = sender
        self.clientID = clientID
        self.ts = ts
        self.body = body
    }

    /// The message as `reader` sees it (DMs are labelled `@peer`).
    public func view(for reader: String) -> MessageView {
        MessageView(id: id, room: conversation.label(for: reader), seq: seq, from: sender, ts: Timestamp.rfc3339(millis: ts), body: body)
    }
}

/// A conversation and where it stands: its last message.
public struct ConversationSummary: Sendable, Equatable {
    public var conversation: ConversationKey
    public var lastID: Int64
    public var lastSeq: Int64
    /// Time of the last message, milliseconds since the epoch.
    public var lastTS: Int64

    public init(conversation: ConversationKey, lastID: Int64, lastSeq: Int64, lastTS: Int64) {
        self.conversation = conversation
        self.lastID = lastID
        self.lastSeq = lastSeq
        self.lastTS = lastTS
    }
}

/// What appending one message did.
public struct AppendOutcome: Sendable, Equatable {
    /// The stored message (the earlier one when this was a duplicate).
    public var message: StoredMessage
    /// True when the same sender had already stored this client id: nothing new was stored.
    public var duplicate: Bool

    public init(message: StoredMessage, duplicate: Bool) {
        self.message = message
        self.duplicate = duplicate
    }
}
