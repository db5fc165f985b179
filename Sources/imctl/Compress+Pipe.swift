import ArgumentParser
import IMCompression
import IMServer
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Compress {
    /// `-c` / `-d`: stream stdin or FILEs to stdout in constant memory.
    func runPipe() throws {
        let inputs = files.isEmpty ? ["-"] : files
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: CompressIO.chunkSize, alignment: 16)
        defer { buffer.deallocate() }
        // Bytes read and written, for the progress line a long run shows on a terminal.
        var bytesIn = 0
        var bytesOut = 0
        let progress = ProgressLine()
        let total = CompressIO.totalSize(of: inputs)
        defer { progress.finish() }
        let write: (UnsafeRawBufferPointer) throws -> Void = { chunk in
            bytesOut += chunk.count
            try CompressIO.writeAll(1, chunk)
        }
        let started = ContinuousClock.now
        let report = {
            progress.update(CompressIO.progressText(read: bytesIn, written: bytesOut, total: total, since: started))
        }
        var current = "stdin"
        do {
            if decompress {
                let inflater = try Inflater(configuration: InflateConfiguration(
                    format: format.zlibFormat, windowBits: 15, bufferSize: 256 * 1024))
                for path in inputs {
                    current = path == "-" ? "stdin" : path
                    let fd = try CompressIO.openForReading(path)
                    defer { if fd != 0 { close(fd) } }
                    try inflater.reset()
                    try CompressIO.forEachChunk(of: fd, name: current, buffer: buffer) { chunk in
                        bytesIn += chunk.count
                        try inflater.decompress(chunk, sink: write)
                        report()
                    }
                    try inflater.finish()
                }
            } else if format == .gzip && windowBits == 15 && (threads ?? Host.usableCPUs()) > 1 {
                // Blocks on every core, one gzip stream (pigz's method).
                var opened: [(fd: Int32, name: String)] = []
                defer { for input in opened where input.fd != 0 { close(input.fd) } }
                for path in inputs {
                    current = path == "-" ? "stdin" : path
                    opened.append((try CompressIO.openForReading(path), current))
                }
                let writer = ParallelGzipWriter(level: pipeLevel, threads: threads ?? Host.usableCPUs())
                try writer.run(inputs: opened, write: write) { read, _ in
                    bytesIn = read
                    report()
                }
            } else {
                // All inputs form one stream, like `cat FILE… | gzip`.
                let deflater = try Deflater(configuration: DeflateConfiguration(
                    format: format.zlibFormat, level: pipeLevel, windowBits: windowBits, bufferSize: 256 * 1024))
                for path in inputs {
                    current = path == "-" ? "stdin" : path
                    let fd = try CompressIO.openForReading(path)
                    defer { if fd != 0 { close(fd) } }
                    try CompressIO.forEachChunk(of: fd, name: current, buffer: buffer) { chunk in
                        bytesIn += chunk.count
                        try deflater.compress(chunk, sink: write)
                        report()
                    }
                }
                try deflater.compress(UnsafeRawBufferPointer(start: nil, count: 0), flush: .finish, sink: write)
            }
        } catch let error as CompressionError {
            CompressIO.diagnose(files.isEmpty ? error.description : "\(current): \(error.description)")
            throw ExitCode(65)
        } catch let error as CompressIO.Failure {
            CompressIO.diagnose(error.message)
            throw ExitCode.failure
        }
    }
}
