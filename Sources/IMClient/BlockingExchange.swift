#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// One request and its response over a TCP connection made with plain system calls, every wait bounded
/// by a deadline: what a one-shot command needs, without starting event loop threads.
enum BlockingExchange {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Connects to `host:port` (each address `getaddrinfo` gives, in order), writes `request`, and reads
    /// until `isDone` says the bytes so far are enough or the server closes. Throws on any failure and
    /// when `deadline` passes.
    static func run(host: String, port: Int, request: [UInt8], deadline: ContinuousClock.Instant,
                    isDone: ([UInt8]) -> Bool) throws -> [UInt8] {
        let fd = try connect(host: host, port: port, deadline: deadline)
        defer { close(fd) }
        var written = 0
        while written < request.count {
            let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + written, request.count - written) }
            if n > 0 {
                written += n
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                try wait(fd, for: Int16(POLLOUT), until: deadline)
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                throw Failure(description: "write: \(String(cString: strerror(errno)))")
            }
        }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n > 0 {
                received += buffer[..<n]
                if isDone(received) { return received }
            } else if n == 0 {
                return received
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                try wait(fd, for: Int16(POLLIN), until: deadline)
            } else if errno != EINTR {
                throw Failure(description: "read: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// A non-blocking socket connected to the first address of `host` that takes the connection.
    private static func connect(host: String, port: Int, deadline: ContinuousClock.Instant) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        // An address needs no lookup, nor AI_ADDRCONFIG's netlink dump (and glibc's call to nscd for it).
        var probe = in6_addr()
        let numeric = inet_pton(AF_INET, host, &probe) == 1 || inet_pton(AF_INET6, host, &probe) == 1
        hints.ai_flags = AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : AI_ADDRCONFIG)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw Failure(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address"
        var next: UnsafeMutablePointer<addrinfo>? = first
        while let info = next {
            next = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue),
                            info.pointee.ai_protocol)
            guard fd >= 0 else { lastError = String(cString: strerror(errno)); continue }
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            if errno == EINPROGRESS {
                do {
                    try wait(fd, for: Int16(POLLOUT), until: deadline)
                    var error: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    if getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0 { return fd }
                    lastError = String(cString: strerror(error))
                } catch {
                    close(fd)
                    throw error
                }
            } else {
                lastError = String(cString: strerror(errno))
            }
            close(fd)
        }
        throw Failure(description: "connect to \(host):\(port): \(lastError)")
    }

    /// Waits until `fd` is ready for `events`, or throws when `deadline` passes first.
    private static func wait(_ fd: Int32, for events: Int16, until deadline: ContinuousClock.Instant) throws {
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            guard left > .zero else { throw Failure(description: "timed out") }
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&entry, 1, ms)
            if n > 0 { return }
            if n < 0 && errno != EINTR { throw Failure(description: "poll: \(String(cString: strerror(errno)))") }
        }
    }
}
