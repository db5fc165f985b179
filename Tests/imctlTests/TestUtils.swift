import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

// Helpers for the end-to-end tests: they run the built `imctl` binary as child processes, each test
// in its own temporary folder with its own server on a free port of 127.0.0.1.

// MARK: - The binary

/// The `imctl` binary beside the test bundle, else in the package's debug build folder.
let imctlBinary: URL = {
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("imctl")
    if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
    return URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/imctl")
}()

/// Runs blocking work (waiting for a child, a blocking socket) on a thread of its own. Every suite runs
/// in one process on Swift's cooperative pool, a thread per core: a test blocking one of those threads
/// for seconds starves the in-process servers of the other suites.
func onOwnThread<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try work() }) }.start()
    }
}

/// Writing to the stdin of a child that already exited must fail with EPIPE, not kill the test runner.
private let sigpipeIgnored: Bool = {
    signal(SIGPIPE, SIG_IGN)
    return true
}()

// MARK: - Results

/// What a finished process left behind.
struct ProcResult: CustomStringConvertible {
    var status: Int32
    /// True when it ended by a signal (then `status` is the signal number).
    var signaled: Bool
    var timedOut: Bool
    var stdout: Data
    var stderr: Data

    var out: String { String(decoding: stdout, as: UTF8.self) }
    var err: String { String(decoding: stderr, as: UTF8.self) }
    /// stdout split into lines (no empty trailing line).
    var lines: [String] { splitLines(out) }

    /// stdout as one JSON object per line.
    func jsonLines(sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
        try parseJSONLines(out, sourceLocation: sourceLocation)
    }

    var description: String {
        "exit \(signaled ? "signal " : "")\(status)\(timedOut ? " (timed out)" : ""), stdout \(stdout.count) bytes: "
            + "\(out.prefix(400).debugDescription), stderr: \(err.prefix(1000).debugDescription)"
    }
}

func splitLines(_ text: String) -> [String] {
    var lines = text.components(separatedBy: "\n")
    if lines.last == "" { lines.removeLast() }
    return lines
}

func parseJSONLines(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
    try splitLines(text).map { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any], "not a JSON object: \(line)", sourceLocation: sourceLocation)
    }
}

extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
    func string(_ key: String) -> String? { self[key] as? String }
}

// MARK: - Reading a pipe

/// Drains a file descriptor on its own thread into a buffer that can be looked at any time.
final class StreamCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer = Data()
    private var finished = false
    private let handle: FileHandle

    init(_ handle: FileHandle) {
        self.handle = handle
        let fd = handle.fileDescriptor
        let thread = Thread { [self] in
            var chunk = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                lock.withLock { buffer.append(contentsOf: chunk[0..<n]) }
            }
            lock.withLock { finished = true }
        }
        thread.start()
    }

    var data: Data { lock.withLock { buffer } }
    var text: String { String(decoding: data, as: UTF8.self) }
    var isFinished: Bool { lock.withLock { finished } }
}

// MARK: - A child process

/// How a child's stdin is fed.
enum StdinMode {
    /// /dev/null.
    case null
    /// These bytes, then end of file.
    case data(Data)
    /// A pipe the test writes to with `write(_:)` and closes with `closeStdin()`.
    case pipe
}

/// A running `imctl` (or other) process whose output can be read while it runs.
final class Child: @unchecked Sendable {
    let process = Process()
    let arguments: [String]
    let stdout: StreamCollector
    let stderr: StreamCollector
    private let stdinLock = NSLock()
    private var stdinHandle: FileHandle?

