/// Splits a byte stream into messages the way `imctl send` reads stdin. Pure: feed bytes, take messages.
public struct MessageSplitter: Sendable {
    /// How input becomes messages.
    public enum Mode: Sendable {
        /// The whole input is one message; one trailing newline is dropped.
        case whole
        /// Each non-empty line is a message (a trailing `\r` is dropped too).
        case lines
        /// Messages are separated by NUL bytes; empty ones are skipped.
        case null
    }

    public let mode: Mode
    private var pending: [UInt8] = []

    public init(mode: Mode) {
        self.mode = mode
    }

    /// Consumes `bytes` and returns every message completed by them.
    public mutating func feed(_ bytes: some Sequence<UInt8>) -> [[UInt8]] {
        guard mode != .whole else {
            pending.append(contentsOf: bytes)
            return []
        }
        let separator: UInt8 = mode == .lines ? 0x0A : 0x00
        var out: [[UInt8]] = []
        for b in bytes {
            if b == separator {
                if let m = takePending() { out.append(m) }
            } else {
                pending.append(b)
            }
        }
        return out
    }

    /// Signals end of input and returns what remains.
    public mutating func finish() -> [[UInt8]] {
        switch mode {
        case .whole:
            var m = pending
            pending = []
            if m.last == 0x0A { m.removeLast() }
            return [m]
        case .lines, .null:
            return takePending().map { [$0] } ?? []
        }
    }

    private mutating func takePending() -> [UInt8]? {
        var count = pending.count
        if mode == .lines, pending.last == 0x0D { count -= 1 }
        guard count > 0 else {
            pending.removeAll(keepingCapacity: true)
            return nil
        }
        // An exact-size copy: the message does not keep the scratch buffer's capacity alive, and the
        // scratch buffer is reused instead of reallocated for every line.
        let m = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            pending.withUnsafeBufferPointer { source in
                _ = buffer.initialize(from: source[0..<count])
            }
            initialized = count
        }
        pending.removeAll(keepingCapacity: true)
        return m
    }
}
