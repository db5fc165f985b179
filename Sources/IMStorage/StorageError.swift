/// A failure of the store, with a reason fit for a user.
public struct StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    private enum Kind: Equatable, Sendable {
        case userExists(String)
        case nameRetired(String)
        case noSuchUser(String)
        case noSuchToken(String)
        case invalidName(String)
        case cannotOpen(String)
        case backend(String)
        case schemaTooNew(Int)
    }
    private let kind: Kind

    public static func userExists(_ name: String) -> StorageError { .init(kind: .userExists(name)) }
    /// The name belonged to a removed user; names are never given to someone new.
    public static func nameRetired(_ name: String) -> StorageError { .init(kind: .nameRetired(name)) }
    public static func noSuchUser(_ name: String) -> StorageError { .init(kind: .noSuchUser(name)) }
    public static func noSuchToken(_ id: String) -> StorageError { .init(kind: .noSuchToken(id)) }
    public static func invalidName(_ name: String) -> StorageError { .init(kind: .invalidName(name)) }
    public static func cannotOpen(_ reason: String) -> StorageError { .init(kind: .cannotOpen(reason)) }
    public static func backend(_ reason: String) -> StorageError { .init(kind: .backend(reason)) }
    public static func schemaTooNew(_ version: Int) -> StorageError { .init(kind: .schemaTooNew(version)) }

    /// Whether the error names something that does not exist (a user or token).
    public var isNotFound: Bool {
        switch kind {
        case .noSuchUser, .noSuchToken: true
        default: false
        }
    }

    /// Whether the error is a conflict with an existing record.
    public var isConflict: Bool {
        switch kind {
        case .userExists, .nameRetired: return true
        default: return false
        }
    }

    /// Whether the caller's input was at fault (bad name or password).
    public var isInvalidInput: Bool {
        switch kind {
        case .invalidName: true
        default: false
        }
    }

    public var description: String {
        switch kind {
        case .userExists(let n): "user '\(n)' already exists"
        case .nameRetired(let n): "the name '\(n)' belonged to a removed user and is not given again (a new '\(n)' would read the old one's direct messages)"
        case .noSuchUser(let n): "no such user '\(n)'"
        case .noSuchToken(let id): "no such token '\(id)'"
        case .invalidName(let n): "invalid user name '\(n)': expected [a-z0-9][a-z0-9_.-]{0,31}"
        case .cannotOpen(let r): "cannot open the store: \(r)"
        case .backend(let r): "store error: \(r)"
        case .schemaTooNew(let v): "the store's schema version \(v) is newer than this imctl understands; upgrade imctl"
        }
    }
}
