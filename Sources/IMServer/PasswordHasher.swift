import IMAuth
import IMStorage
import NIOPosix
import Synchronization

/// Password hashing on threads of its own, with a bounded queue.
///
/// An scrypt hash costs 128 MiB and ~0.4 s: a flood of logins must neither queue the store's work behind
/// it (the store has its own threads) nor grow without bound. Past `maxWaiting` the caller gets `Busy`
/// and answers 503 with `Retry-After`.
final class PasswordHasher: Sendable {
    /// Hashes at once: one per two CPUs (at least one), so chat traffic keeps a core.
    static let threads = max(1, ChatServer.usableCPUs() / 2)
    /// Hashes waiting or running before new ones are refused: a few seconds of work.
    static let maxWaiting = 8

    struct Busy: Error {}

    private let pool: NIOThreadPool
    private let waiting = Atomic<Int>(0)

    init() {
        pool = NIOThreadPool(numberOfThreads: Self.threads)
        pool.start()
    }

    /// Runs `work` on the hashing threads, or throws `Busy` when too many are waiting.
    func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let before = waiting.add(1, ordering: .relaxed).oldValue
        defer { waiting.subtract(1, ordering: .relaxed) }
        guard before < Self.maxWaiting else { throw Busy() }
        return try await pool.runIfActive(work)
    }

    /// Hashes waiting or running now.
    var waitingCount: Int { waiting.load(ordering: .relaxed) }

    func verify(_ password: String, hash: String) async throws -> Bool {
        try await run { Credentials.verifyPassword(password, hash: hash) }
    }

    func hash(_ password: String) async throws -> String {
        try await run { try Credentials.hashPassword(password) }
    }

    func shutdown() async {
        try? await pool.shutdownGracefully()
    }
}