    init(executable: URL = imctlBinary, _ arguments: [String], env: [String: String], stdin: StdinMode = .null) throws {
        _ = sigpipeIgnored
        self.arguments = arguments
        process.executableURL = executable
        process.arguments = arguments
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        var inPipe: Pipe?
        switch stdin {
        case .null: process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        case .data, .pipe:
            let p = Pipe()
            process.standardInput = p
            inPipe = p
        }
        try process.run()
        stdout = StreamCollector(out.fileHandleForReading)
        stderr = StreamCollector(err.fileHandleForReading)
        if let inPipe {
            stdinHandle = inPipe.fileHandleForWriting
            if case .data(let data) = stdin {
                let thread = Thread { [self] in
                    write(data)
                    closeStdin()
                }
                thread.start()
            }
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var out: String { stdout.text }
    var err: String { stderr.text }
    var lines: [String] { splitLines(out) }

    /// Writes to the child's stdin (a `.pipe` child); false when the child no longer reads.
    @discardableResult
    func write(_ data: Data) -> Bool {
        guard let fd = stdinLock.withLock({ stdinHandle?.fileDescriptor }) else { return false }
        return data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    func write(_ text: String) { write(Data(text.utf8)) }

    func closeStdin() {
        stdinLock.withLock {
            try? stdinHandle?.close()
            stdinHandle = nil
        }
    }

    func signal(_ sig: Int32) {
        if process.isRunning { kill(process.processIdentifier, sig) }
    }

    /// SIGKILL, without waiting.
    func kill9() { signal(SIGKILL) }

    /// Waits for the process to end and its output to be drained; nil when it is still running at the deadline.
    func waitExit(timeout: Duration) async -> ProcResult? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return nil }
            try? await Task.sleep(for: .milliseconds(10))
        }
        // The pipes reach end of file once the process is gone (unless it left children holding them).
        let drainDeadline = ContinuousClock.now + .seconds(3)
        while !(stdout.isFinished && stderr.isFinished) && ContinuousClock.now < drainDeadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        return result(timedOut: false)
    }

    /// Waits for the end; at the deadline kills it (-9) and reports the result as timed out.
    func finish(timeout: Duration) async -> ProcResult {
        if let result = await waitExit(timeout: timeout) { return result }
        kill9()
        var result = await waitExit(timeout: .seconds(10)) ?? self.result(timedOut: true)
        result.timedOut = true
        return result
    }

    private func result(timedOut: Bool) -> ProcResult {
        let running = process.isRunning
        return ProcResult(
            status: running ? -1 : process.terminationStatus,
            signaled: !running && process.terminationReason == .uncaughtSignal,
            timedOut: timedOut, stdout: stdout.data, stderr: stderr.data)
    }

    /// Polls the output until `condition` holds; false at the deadline.
    func waitUntil(timeout: Duration, _ condition: (Child) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !condition(self) {
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    /// Waits until stdout holds at least `count` complete lines.
    func waitForLines(_ count: Int, timeout: Duration) async -> Bool {
        await waitUntil(timeout: timeout) { child in
            child.stdout.data.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) } >= count
        }
    }
}

// MARK: - The server

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// `imctl serve --port 0 --database …` as a child process.
final class ServerProcess: @unchecked Sendable {
    let database: String
    let extraArguments: [String]
    let env: [String: String]
    private(set) var port = 0
    private(set) var child: Child?
    /// stderr of the earlier runs (before restarts).
    private(set) var earlierStderr = ""

    init(database: String, env: [String: String], extraArguments: [String] = []) {
        self.database = database
        self.env = env
        self.extraArguments = extraArguments
    }

    deinit { child?.kill9() }

    var url: String { "ws://127.0.0.1:\(port)" }
    var stderr: String { earlierStderr + (child?.err ?? "") }
    var isRunning: Bool { child?.isRunning ?? false }

    /// Starts on a free port and waits for the "listening on" line.
    func start(timeout: Duration = .seconds(30)) async throws {
        try await launch(port: 0, timeout: timeout)
    }

    /// Starts again on the same port and database (retrying while the port is not free yet).
    func restart(timeout: Duration = .seconds(30)) async throws {
        precondition(port != 0, "restart before start")
        try await launch(port: port, timeout: timeout)
    }

