import Foundation
import Testing

/// Terminal manners: colour and progress for a person at a terminal, never in a pipe, with NO_COLOR
/// set, with TERM=dumb or in --json. The terminal is a real pseudo-terminal (Python's `pty`).
@Suite(.timeLimit(.minutes(10))) struct TerminalTests {
    /// Runs argv[1:] on a new pseudo-terminal (stdin, stdout and stderr) and copies what it writes to
    /// our stdout, byte for byte; exits with its status.
    static let ptyRunner = """
        import os, pty, select, sys
        pid, fd = pty.fork()
        if pid == 0:
            os.execvp(sys.argv[1], sys.argv[1:])
        while True:
            try:
                ready, _, _ = select.select([fd], [], [], 60)
                chunk = os.read(fd, 65536) if ready else b""
            except OSError:
                chunk = b""
            if not chunk:
                break
            sys.stdout.buffer.write(chunk)
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.exit(os.waitstatus_to_exitcode(status))
        """

    static func onTerminal(_ sb: Sandbox, _ argv: [String], env: [String: String] = [:]) async throws -> ProcResult {
        let c = try Child(executable: URL(fileURLWithPath: "/usr/bin/python3"), ["-c", ptyRunner] + argv,
                          env: sb.environment(["NO_COLOR": "", "TERM": "xterm-256color"].merging(env) { $1 }))
        return await c.finish(timeout: .seconds(90))
    }

    static let escape = "\u{1B}"

    @Test func listenColoursRoomAndSenderOnlyOnATerminal() async throws {
        try await withSandbox { sb in
            try await sb.startServer()
            let alice = try await sb.users("alice")["alice"]!
            let sent = try await sb.imctl("send", "lobby", "hi \u{1B}[2J there", "--token", alice)
            try #require(sent.status == 0, "\(sent)")
            let listen = [imctlBinary.path, "listen", "lobby", "--since", "0", "-n", "1", "--token", alice]

            let coloured = try await Self.onTerminal(sb, listen)
            #expect(coloured.status == 0, "\(coloured)")
            #expect(coloured.out.contains("\(Self.escape)[36mlobby\(Self.escape)[0m \(Self.escape)[1;"), "\(coloured.out.debugDescription)")
            #expect(coloured.out.contains("malice\(Self.escape)[0m: hi \\x1b[2J there"), "\(coloured.out.debugDescription)")

            for (what, extraArguments, env) in [("NO_COLOR", [], ["NO_COLOR": "1"]), ("TERM=dumb", [], ["TERM": "dumb"]),
                                                 ("--json", ["--json"], [:]), ("--format", ["--format", "{room} {from}: {body}"], [:])] {
                let plain = try await Self.onTerminal(sb, listen + extraArguments, env: env)
                #expect(plain.status == 0, "\(what): \(plain)")
                #expect(plain.out.contains("lobby") && !plain.out.contains("\(Self.escape)["), "\(what): \(plain.out.debugDescription)")
            }
            // In a pipe: the plain line.
            let piped = try await sb.imctl(["listen", "lobby", "--since", "0", "-n", "1", "--token", alice], env: ["NO_COLOR": ""])
            #expect(piped.status == 0, "\(piped)")
            #expect(piped.lines.count == 1 && piped.lines[0].hasSuffix(" lobby alice: hi \\x1b[2J there"), "\(piped.out.debugDescription)")
        }
    }

    /// A `compress -c` long enough to be worth watching shows its progress on a terminal's stderr, and
    /// erases it at the end; piped, or with NO_COLOR, stderr stays empty. The output is the same.
    @Test func longCompressRunsShowProgressOnlyOnATerminal() async throws {
        try await withSandbox { sb in
            // 48 MB of base64 noise at level 9: a few seconds (progress starts after 1 s). Made on a
            // thread of its own: CPU work on the cooperative pool starves the other suites' servers.
            let input = sb.dir.appendingPathComponent("big.txt")
            try await onOwnThread {
                let noise = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/urandom")).read(upToCount: 36_000_000) ?? Data()
                try noise.base64EncodedData(options: .lineLength76Characters).write(to: input)
            }
            let output = sb.dir.appendingPathComponent("big.txt.gz").path
            let script = "\"$0\" compress -c -9 \"$1\" > \"$2\""

            let shown = try await Self.onTerminal(sb, ["/bin/sh", "-c", script, imctlBinary.path, input.path, output])
            #expect(shown.status == 0, "\(shown.err)")
            #expect(shown.out.contains("\r\(Self.escape)[K"), "no progress line: \(shown.out.debugDescription)")
            #expect(shown.out.contains(" MB → ") && shown.out.contains("% of the input"), "\(shown.out.debugDescription)")
            #expect(shown.out.hasSuffix("\r\(Self.escape)[K"), "the progress line is not erased at the end: \(shown.out.suffix(80).debugDescription)")
            let check = try await Self.gunzipMatches(output, input.path)
            #expect(check, "the compressed output does not decompress to the input")

            let quiet = try await Self.onTerminal(sb, ["/bin/sh", "-c", script, imctlBinary.path, input.path, output], env: ["NO_COLOR": "1"])
            #expect(quiet.status == 0 && quiet.out.isEmpty, "NO_COLOR: \(quiet.out.debugDescription)")
            let piped = try await sb.imctl(["compress", "-c", "-9", input.path], env: ["NO_COLOR": ""], timeout: .seconds(90))
            #expect(piped.status == 0 && piped.err.isEmpty, "piped: \(piped.err.debugDescription)")
        }
    }

    static func gunzipMatches(_ gz: String, _ original: String) async throws -> Bool {
        let c = try Child(executable: URL(fileURLWithPath: "/bin/sh"), ["-c", "gzip -dc \"$0\" | cmp -s - \"$1\"", gz, original],
                          env: ProcessInfo.processInfo.environment)
        return await c.finish(timeout: .seconds(60)).status == 0
    }
}
