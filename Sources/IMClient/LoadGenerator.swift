import Histogram
import IMWire
public import Logging
import Synchronization

/// What `imctl bench` runs: publishers and subscribers over rooms, measuring what arrives.
public struct LoadConfiguration: Sendable {
    /// How clients are spread over several servers.
    public enum Balance: String, Sendable, CaseIterable {
        case roundRobin = "round-robin"
        case random
        case leastConnections = "least-connections"
    }

    public var servers: [String]
    public var balance: Balance
    public var token: String
    public var publishers: Int
    public var subscribers: Int
    public var rooms: Int
    /// Messages in all, over all publishers (ignored when `duration` is set).
    public var messages: Int
    /// Body size in bytes (at least big enough for the probe header).
    public var size: Int
    /// Messages per second over all publishers; 0 sends as fast as acks allow.
    public var rate: Double
    /// Publish for this long instead of a count.
    public var duration: Duration?
    public var compression: Bool
    /// Prefix of the room names, unique per run so that runs do not see each other's messages.
    public var roomPrefix: String
    /// CA certificates to trust for `wss://`.
    public var caCertificatePath: String?

    public init(servers: [String], balance: Balance = .roundRobin, token: String, publishers: Int = 1, subscribers: Int = 10,
                rooms: Int = 1, messages: Int = 10000, size: Int = 128, rate: Double = 0, duration: Duration? = nil,
                compression: Bool = true, roomPrefix: String, caCertificatePath: String? = nil) {
        self.caCertificatePath = caCertificatePath
        self.servers = servers
        self.balance = balance
        self.token = token
        self.publishers = publishers
        self.subscribers = subscribers
        self.rooms = rooms
        self.messages = messages
        self.size = size
        self.rate = rate
        self.duration = duration
        self.compression = compression
        self.roomPrefix = roomPrefix
    }
}

/// Live counters, for a progress display.
public struct LoadProgress: Sendable {
    public var sent: Int
    public var acked: Int
    public var delivered: Int
    public var expected: Int
}

/// The outcome of a run. Times are in milliseconds, rates per second.
public struct LoadReport: Sendable, Codable {
    public var publishers: Int
    public var subscribers: Int
    public var rooms: Int
    public var size: Int
    public var sent: Int
    public var acked: Int
    public var expected: Int
    public var delivered: Int
    public var lost: Int
    public var duplicated: Int
    public var connectMsMedian: Double
    public var connectMsMax: Double
    public var publishSeconds: Double
    public var publishRate: Double
    public var deliverySeconds: Double
    public var deliveryRate: Double
    public var deliveryMBps: Double
    public var latencyMs: [String: Double]
    public var perSubscriberRateMin: Double
    public var perSubscriberRateMax: Double
}

/// Runs publishers and subscribers against one or more servers and measures delivery.
///
/// Each body starts with `publisher:number:sendTimeNanos:` (monotonic clock; one process sends and
/// receives, so latency needs no clock sync) and is padded to the configured size.
public final class LoadGenerator: Sendable {
    private let configuration: LoadConfiguration
    private let logger: Logger

    private struct SubscriberState {
        var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
        /// Per publisher, a bitset of message numbers seen.
        var seen: [[UInt64]]
        var received = 0
        var unique = 0
        var duplicates = 0
        var firstNanos: Int64 = 0
        var lastNanos: Int64 = 0
    }

    private final class SubscriberBox: Sendable {
        let state: Mutex<SubscriberState>
        init(publishers: Int) { state = Mutex(SubscriberState(seen: Array(repeating: [], count: publishers))) }
        func withLock<T>(_ body: (inout SubscriberState) -> T) -> T { state.withLock { body(&$0) } }
    }