    private func launch(port wanted: Int, timeout: Duration) async throws {
        if let old = child {
            old.kill9()
            _ = await old.waitExit(timeout: .seconds(10))
            earlierStderr += old.err
            child = nil
        }
        let deadline = ContinuousClock.now + timeout
        while true {
            let args = ["serve", "--host", "127.0.0.1", "--port", String(wanted), "--database", database] + extraArguments
            let c = try Child(args, env: env)
            child = c
            var found: Int?
            while found == nil && c.isRunning && ContinuousClock.now < deadline {
                found = Self.listeningPort(in: c.err)
                if found == nil { try? await Task.sleep(for: .milliseconds(10)) }
            }
            if found == nil { found = Self.listeningPort(in: c.err) }
            if let found {
                if wanted != 0 && found != wanted { throw TestError("server listens on \(found), wanted \(wanted)") }
                port = found
                return
            }
            let failed = await c.finish(timeout: .seconds(5))
            earlierStderr += c.err
            child = nil
            if ContinuousClock.now >= deadline {
                throw TestError("server did not become ready: \(failed)")
            }
            // Most likely the port is not free yet after a kill: try again shortly.
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    /// The port in `imctl: listening on ws://127.0.0.1:PORT/v1/ws …`.
    static func listeningPort(in stderr: String) -> Int? {
        guard let range = stderr.range(of: "listening on ws://127.0.0.1:") ?? stderr.range(of: "listening on wss://127.0.0.1:") else { return nil }
        let digits = stderr[range.upperBound...].prefix { $0.isNumber }
        guard stderr[range.upperBound...].dropFirst(digits.count).hasPrefix("/v1/ws") else { return nil }
        return Int(digits)
    }

    /// kill -9 and wait until it is gone.
    func kill9() async {
        guard let c = child else { return }
        c.kill9()
        _ = await c.waitExit(timeout: .seconds(10))
    }

    /// SIGTERM and wait for the exit; the result (nil when it did not stop in time).
    func terminate(timeout: Duration = .seconds(15)) async -> ProcResult? {
        guard let c = child else { return nil }
        c.signal(SIGTERM)
        return await c.waitExit(timeout: timeout)
    }
}

// MARK: - One test's world

/// Limits how many end-to-end tests run at once (each runs a server and clients), so that a small
/// machine is not overloaded into timeouts. `IMCTL_E2E_PARALLEL` overrides the default of 3.
actor TestGate {
    static let shared = TestGate(limit: ProcessInfo.processInfo.environment["IMCTL_E2E_PARALLEL"].flatMap(Int.init) ?? 3)
    private let limit: Int
    private var active = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(limit: Int) { self.limit = max(1, limit) }

    func acquire() async {
        if active < limit {
            active += 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty {
            active -= 1
        } else {
            waiters.removeFirst().resume()
        }
    }
}

/// A temporary folder with its own XDG folders and store, the processes started in it, and the server.
final class Sandbox: @unchecked Sendable {
    let dir: URL
    let database: String
    private let lock = NSLock()
    private var children: [Child] = []
    private var servers: [ServerProcess] = []
    private var _server: ServerProcess?

    /// - Parameter database: the store (default: a SQLite file in the sandbox), e.g. a PostgreSQL URL.
    init(database: String? = nil) throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("data"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("config"), withIntermediateDirectories: true)
        self.database = database ?? dir.appendingPathComponent("imctl.db").path
    }

    /// The environment every process gets: the test runner's, without IMCTL_* settings, with the
    /// sandbox's XDG folders, HOME, and store.
    var baseEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("IMCTL_") }
        env["HOME"] = dir.path
        env["XDG_DATA_HOME"] = dir.appendingPathComponent("data").path
        env["XDG_CONFIG_HOME"] = dir.appendingPathComponent("config").path
        env["IMCTL_DATABASE"] = database
        env["NO_COLOR"] = "1"
        return env
    }

    /// The base environment, plus IMCTL_SERVER for the running server, plus `extra` (an empty value
    /// reads as unset to imctl).
    func environment(_ extra: [String: String] = [:]) -> [String: String] {
        var env = baseEnvironment
        if let server = lock.withLock({ _server }) { env["IMCTL_SERVER"] = server.url }
        env.merge(extra) { $1 }
        return env
    }

    var server: ServerProcess {
        get throws {
            guard let s = lock.withLock({ _server }) else { throw TestError("no server started") }
            return s
        }
    }

    var serverURL: String { get throws { try server.url } }

    /// Starts `imctl serve --port 0 --database <sandbox>/imctl.db` (plus `arguments`) and waits until it listens.
    @discardableResult
    func startServer(_ arguments: [String] = [], database: String? = nil) async throws -> ServerProcess {
        let s = ServerProcess(database: database ?? self.database, env: baseEnvironment, extraArguments: arguments)
        lock.withLock { servers.append(s) }
        try await s.start()
        lock.withLock { _server = s }
        return s
    }

    /// Starts a process that keeps running (a listener, a streaming sender); killed at the end of the test.
    func spawn(_ arguments: [String], stdin: StdinMode = .null, env: [String: String] = [:],
               detached: Bool = false) throws -> Child {
        // Detached: in a new session, so without a controlling terminal even when the tests run in one.
        let c = detached
            ? try Child(executable: URL(fileURLWithPath: "/usr/bin/setsid"), ["--wait", imctlBinary.path] + arguments,
                        env: environment(env), stdin: stdin)
            : try Child(arguments, env: environment(env), stdin: stdin)
        lock.withLock { children.append(c) }
        return c
    }

