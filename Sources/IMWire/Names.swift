/// Validation of user and room names, and the `TARGET` syntax (`room` or `@user`).
public enum Names {
    /// Longest user name: `[a-z0-9][a-z0-9_.-]{0,31}`.
    public static let maxUserNameLength = 32
    /// Longest room name: `[a-z0-9][a-z0-9_.-]{0,63}`.
    public static let maxRoomNameLength = 64

    /// Whether `name` is a valid user name.
    public static func isValidUser(_ name: String) -> Bool {
        isValid(name, maxLength: maxUserNameLength)
    }

    /// Whether `name` is a valid room name.
    public static func isValidRoom(_ name: String) -> Bool {
        isValid(name, maxLength: maxRoomNameLength)
    }

    private static func isValid(_ name: String, maxLength: Int) -> Bool {
        var count = 0
        for c in name.utf8 {
            guard isLowerAlnum(c) || (count > 0 && (c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: "-"))) else { return false }
            count += 1
            guard count <= maxLength else { return false }
        }
        return count > 0
    }

    private static func isLowerAlnum(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
    }
}

/// Where a message goes or comes from: a room, or the direct conversation with a user.
public enum Target: Hashable, Sendable, CustomStringConvertible {
    /// A named room; any signed-in user may post and listen.
    case room(String)
    /// The direct conversation with the named user, written `@name`.
    case direct(String)

    /// Parses `room` or `@user`, validating the name.
    public init(parsing text: String) throws(WireError) {
        if text.hasPrefix("@") {
            let name = String(text.dropFirst())
            guard Names.isValidUser(name) else {
                throw .badTarget("invalid user name in '\(text)': expected [a-z0-9][a-z0-9_.-]{0,31}")
            }
            self = .direct(name)
        } else {
            guard Names.isValidRoom(text) else {
                throw .badTarget("invalid room name '\(text)': expected [a-z0-9][a-z0-9_.-]{0,63} or @user")
            }
            self = .room(text)
        }
    }

    /// The written form: `room` or `@user`.
    public var description: String {
        switch self {
        case .room(let name): name
        case .direct(let name): "@" + name
        }
    }
}

/// The storage identity of a conversation: a room, or the unordered pair of users of a direct one.
public enum ConversationKey: Hashable, Sendable, CustomStringConvertible {
    case room(String)
    /// The two users, sorted so that `@bob` seen by alice and `@alice` seen by bob are one conversation.
    case direct(String, String)

    /// The conversation `target` names when written by `user`.
    public init(target: Target, user: String) {
        switch target {
        case .room(let name): self = .room(name)
        case .direct(let peer): self = user <= peer ? .direct(user, peer) : .direct(peer, user)
        }
    }

    /// Parses the storage form produced by `description`.
    public init?(storageKey: String) {
        if storageKey.hasPrefix("dm:") {
            let parts = storageKey.dropFirst(3).split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            self = .direct(String(parts[0]), String(parts[1]))
        } else {
            self = .room(storageKey)
        }
    }

    /// Storage form: the room name, or `dm:a:b` (names cannot contain `:`).
    public var description: String {
        switch self {
        case .room(let name): name
        case .direct(let a, let b): "dm:\(a):\(b)"
        }
    }

    /// Whether `user` may read and write this conversation.
    public func admits(_ user: String) -> Bool {
        switch self {
        case .room: true
        case .direct(let a, let b): user == a || user == b
        }
    }

    /// How `user` writes this conversation: the room name, or `@peer`.
    public func label(for user: String) -> String {
        switch self {
        case .room(let name): return name
        case .direct(let a, let b):
            if a == b { return "@" + a }
            return "@" + (user == a ? b : a)
        }
    }

    /// Whether this is a direct conversation.
    public var isDirect: Bool {
        if case .direct = self { return true }
        return false
    }
}
