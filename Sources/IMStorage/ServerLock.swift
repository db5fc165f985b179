import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The claim one `imctl serve` holds on its SQLite store for as long as it runs, so that a second one
/// on the same file is refused at start: two servers would each assign the same seqs and ids.
///
/// An `flock` on `<database>.serve-lock` beside the file (never on the database file itself, whose
/// POSIX locks SQLite owns). The kernel drops it when the process ends, however it ends.
public final class ServerLock: Sendable {
    private let fd: Int32

    /// Another server holds the store.
    public struct Held: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "another imctl serve is already using the store \(path)" }
    }

    private init(fd: Int32) {
        self.fd = fd
    }

    /// Claims the store at `databasePath`; throws `Held` when another process has it.
    public static func claim(databasePath: String) throws -> ServerLock {
        let dir = (databasePath as NSString).deletingLastPathComponent
        if !dir.isEmpty { try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
        let fd = open(databasePath + ".serve-lock", O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StorageError.cannotOpen("\(databasePath).serve-lock: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw Held(path: databasePath)
        }
        return ServerLock(fd: fd)
    }

    public func release() {
        flock(fd, LOCK_UN)
        close(fd)
    }
}