    /// Runs `imctl ARGS` to the end (killed after `timeout`, which fails the test).
    func imctl(_ arguments: [String], stdin: Data? = nil, env: [String: String] = [:], timeout: Duration = .seconds(30),
               detached: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) async throws -> ProcResult {
        let c = try spawn(arguments, stdin: stdin.map { .data($0) } ?? .null, env: env, detached: detached)
        let result = await c.finish(timeout: timeout)
        if result.timedOut {
            Issue.record("imctl \(arguments.joined(separator: " ")) did not finish within \(timeout): \(result)",
                         sourceLocation: sourceLocation)
        }
        return result
    }

    func imctl(_ arguments: String..., stdin: String? = nil, env: [String: String] = [:], timeout: Duration = .seconds(30),
               sourceLocation: SourceLocation = #_sourceLocation) async throws -> ProcResult {
        try await imctl(arguments, stdin: stdin.map { Data($0.utf8) }, env: env, timeout: timeout, sourceLocation: sourceLocation)
    }

    /// `imctl users add NAME [--admin] --password-stdin` on the store; fails the test unless it exits 0.
    func addUser(_ name: String, admin: Bool = false, password: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let args = ["users", "add", name, "--password-stdin"] + (admin ? ["--admin"] : [])
        let r = try await imctl(args, stdin: Data(((password ?? Self.password(name)) + "\n").utf8), sourceLocation: sourceLocation)
        try #require(r.status == 0, "users add \(name): \(r)", sourceLocation: sourceLocation)
    }

    /// The password `addUser` gives a user by default.
    static func password(_ name: String) -> String { "pw-\(name)-12345" }

    /// `imctl users token NAME` on the store.
    func token(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let r = try await imctl(["users", "token", name], sourceLocation: sourceLocation)
        try #require(r.status == 0, "users token \(name): \(r)", sourceLocation: sourceLocation)
        let token = r.out.trimmingCharacters(in: .whitespacesAndNewlines)
        try #require(!token.isEmpty && !token.contains("\n"), "users token printed \(r.out.debugDescription)",
                     sourceLocation: sourceLocation)
        return token
    }

    /// Adds users and returns a token for each.
    func users(_ names: String..., admin: Bool = false) async throws -> [String: String] {
        var tokens: [String: String] = [:]
        for name in names {
            try await addUser(name, admin: admin)
            tokens[name] = try await token(name)
        }
        return tokens
    }

    /// Kills every process still running (-9) and removes the folder.
    func cleanup() {
        let (cs, ss) = lock.withLock { (children, servers) }
        for c in cs { c.kill9() }
        for s in ss { s.child?.kill9() }
        for c in cs { c.process.waitUntilExit() }
        for s in ss { s.child?.process.waitUntilExit() }
        try? FileManager.default.removeItem(at: dir)
    }
}

/// Runs `body` in a fresh sandbox; whatever happens, its processes are killed and its folder removed.
func withSandbox(database: String? = nil, _ body: (Sandbox) async throws -> Void) async throws {
    await TestGate.shared.acquire()
    let sandbox: Sandbox
    do {
        sandbox = try Sandbox(database: database)
    } catch {
        await TestGate.shared.release()
        throw error
    }
    do {
        try await body(sandbox)
    } catch {
        sandbox.cleanup()
        await TestGate.shared.release()
        throw error
    }
    sandbox.cleanup()
    await TestGate.shared.release()
}

// MARK: - Small things

/// RFC 3339 UTC with milliseconds, as the server writes `ts`.
func isServerTimestamp(_ s: String) -> Bool {
    s.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil
}

/// Lines `first…last` joined by newlines, with a trailing newline.
func numberedLines(_ range: ClosedRange<Int>) -> String {
    range.map(String.init).joined(separator: "\n") + "\n"
}

/// Nil when `actual == expected`, else a short account of the first difference (for big sequences,
/// where #expect's own report would print thousands of elements).
func sequenceMismatch<T: Equatable>(_ actual: [T], _ expected: [T]) -> String? {
    if actual == expected { return nil }
    var i = 0
    while i < actual.count && i < expected.count && actual[i] == expected[i] { i += 1 }
    let got = actual[i..<min(actual.count, i + 5)].map { "\($0)" }.joined(separator: ", ")
    let want = expected[i..<min(expected.count, i + 5)].map { "\($0)" }.joined(separator: ", ")
    return "\(actual.count) elements, expected \(expected.count); first difference at index \(i): got [\(got)], expected [\(want)]"
}
