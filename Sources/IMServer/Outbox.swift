import NIOWebSocket
import Synchronization
import WSCore

/// The frames waiting to be written to one connection, written in order by its writer task.
///
/// Bounded: a connection that falls `ServerConfiguration.maxQueuedFrames` behind is closed rather than
/// allowed to grow the server's memory; its client resumes after the last `seq` it got.
final class Outbox: Sendable {
    enum Item: Sendable {
        case text(String)
        case close(WebSocketErrorCode, String)
    }

    let stream: AsyncStream<Item>
    private let continuation: AsyncStream<Item>.Continuation
    private let overflowed = Atomic<Bool>(false)
    private let queued = Atomic<Int>(0)

    init(limit: Int = ServerConfiguration.maxQueuedFrames) {
        (stream, continuation) = AsyncStream.makeStream(of: Item.self, bufferingPolicy: .bufferingOldest(limit))
    }

    /// Queues a text frame.
    func send(_ text: String) {
        queued.add(1, ordering: .relaxed)
        if case .dropped = continuation.yield(.text(text)) {
            overflowed.store(true, ordering: .relaxed)
            continuation.finish()
        }
    }

    /// Queues a close frame after everything already queued, then ends the stream.
    func close(_ code: WebSocketErrorCode, reason: String) {
        queued.add(1, ordering: .relaxed)
        continuation.yield(.close(code, reason))
        continuation.finish()
    }

    /// Ends the stream (the connection is gone).
    func finish() {
        continuation.finish()
    }

    /// Called by the writer for each frame it takes off the queue.
    func taken() {
        queued.subtract(1, ordering: .relaxed)
    }

    /// Frames queued and not yet written.
    var backlog: Int { queued.load(ordering: .relaxed) }

    /// Waits while the backlog is above `limit`: replays use it so that a long history streams at the
    /// reader's pace instead of filling the queue (live fan-out never waits; it closes slow readers).
    func waitForRoom(below limit: Int = ServerConfiguration.maxQueuedFrames / 4) async throws {
        while backlog > limit {
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Whether frames were refused because the queue was full.
    var didOverflow: Bool { overflowed.load(ordering: .relaxed) }
}