    private final class Shared: Sendable {
        let subscribers: [SubscriberBox]
        let sent = Atomic<Int>(0)
        let acked = Atomic<Int>(0)
        let delivered = Atomic<Int>(0)
        let connections: Mutex<[Int]>
        let ackedPerPublisher: Mutex<[Int]>
        init(subscribers: Int, publishers: Int, servers: Int) {
            ackedPerPublisher = Mutex(Array(repeating: 0, count: publishers))
            self.subscribers = (0..<subscribers).map { _ in SubscriberBox(publishers: publishers) }
            connections = Mutex(Array(repeating: 0, count: servers))
        }
    }

    public init(configuration: LoadConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    private func room(_ i: Int) -> String { "\(configuration.roomPrefix)-\(i % max(configuration.rooms, 1))" }

    private func pickServer(_ shared: Shared, index: Int) -> String {
        let servers = configuration.servers
        let chosen: Int
        switch configuration.balance {
        case .roundRobin: chosen = index % servers.count
        case .random: chosen = Int.random(in: 0..<servers.count)
        case .leastConnections: chosen = shared.connections.withLock { c in c.indices.min { c[$0] < c[$1] } ?? 0 }
        }
        shared.connections.withLock { $0[chosen] += 1 }
        return servers[chosen]
    }

    private func client(_ server: String, reconnect: Bool = true) -> ClientConfiguration {
        ClientConfiguration(server: server, token: configuration.token, compression: configuration.compression, reconnect: reconnect,
                            maxBackoff: .seconds(1), reconnectWindow: .seconds(30), caCertificatePath: configuration.caCertificatePath)
    }

    /// Runs the load; `progress` is called a few times a second.
    public func run(progress: @escaping @Sendable (LoadProgress) -> Void = { _ in }) async throws -> LoadReport {
        let c = configuration
        let shared = Shared(subscribers: c.subscribers, publishers: c.publishers, servers: c.servers.count)
        let subscribersPerRoom = (0..<max(c.rooms, 1)).map { r in (0..<c.subscribers).filter { $0 % max(c.rooms, 1) == r }.count }

        // 1. Subscribers connect and subscribe; publishing starts once all are live.
        var connectTimes: [Double] = []
        var listenerTasks: [Task<Void, any Error>] = []
        let (ready, readyContinuation) = AsyncStream.makeStream(of: Double.self)
        for j in 0..<c.subscribers {
            let listener = Listener(configuration: client(pickServer(shared, index: j)), scopes: [.target(.room(room(j)))], start: .live,
                                    logger: logger)
            let started = Timestamp.monotonicNanos()
            let once = Atomic<Bool>(false)
            listenerTasks.append(Task {
                do {
                    try await listener.run(onReady: {
                        if !once.exchange(true, ordering: .relaxed) {
                            readyContinuation.yield(Double(Timestamp.monotonicNanos() - started) / 1e6)
                        }
                    }) { m in
                        Self.record(m, subscriber: j, shared: shared)
                        return true
                    }
                } catch {
                    // A subscriber that cannot start ends the wait at once.
                    readyContinuation.finish()
                    throw error
                }
            })
        }
        defer { for t in listenerTasks { t.cancel() } }
        // Give up on subscribers that are not live within 30 s.
        let readyTimeout = Task {
            try await Task.sleep(for: .seconds(30))
            readyContinuation.finish()
        }
        for await t in ready {
            connectTimes.append(t)
            if connectTimes.count == c.subscribers { break }
        }
        readyTimeout.cancel()
        if connectTimes.count < c.subscribers {
            for task in listenerTasks { task.cancel() }
            // Surface the first real failure (an unreachable server, a refused token).
            if let failure = await Self.firstFailure(listenerTasks) { throw failure }
            throw ClientError(.timeout, "subscribers were not ready within 30 s (\(connectTimes.count) of \(c.subscribers))")
        }

        // 2. Publishers send, paced when a rate is set.
        let perPublisher = c.duration == nil ? Self.split(c.messages, into: c.publishers) : Array(repeating: Int.max, count: c.publishers)
        let ticker = Task {
            while !Task.isCancelled {
                progress(Self.progress(shared, expected: nil, subscribersPerRoom: subscribersPerRoom, c: c))
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        defer { ticker.cancel() }
        let publishStart = Timestamp.monotonicNanos()
        let deadline = c.duration.map { publishStart + $0.components.seconds * 1_000_000_000 + $0.components.attoseconds / 1_000_000_000 }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for p in 0..<c.publishers {
                let source = ProbeSource(publisher: p, count: perPublisher[p], size: c.size,
                                         interval: c.rate > 0 ? Int64(1e9 * Double(c.publishers) / c.rate) : 0,
                                         deadline: deadline, shared: shared)
                let sender = Sender(configuration: client(pickServer(shared, index: c.subscribers + p)), target: .room(room(p)), logger: logger)
                group.addTask {
                    let report = try await sender.run(source: source) { _ in shared.acked.add(1, ordering: .relaxed) }
                    shared.ackedPerPublisher.withLock { $0[p] = report.acknowledged }
                }
            }
            try await group.waitForAll()
        }
        let publishEnd = Timestamp.monotonicNanos()

        // 3. Wait for the deliveries to arrive (or stop arriving).
        let sent = shared.ackedPerPublisher.withLock { $0 }
        let expected = sent.enumerated().reduce(0) { $0 + $1.element * subscribersPerRoom[$1.offset % max(c.rooms, 1)] }
        var lastCount = -1
        var lastChange = Timestamp.monotonicNanos()
        while shared.delivered.load(ordering: .relaxed) < expected {
            let now = Timestamp.monotonicNanos()
            let count = shared.delivered.load(ordering: .relaxed)
            if count != lastCount {
                lastCount = count
                lastChange = now
            } else if now - lastChange > 5_000_000_000 {
                break
            }
            progress(Self.progress(shared, expected: expected, subscribersPerRoom: subscribersPerRoom, c: c))
            try await Task.sleep(for: .milliseconds(10))
        }
        progress(Self.progress(shared, expected: expected, subscribersPerRoom: subscribersPerRoom, c: c))
        return report(shared, sent: sent, expected: expected, connectTimes: connectTimes, publishStart: publishStart, publishEnd: publishEnd)
    }

    private static func firstFailure(_ tasks: [Task<Void, any Error>]) async -> (any Error)? {
        for t in tasks {
            if case .failure(let e) = await t.result, !(e is CancellationError) { return e }
        }
        return nil
    }

    private static func split(_ total: Int, into parts: Int) -> [Int] {
        (0..<parts).map { total / parts + ($0 < total % parts ? 1 : 0) }
    }

    private static func progress(_ s: Shared, expected: Int?, subscribersPerRoom: [Int], c: LoadConfiguration) -> LoadProgress {
        let sent = s.sent.load(ordering: .relaxed)
        let guess = expected ?? (c.duration == nil ? c.messages * c.subscribers / max(c.rooms, 1) : sent * c.subscribers / max(c.rooms, 1))
        return LoadProgress(sent: sent, acked: s.acked.load(ordering: .relaxed), delivered: s.delivered.load(ordering: .relaxed), expected: guess)
    }

    /// Parses a probe body and records latency, duplicates and arrival.
    private static func record(_ m: MessageView, subscriber j: Int, shared: Shared) {
        let now = Timestamp.monotonicNanos()
        var fields = m.body.utf8.split(separator: UInt8(ascii: ":"), maxSplits: 3, omittingEmptySubsequences: false).makeIterator()
        guard let p = fields.next().flatMap({ Int(Substring($0)) }), let n = fields.next().flatMap({ Int(Substring($0)) }),
              let sentAt = fields.next().flatMap({ Int64(Substring($0)) })
        else { return }
        shared.delivered.add(1, ordering: .relaxed)
        shared.subscribers[j].withLock { s in
            guard p < s.seen.count else { return }
            s.received += 1
            if s.firstNanos == 0 { s.firstNanos = now }
            s.lastNanos = now
            let word = n / 64, bit = UInt64(1) << UInt64(n % 64)
            if s.seen[p].count <= word { s.seen[p] += Array(repeating: 0, count: word - s.seen[p].count + 1) }
            if s.seen[p][word] & bit != 0 {
                s.duplicates += 1
            } else {
                s.seen[p][word] |= bit
                s.unique += 1
            }
            _ = s.histogram.record(UInt64(max(now - sentAt, 1)))
        }
    }

    private func report(_ shared: Shared, sent: [Int], expected: Int, connectTimes: [Double], publishStart: Int64, publishEnd: Int64) -> LoadReport {
        let c = configuration
        var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 600_000_000_000, numberOfSignificantValueDigits: .three)
        var unique = 0, duplicates = 0, delivered = 0
        var lastArrival: Int64 = publishEnd
        var rates: [Double] = []
        for s in shared.subscribers {
            s.withLock { st in
                histogram.add(st.histogram)
                unique += st.unique
                duplicates += st.duplicates
                delivered += st.received
                lastArrival = max(lastArrival, st.lastNanos)
                let seconds = Double(st.lastNanos - publishStart) / 1e9
                rates.append(seconds > 0 ? Double(st.received) / seconds : 0)
            }
        }
        let ms = { (v: UInt64) in Double(v) / 1e6 }
        let totalSent = sent.reduce(0, +)
        let publishSeconds = Double(publishEnd - publishStart) / 1e9
        let deliverySeconds = Double(lastArrival - publishStart) / 1e9
        let sorted = connectTimes.sorted()
        return LoadReport(
            publishers: c.publishers, subscribers: c.subscribers, rooms: c.rooms, size: c.size,
            sent: shared.sent.load(ordering: .relaxed), acked: totalSent, expected: expected, delivered: delivered,
            lost: max(expected - unique, 0), duplicated: duplicates,
            connectMsMedian: sorted.isEmpty ? 0 : sorted[sorted.count / 2], connectMsMax: sorted.last ?? 0,
            publishSeconds: publishSeconds, publishRate: publishSeconds > 0 ? Double(totalSent) / publishSeconds : 0,
            deliverySeconds: deliverySeconds, deliveryRate: deliverySeconds > 0 ? Double(delivered) / deliverySeconds : 0,
            deliveryMBps: deliverySeconds > 0 ? Double(delivered * c.size) / deliverySeconds / 1e6 : 0,
            latencyMs: histogram.totalCount == 0 ? [:] : [
                "p50": ms(histogram.valueAtPercentile(50)), "p90": ms(histogram.valueAtPercentile(90)),
                "p99": ms(histogram.valueAtPercentile(99)), "p99.9": ms(histogram.valueAtPercentile(99.9)), "max": ms(histogram.max),
            ],
            perSubscriberRateMin: rates.min() ?? 0, perSubscriberRateMax: rates.max() ?? 0)
    }

    /// Generates probe bodies for one publisher, paced by `interval` nanoseconds when positive.
    private final class ProbeSource: MessageSource {
        let publisher: Int
        let count: Int
        let size: Int
        let interval: Int64
        let deadline: Int64?
        let shared: Shared
        let state = Mutex<(n: Int, next: Int64)>((0, 0))

        init(publisher: Int, count: Int, size: Int, interval: Int64, deadline: Int64?, shared: Shared) {
            self.publisher = publisher
            self.count = count
            self.size = size
            self.interval = interval
            self.deadline = deadline
            self.shared = shared
        }

        func next() async throws -> [UInt8]? {
            let now = Timestamp.monotonicNanos()
            if let deadline, now >= deadline { return nil }
            let (n, due) = state.withLock { s -> (Int, Int64) in
                if s.next == 0 { s.next = now }
                defer { s.n += 1; s.next += interval }
                return (s.n, s.next)
            }
            guard n < count else { return nil }
            if interval > 0, due > now {
                try await Task.sleep(for: .nanoseconds(due - now))
            }
            var body = Array("\(publisher):\(n):\(Timestamp.monotonicNanos()):".utf8)
            if body.count < size { body += Array(repeating: UInt8(ascii: "x"), count: size - body.count) }
            shared.sent.add(1, ordering: .relaxed)
            return body
        }
    }
}
