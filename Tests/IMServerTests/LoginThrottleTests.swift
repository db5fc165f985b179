import Testing
@testable import IMServer

/// The login throttle with time passed in: no sleeping, no sockets.
@Suite struct LoginThrottleTests {
    let t0 = ContinuousClock.now

    @Test func parallelAttemptsCountBeforeTheyAreChecked() {
        let throttle = LoginThrottle()
        // Five reservations go ahead at once; the sixth must wait for them, whatever they turn out to be.
        for _ in 0..<LoginThrottle.maxFailuresPerName { #expect(throttle.reserve(name: "alice", address: "a", now: t0) == nil) }
        #expect(throttle.reserve(name: "alice", address: "a", now: t0) == LoginThrottle.pendingWait)
        for _ in 0..<LoginThrottle.maxFailuresPerName { throttle.finish(name: "alice", address: "a", .failed, now: t0) }
        // Five failures: locked, even for the right password, for the lockout.
        #expect(throttle.reserve(name: "alice", address: "a", now: t0 + .seconds(1)) == LoginThrottle.nameLockout - .seconds(1))
        #expect(throttle.reserve(name: "alice", address: "a", now: t0 + .seconds(20)) != nil)
        #expect(throttle.reserve(name: "alice", address: "a", now: t0 + .seconds(32)) == nil)
    }

    @Test func aUserIsNotLockedOutFromElsewhere() {
        let throttle = LoginThrottle()
        for _ in 0..<LoginThrottle.maxFailuresPerName {
            #expect(throttle.reserve(name: "alice", address: "attacker", now: t0) == nil)
            throttle.finish(name: "alice", address: "attacker", .failed, now: t0)
        }
        #expect(throttle.reserve(name: "alice", address: "attacker", now: t0) != nil)
        #expect(throttle.reserve(name: "alice", address: "home", now: t0) == nil)
    }

    @Test func sprayingManyNamesFromOneAddressIsSlowed() {
        let throttle = LoginThrottle()
        for i in 0..<LoginThrottle.maxFailuresPerAddress {
            #expect(throttle.reserve(name: "user\(i)", address: "sprayer", now: t0) == nil)
            throttle.finish(name: "user\(i)", address: "sprayer", .failed, now: t0)
        }
        #expect(throttle.reserve(name: "someone-new", address: "sprayer", now: t0) == LoginThrottle.addressLockout)
        #expect(throttle.reserve(name: "someone-new", address: "elsewhere", now: t0) == nil)
    }

    @Test func failuresAgeOutAndSuccessClearsTheName() {
        let throttle = LoginThrottle()
        for _ in 0..<(LoginThrottle.maxFailuresPerName - 1) {
            _ = throttle.reserve(name: "alice", address: "a", now: t0)
            throttle.finish(name: "alice", address: "a", .failed, now: t0)
        }
        // A success clears the name's count from that place.
        _ = throttle.reserve(name: "alice", address: "a", now: t0)
        throttle.finish(name: "alice", address: "a", .succeeded, now: t0)
        for _ in 0..<(LoginThrottle.maxFailuresPerName - 1) {
            #expect(throttle.reserve(name: "alice", address: "a", now: t0) == nil)
            throttle.finish(name: "alice", address: "a", .failed, now: t0)
        }
        // Failures older than the window no longer count; an abandoned attempt counts neither way.
        #expect(throttle.reserve(name: "alice", address: "a", now: t0 + LoginThrottle.window) == nil)
        throttle.finish(name: "alice", address: "a", .abandoned, now: t0 + LoginThrottle.window)
        #expect(throttle.reserve(name: "alice", address: "a", now: t0 + LoginThrottle.window) == nil)
    }
}
