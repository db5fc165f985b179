#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File-descriptor I/O for `imctl compress`: large chunks, no Foundation buffering.
enum CompressIO {
    /// Read size for pipe mode: large enough that syscalls are a rounding error, small enough to
    /// keep the resident set tiny.
    static let chunkSize = 128 * 1024

    /// An I/O failure with the message to print.
    struct Failure: Error {
        var message: String
    }

    /// Opens `path` for reading, or returns standard input for `-`.
    static func openForReading(_ path: String) throws(Failure) -> Int32 {
        if path == "-" { return 0 }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Failure(message: "\(path): \(errorText())") }
        return fd
    }

    /// Reads `fd` to its end in chunks, handing each chunk to `body`.
    static func forEachChunk(
        of fd: Int32, name: String, buffer: UnsafeMutableRawBufferPointer, _ body: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        while true {
            let count = read(fd, buffer.baseAddress, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(message: "\(name): \(errorText())")
            }
            if count == 0 { return }
            try body(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        }
    }

    /// The summed size of `paths` when every one is a regular file (nil for stdin or a pipe).
    static func totalSize(of paths: [String]) -> Int? {
        var total = 0
        for path in paths {
            var stats = stat()
            guard path != "-", stat(path, &stats) == 0, (stats.st_mode & S_IFMT) == S_IFREG else { return nil }
            total += Int(stats.st_size)
        }
        return total
    }

    /// `412.0 MB → 81.2 MB (19.7 %), 96 MB/s, 41 % of the input`.
    static func progressText(read: Int, written: Int, total: Int?, since start: ContinuousClock.Instant) -> String {
        func mb(_ n: Int) -> String { CompressReport.fixed(Double(n) / 1_000_000, 1) + " MB" }
        let elapsed = (ContinuousClock.now - start).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        var text = "\(mb(read)) → \(mb(written))"
        if read > 0 { text += " (" + CompressReport.fixed(100 * Double(written) / Double(read), 1) + " %)" }
        if seconds > 0 { text += ", \(Int(Double(read) / 1_000_000 / seconds)) MB/s" }
        if let total, total > 0 { text += ", \(min(100, read * 100 / total)) % of the input" }
        return text
    }

    /// Reads a whole file (or standard input for `-`) into memory.
    static func readAll(_ path: String) throws(Failure) -> [UInt8] {
        let fd = try openForReading(path)
        defer { if fd != 0 { close(fd) } }
        var result: [UInt8] = []
        var stats = stat()
        if fstat(fd, &stats) == 0 && stats.st_size > 0 { result.reserveCapacity(Int(stats.st_size)) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
        defer { buffer.deallocate() }
        do {
            try forEachChunk(of: fd, name: path == "-" ? "stdin" : path, buffer: buffer) { chunk in
                result.append(contentsOf: chunk.assumingMemoryBound(to: UInt8.self))
            }
        } catch {
            throw error as! Failure
        }
        return result
    }

    /// Writes all of `bytes` to `fd`, retrying short writes.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let count = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(message: "write error: \(errorText())")
            }
            offset += count
        }
    }

    /// Writes a whole file.
    static func writeFile(_ path: String, _ bytes: [UInt8]) throws(Failure) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Failure(message: "\(path): \(errorText())") }
        defer { close(fd) }
        do {
            try bytes.withUnsafeBytes { raw in try writeAll(fd, raw) }
        } catch {
            throw Failure(message: "\(path): \((error as! Failure).message)")
        }
    }

    /// Prints `imctl: compress: message` on standard error.
    static func diagnose(_ message: String) {
        let line = Array("imctl: compress: \(message)\n".utf8)
        line.withUnsafeBytes { raw in _ = try? writeAll(2, raw) }
    }

    static func errorText() -> String {
        String(cString: strerror(errno))
    }
}
