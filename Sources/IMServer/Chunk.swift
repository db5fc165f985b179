import IMStorage
import NIOCore

/// Messages framed once for every reader that sees them the same way: the `msg` frames of one
/// conversation under one label (or of one reader's direct conversations), back to back, as the final
/// unmasked WebSocket frames that go on the wire. Readers share the bytes; each writes the part after
/// the position it has reached.
struct Chunk: Sendable {
    struct Entry: Sendable {
        /// The message's `seq` in its conversation, and its store-wide id.
        var seq: Int64
        var id: Int64
        /// Where the frame, and its JSON payload, start in `frames`.
        var frame: Int32
        var payload: Int32
    }

    /// The frames, back to back.
    private(set) var frames: ByteBuffer
    /// One entry per frame, in order.
    private(set) var entries: [Entry] = []

    init(capacity: Int = 4096) {
        frames = ByteBufferAllocator().buffer(capacity: capacity)
    }

    var isEmpty: Bool { entries.isEmpty }

    /// Frames one more message for `label`.
    mutating func append(_ m: StoredMessage, label: String, encoder: inout FrameEncoder) {
        let (frame, payload) = encoder.appendMessage(m, label: label, into: &frames)
        entries.append(Entry(seq: m.seq, id: m.id, frame: Int32(frame), payload: Int32(payload)))
    }

    /// The position of entry `i`: its `seq`, or its id for a reader of all direct conversations.
    func position(_ i: Int, byID: Bool) -> Int64 {
        byID ? entries[i].id : entries[i].seq
    }

    /// The first entry after `position`, or nil when the reader has seen them all.
    func firstIndex(after position: Int64, byID: Bool) -> Int? {
        // Usually the reader is live and every frame is new; replays may overlap the start.
        if let first = entries.first, (byID ? first.id : first.seq) > position { return 0 }
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if self.position(mid, byID: byID) > position { hi = mid } else { lo = mid + 1 }
        }
        return lo < entries.count ? lo : nil
    }

    /// The frames from entry `i` to the end, sharing storage.
    func frames(from i: Int) -> ByteBuffer {
        let start = Int(entries[i].frame)
        return frames.getSlice(at: start, length: frames.writerIndex - start)!
    }

    /// The JSON text of entry `i` (for a reader whose frames are compressed one by one).
    func payload(_ i: Int) -> ByteBuffer {
        let start = Int(entries[i].payload)
        let end = i + 1 < entries.count ? Int(entries[i + 1].frame) : frames.writerIndex
        return frames.getSlice(at: start, length: end - start)!
    }

    /// Bytes from entry `i` to the end.
    func byteCount(from i: Int) -> Int {
        frames.writerIndex - Int(entries[i].frame)
    }
}
