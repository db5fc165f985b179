import Synchronization

/// Slows password guessing, with no race: an attempt is reserved before its password is hashed, and a
/// reservation counts as a failure until it turns out otherwise, so a burst of parallel requests gets
/// no more tries than a patient one.
///
/// Two keys: (name, address), so a user cannot be locked out from elsewhere, and the address alone, so
/// that spraying many names from one place is slowed too.
final class LoginThrottle: Sendable {
    /// Five tries cover typos; more within a minute from one place is a script.
    static let maxFailuresPerName = 5
    /// Twenty failures within a minute from one address, whatever the names: a spray.
    static let maxFailuresPerAddress = 20
    static let window: Duration = .seconds(60)
    static let nameLockout: Duration = .seconds(30)
    static let addressLockout: Duration = .seconds(60)
    /// What a request is told to wait while earlier attempts on the same key are still being checked.
    static let pendingWait: Duration = .seconds(1)
    /// Entries kept at most (old ones are dropped first), so the table itself is bounded.
    static let maxEntries = 100_000

    private struct Entry {
        var failures: [ContinuousClock.Instant] = []
        var pending = 0
        var lockedUntil: ContinuousClock.Instant?
    }

    private let state = Mutex<[String: Entry]>([:])

    private static func keys(_ name: String, _ address: String) -> [(key: String, limit: Int, lockout: Duration)] {
        [("n:\(address) \(name)", maxFailuresPerName, nameLockout), ("a:\(address)", maxFailuresPerAddress, addressLockout)]
    }

    /// Reserves an attempt: nil when it may go ahead (then call `finish` exactly once), or how long to wait.
    func reserve(name: String, address: String, now: ContinuousClock.Instant = .now) -> Duration? {
        state.withLock { s in
            let keys = Self.keys(name, address)
            for k in keys {
                var e = s[k.key] ?? Entry()
                if let until = e.lockedUntil, until > now { return until - now }
                e.failures.removeAll { now - $0 >= Self.window }
                s[k.key] = e
                if e.failures.count >= k.limit {
                    e.lockedUntil = now + k.lockout
                    e.failures = []
                    s[k.key] = e
                    return k.lockout
                }
                // Attempts still being hashed count as failures until they end: wait for them.
                if e.failures.count + e.pending >= k.limit { return Self.pendingWait }
            }
            for k in keys { s[k.key, default: Entry()].pending += 1 }
            if s.count > Self.maxEntries {
                s = s.filter { $0.value.pending > 0 || ($0.value.lockedUntil.map { $0 > now } ?? false) }
            }
            return nil
        }
    }

    /// How a reserved attempt ended.
    enum Outcome {
        case succeeded
        case failed
        /// Never checked (the server was too busy): counts neither way.
        case abandoned
    }

    /// Ends a reserved attempt.
    func finish(name: String, address: String, _ outcome: Outcome, now: ContinuousClock.Instant = .now) {
        state.withLock { s in
            for k in Self.keys(name, address) {
                var e = s[k.key] ?? Entry()
                e.pending = max(0, e.pending - 1)
                if outcome == .abandoned {
                    s[k.key] = e
                    continue
                }
                if outcome == .succeeded {
                    // A right password clears the name's count from this place, not the address's.
                    if k.limit == Self.maxFailuresPerName { e.failures = [] }
                } else {
                    e.failures.append(now)
                    if e.failures.count >= k.limit {
                        // Locked; once the lockout ends the count starts afresh.
                        e.lockedUntil = now + k.lockout
                        e.failures = []
                    }
                }
                s[k.key] = e
            }
        }
    }
}
