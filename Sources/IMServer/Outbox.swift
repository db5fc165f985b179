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

    init(limit: Int = ServerConfiguration.maxQueuedFrames) {
        (stream, continuation) = AsyncStream.makeStream(of: Item.self, bufferingPolicy: .bufferingOldest(limit))
    }

    /// Queues a text frame.
    func send(_ text: String) {
        if case .dropped = continuation.yield(.text(text)) {
            overflowed.store(true, ordering: .relaxed)
            continuation.finish()
        }
    }

    /// Queues a close frame after everything already queued, then ends the stream.
    func close(_ code: WebSocketErrorCode, reason: String) {
        continuation.yield(.close(code, reason))
        continuation.finish()
    }

    /// Ends the stream (the connection is gone).
    func finish() {
        continuation.finish()
    }

    /// Whether frames were refused because the queue was full.
    var didOverflow: Bool { overflowed.load(ordering: .relaxed) }
}
