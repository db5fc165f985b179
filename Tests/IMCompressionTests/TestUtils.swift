/// SplitMix64: a tiny, fast, deterministic PRNG so test data is the same on every run.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

/// Chat-like test data: usernames, short sentences, URLs and emoji.
enum ChatText {
    static let users = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"]
    static let words = [
        "the", "deploy", "is", "done", "can", "you", "check", "build", "failed", "again", "lunch", "at",
        "noon", "meeting", "moved", "to", "tomorrow", "thanks", "looks", "good", "to", "me", "merged",
        "please", "review", "my", "PR", "server", "restarted", "latency", "is", "up", "ok", "on", "it",
    ]
    static let emoji = ["👍", "🎉", "😂", "🚀", "🔥", "❤️", "🙏", "👀"]

    /// One chat message.
    static func message(_ rng: inout SplitMix64) -> String {
        var text = "@\(users.randomElement(using: &rng)!) "
        for _ in 0..<Int.random(in: 2...12, using: &rng) {
            text += words.randomElement(using: &rng)! + " "
        }
        switch Int.random(in: 0..<6, using: &rng) {
        case 0: text += "https://git.example.com/team/repo/pull/\(Int.random(in: 1...9999, using: &rng))"
        case 1: text += emoji.randomElement(using: &rng)!
        default: text.removeLast()
        }
        return text
    }

    /// `count` messages.
    static func messages(_ count: Int, seed: UInt64 = 42) -> [[UInt8]] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Array(message(&rng).utf8) }
    }

    /// About `bytes` of newline-separated chat text.
    static func text(bytes: Int, seed: UInt64 = 7) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        var out: [UInt8] = []
        out.reserveCapacity(bytes + 200)
        while out.count < bytes {
            out.append(contentsOf: message(&rng).utf8)
            out.append(UInt8(ascii: "\n"))
        }
        return Array(out.prefix(bytes))
    }

    /// `count` random bytes (incompressible).
    static func random(_ count: Int, seed: UInt64 = 1) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }
}
