import Foundation
import Testing

@Suite struct PipeTests {
    /// `imctl listen … | head -1` ends once the reader has gone, as `seq 1 1000000 | head -1` does,
    /// instead of writing into a closed pipe forever.
    @Test func listenEndsWhenItsReaderGoesAway() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            try await sb.addUser("alice")
            let token = try await sb.token("alice")
            let send = try await sb.imctl(["send", "r", "--lines", "--token", token], stdin: Data((1...5000).map { "line \($0)\n" }.joined().utf8))
            #expect(send.status == 0, "\(send)")
            // 5,000 lines (~200 KB) overflow the 64 KB pipe buffer, so the listener writes after `head` has gone
            // however the two processes are scheduled.
            let pipeline = try Child(executable: URL(fileURLWithPath: "/bin/bash"),
                                     ["-c", "set -o pipefail; \"$0\" listen r --since 0 --token \"$1\" | head -n 1", imctlBinary.path, token],
                                     env: sb.environment())
            let result = await pipeline.finish(timeout: .seconds(20))
            #expect(!result.timedOut, "listen kept running after head exited")
            #expect(result.status == 141, "\(result)")  // 128 + SIGPIPE, as for any tool killed by a closed pipe
            #expect(pipeline.out.hasSuffix("r alice: line 1\n"), "\(pipeline.out)")
        }
    }
}
