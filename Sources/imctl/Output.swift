import ArgumentParser
import Foundation
import IMClient
import IMStorage
#if canImport(Glibc)
import Glibc
#endif

/// Writing to stdout and stderr, and turning failures into exit codes.
enum Output {
    /// Writes `line` and a newline to stdout and flushes (so a pipe sees each message at once).
    static func line(_ line: String) {
        write(1, line + "\n")
    }

    /// Writes a diagnostic line to stderr.
    static func error(_ message: String) {
        write(2, "imctl: \(message)\n")
    }

    /// Writes all of `text` to a file descriptor (unbuffered, so nothing is lost on exit).
    static func write(_ fd: Int32, _ text: String) {
        var text = text
        text.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EPIPE { Self.brokenPipe() }
                    return
                }
                offset += n
            }
        }
    }

    /// The reader of our output went away (`imctl listen | head -1`): end as a process killed by SIGPIPE
    /// would, which SwiftNIO's ignoring of SIGPIPE otherwise prevents.
    static func brokenPipe() -> Never {
        signal(SIGPIPE, SIG_DFL)
        raise(SIGPIPE)
        Glibc.exit(141)
    }

    /// Reports `error` on stderr and returns the exit code to end with.
    static func exit(for error: any Error) -> ExitCode {
        switch error {
        case let e as ClientError:
            Self.error(e.message)
            return ExitCode(e.exitCode)
        case let e as StorageError:
            Self.error(e.description)
            if e.isInvalidInput { return ExitCode(65) }
            return ExitCode(1)
        case let e as ExitCode:
            return e
        case is CancellationError:
            return ExitCode(1)
        default:
            Self.error("\(error)")
            return ExitCode(1)
        }
    }
}

/// Runs a command body, mapping failures to the spec's exit codes.
func runMapped(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let e as ExitCode {
        throw e
    } catch let e as ValidationError {
        throw e
    } catch {
        throw Output.exit(for: error)
    }
}
