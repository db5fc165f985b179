import Synchronization

/// Slows password guessing: after `maxFailures` failed logins for one name within `window`, further
/// attempts for that name are refused for `lockout`, whatever the password.
final class LoginThrottle: Sendable {
    /// Five tries cover typos; more within a minute is a script.
    static let maxFailures = 5
    static let window: Duration = .seconds(60)
    static let lockout: Duration = .seconds(30)

    private struct Entry {
        var failures: [ContinuousClock.Instant] = []
        var lockedUntil: ContinuousClock.Instant?
    }
    private let state = Mutex<[String: Entry]>([:])

    /// How long `name` must still wait, or nil when it may try now.
    func retryAfter(_ name: String, now: ContinuousClock.Instant = .now) -> Duration? {
        state.withLock { s in
            guard let until = s[name]?.lockedUntil, until > now else { return nil }
            return until - now
        }
    }

    func recordFailure(_ name: String, now: ContinuousClock.Instant = .now) {
        state.withLock { s in
            var e = s[name] ?? Entry()
            e.failures = e.failures.filter { now - $0 < Self.window } + [now]
            if e.failures.count >= Self.maxFailures {
                e.lockedUntil = now + Self.lockout
                e.failures = []
            }
            s[name] = e
            if s.count > 100_000 { s = s.filter { $0.value.lockedUntil.map { $0 > now } ?? false } }
        }
    }

    func recordSuccess(_ name: String) {
        _ = state.withLock { $0.removeValue(forKey: name) }
    }
}
