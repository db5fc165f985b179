import Testing
@testable import IMStorage

/// The store's side of two-factor sign-in: the secret, and each time step used once.
@Suite struct OTPStoreTests {
    @Test func aStepIsUsedOnce() async throws {
        try await withStore { store, _ in
            _ = try await store.createUser(name: "alice", passwordHash: "x", isAdmin: false)
            try await store.setOTPSecret(of: "alice", to: "JBSWY3DPEHPK3PXP")
            #expect(try await store.otpSecret(of: "alice") == "JBSWY3DPEHPK3PXP")
            #expect(try await store.useOTPStep(of: "alice", step: 100))
            #expect(try await !store.useOTPStep(of: "alice", step: 100))
            #expect(try await !store.useOTPStep(of: "alice", step: 99))
            #expect(try await store.useOTPStep(of: "alice", step: 101))
            try await store.setOTPSecret(of: "alice", to: nil)
            #expect(try await store.otpSecret(of: "alice") == nil)
        }
    }
}
