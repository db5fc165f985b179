import IMClient
import IMWire
import NIOPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Messages read from stdin in large blocking reads on NIO's thread pool, split by `MessageSplitter`.
/// Holds at most one read's worth of messages, so a million lines stream in constant memory.
final class StdinSource: MessageSource {
    private struct State: ~Copyable {
        var splitter: MessageSplitter
        var ready: [[UInt8]] = []
        var head = 0
        var eof = false
    }
    private let state: Mutex<State>
    static let chunk = 256 * 1024

    init(mode: MessageSplitter.Mode) {
        state = Mutex(State(splitter: MessageSplitter(mode: mode)))
    }

    func next() async throws -> [UInt8]? {
        while true {
            let (message, eof) = state.withLock { s -> ([UInt8]?, Bool) in
                if s.head < s.ready.count {
                    defer { s.head += 1 }
                    return (s.ready[s.head], false)
                }
                return (nil, s.eof)
            }
            if let message { return message }
            if eof { return nil }
            let bytes = try await NIOThreadPool.singleton.runIfActive { () -> [UInt8]? in
                var buffer = [UInt8](repeating: 0, count: Self.chunk)
                while true {
                    let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, Self.chunk) }
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return nil }
                    return Array(buffer[0..<n])
                }
            }
            state.withLock { s in
                s.ready = []
                s.head = 0
                if let bytes {
                    s.ready = s.splitter.feed(bytes)
                } else {
                    s.ready = s.splitter.finish()
                    s.eof = true
                }
            }
        }
    }
}
