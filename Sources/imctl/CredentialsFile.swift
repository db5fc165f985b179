import Foundation
import IMClient
#if canImport(Glibc)
import Glibc
#endif

/// `$XDG_CONFIG_HOME/imctl/credentials.json` (0600): one token per server.
struct CredentialsFile: Codable {
    struct Entry: Codable {
        var user: String
        var token: String
        /// The server URL as given at login (the key is its normalised HTTP base).
        var url: String?
    }
    var servers: [String: Entry] = [:]
    /// The server signed in to last: commands use it when neither `--server` nor `IMCTL_SERVER` is given.
    var current: String?

    /// The URL of the current server, if any.
    var currentURL: String? {
        guard let current, let entry = servers[current] else { return nil }
        return entry.url ?? current
    }

    static var path: String { Defaults.configDirectory + "/credentials.json" }

    /// The key a server URL is stored under: its HTTP base, so `ws://h:p` and `http://h:p/` meet.
    static func key(_ server: String) -> String {
        // Several servers of one service (`ws://a,ws://b`) share the first one's login.
        let first = server.split(separator: ",").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? server
        var base = ClientConfiguration.httpBase(of: first)
        while base.hasSuffix("/") { base.removeLast() }
        return base
    }

    static func load() -> CredentialsFile {
        guard let data = FileManager.default.contents(atPath: path),
              let file = try? JSONDecoder().decode(CredentialsFile.self, from: data)
        else { return CredentialsFile() }
        return file
    }

    /// Writes the file atomically with mode 0600 in a 0700 folder.
    func save() throws {
        let dir = Defaults.configDirectory
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(self)
        let tmp = Self.path + ".tmp.\(getpid())"
        let fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CommandFailure.failure("cannot write \(tmp): \(String(cString: strerror(errno)))") }
        let ok = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) == $0.count }
        fsync(fd)
        close(fd)
        guard ok, rename(tmp, Self.path) == 0 else {
            unlink(tmp)
            throw CommandFailure.failure("cannot write \(Self.path)")
        }
    }
}

/// Reading passwords: from a terminal without echo, or one line from stdin with `--password-stdin`.
enum PasswordInput {
    static var stdinIsTerminal: Bool { isatty(0) == 1 }

    /// Reads one line from stdin (the trailing newline dropped).
    static func fromStdin() -> String? {
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while Glibc.read(0, &c, 1) == 1 {
            if c == 0x0A { break }
            bytes.append(c)
        }
        if bytes.last == 0x0D { bytes.removeLast() }
        return bytes.isEmpty && c != 0x0A ? nil : String(decoding: bytes, as: UTF8.self)
    }

    /// Whether a person can be asked: stdin or the controlling terminal is a terminal.
    static var terminalAvailable: Bool {
        if stdinIsTerminal { return true }
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }

    /// Asks on the controlling terminal (the code is not secret for long, so it is echoed).
    static func promptVisible(_ text: String) -> String? {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        Output.write(fd, text)
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while Glibc.read(fd, &c, 1) == 1, c != 0x0A { bytes.append(c) }
        let code = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        return code.isEmpty ? nil : code
    }

    /// Asks on the terminal with echo off.
    static func prompt(_ text: String) -> String? {
        Output.write(2, text)
        var old = termios()
        tcgetattr(0, &old)
        var quiet = old
        quiet.c_lflag &= ~tcflag_t(ECHO)
        tcsetattr(0, TCSAFLUSH, &quiet)
        defer {
            tcsetattr(0, TCSAFLUSH, &old)
            Output.write(2, "\n")
        }
        return fromStdin()
    }

    /// A password for `purpose`: `--password-stdin`, else a terminal prompt (twice when `confirm`), else a usage error.
    static func read(fromStdin: Bool, confirm: Bool, purpose: String) throws -> String {
        if fromStdin {
            guard let p = Self.fromStdin() else { throw CommandFailure.usage("no password on stdin") }
            return p
        }
        guard stdinIsTerminal else {
            throw CommandFailure.usage("no terminal to ask for the \(purpose) password: pipe it with --password-stdin")
        }
        guard let p = prompt("Password: ") else { throw CommandFailure.usage("no password given") }
        if confirm {
            guard let again = prompt("Repeat password: "), again == p else {
                throw CommandFailure.usage("the passwords did not match")
            }
        }
        return p
    }
}
