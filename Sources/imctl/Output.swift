import ArgumentParser
import Foundation
import IMAuth
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

    /// The spec's exit code for a client failure (sysexits).
    static func code(for kind: ClientError.Kind) -> Int32 {
        switch kind {
        case .unreachable: 69
        case .unauthorized, .otpRequired: 77
        case .tooLarge, .badInput: 65
        case .timeout: 75
        case .server: 1
        case .badURL: 64
        }
    }

    /// Reports `error` on stderr and returns the exit code to end with.
    static func exit(for error: any Error) -> ExitCode {
        switch error {
        case let e as ClientError:
            Self.error(e.message)
            return ExitCode(code(for: e.kind))
        case let e as CommandFailure:
            Self.error(e.message)
            return ExitCode(e.code)
        case let e as WeakPassword:
            Self.error(e.description)
            return ExitCode(65)
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

/// A failure of the command itself (not of a client call), with its exit code.
struct CommandFailure: Error, CustomStringConvertible {
    let code: Int32
    let message: String

    /// Bad usage found at run time (exit 64).
    static func usage(_ message: String) -> CommandFailure { CommandFailure(code: 64, message: message) }
    /// Anything else (exit 1).
    static func failure(_ message: String) -> CommandFailure { CommandFailure(code: 1, message: message) }

    var description: String { message }
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
