import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A throwaway PostgreSQL for the tests: one server per test process, started on first use (`initdb`
/// and `pg_ctl` from Debian's postgresql, as the `postgres` user when running as root, on a free
/// loopback port, `fsync` off) and stopped when the process exits; each test gets a database of its
/// own. `IMCTL_TEST_POSTGRES_URL` (a `postgres://` URL of a role that may create databases) uses an
/// existing server instead. Without either the PostgreSQL cases fail, naming what is missing:
/// `.ci/run` installs it (`IMCTL_SKIP_POSTGRES=1` skips them on a machine without it).
public enum TestPostgres {
    public struct Unavailable: Error, CustomStringConvertible {
        public let description: String
    }

    public static var skipped: Bool { ProcessInfo.processInfo.environment["IMCTL_SKIP_POSTGRES"] == "1" }

    /// The server's URL, without a database.
    public static let server: Result<String, Unavailable> = {
        if let url = ProcessInfo.processInfo.environment["IMCTL_TEST_POSTGRES_URL"], !url.isEmpty {
            return .success(url.hasSuffix("/") ? String(url.dropLast()) : url)
        }
        do {
            return .success(try start())
        } catch let error as Unavailable {
            return .failure(error)
        } catch {
            return .failure(Unavailable(description: "\(error)"))
        }
    }()

    /// A new, empty database; its URL.
    public static func database() throws -> String {
        let base = try server.get()
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try run("/usr/bin/psql", [base + "/postgres", "-q", "-v", "ON_ERROR_STOP=1", "-c", "CREATE DATABASE \(name)"])
        return base + "/" + name
    }

    private static var binaries: String? {
        let root = "/usr/lib/postgresql"
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).compactMap(Int.init).sorted()
        return versions.last.map { "\(root)/\($0)/bin" }
    }

    private static func start() throws -> String {
        guard let bin = binaries, FileManager.default.isExecutableFile(atPath: bin + "/initdb") else {
            throw Unavailable(description: "PostgreSQL is not installed (apt-get install postgresql), and IMCTL_TEST_POSTGRES_URL is not set")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-pg-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        // PostgreSQL refuses to run as root.
        let asRoot = geteuid() == 0
        if asRoot { try run("/bin/chown", ["postgres:postgres", dir]) }
        func asPostgres(_ tool: String, _ arguments: [String]) throws {
            if asRoot {
                try run("/usr/sbin/runuser", ["-u", "postgres", "--", bin + "/" + tool] + arguments)
            } else {
                try run(bin + "/" + tool, arguments)
            }
        }
        try asPostgres("initdb", ["-D", dir + "/data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        let port = try freeLoopbackPort()
        let options = "-c listen_addresses=127.0.0.1 -p \(port) -k \(dir) -c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            + "-c max_connections=200"
        try asPostgres("pg_ctl", ["-D", dir + "/data", "-o", options, "-l", dir + "/log", "-w", "-t", "30", "start"])
        stopCommand = (asRoot, bin, dir)
        atexit {
            guard let (asRoot, bin, dir) = TestPostgres.stopCommand else { return }
            let stop = [bin + "/pg_ctl", "-D", dir + "/data", "-m", "immediate", "-w", "stop"]
            _ = try? TestPostgres.run(asRoot ? "/usr/sbin/runuser" : stop[0], asRoot ? ["-u", "postgres", "--"] + stop : Array(stop.dropFirst()))
            try? FileManager.default.removeItem(atPath: dir)
        }
        return "postgres://postgres@127.0.0.1:\(port)"
    }

    nonisolated(unsafe) private static var stopCommand: (Bool, String, String)?

    /// Runs `tool` and waits for it (posix_spawn and waitpid: Foundation's Process did not always see
    /// `runuser` exit here). Output goes to a file, not a pipe: the server `pg_ctl start` leaves running
    /// would hold a pipe open.
    @discardableResult
    static func run(_ tool: String, _ arguments: [String]) throws -> String {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-pg-run-\(UUID().uuidString)").path
        defer { unlink(outputPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv = ([tool] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, tool, &actions, nil, argv, environ)
        guard spawned == 0 else { throw Unavailable(description: "cannot run \(tool): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exited = (status & 0x7f) == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            throw Unavailable(description: "\(tool) \(arguments.joined(separator: " ")) failed (status \(status)): \(text)")
        }
        return text
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound, then closed).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestPostgres.Unavailable(description: "socket failed") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard ok else { throw TestPostgres.Unavailable(description: "no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
