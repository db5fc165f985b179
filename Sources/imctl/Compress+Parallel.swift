import Foundation
import IMCompression
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `compress -c` on several cores, pigz's way: the input is cut into 128 KiB blocks, each compressed by
/// one of `threads` workers primed with the 32 KiB before it, and written in order as one gzip stream
/// (see `BlockDeflater`). This thread reads blocks into a ring of slots and writes them out in order
/// as they are done; the workers never wait for a batch to finish, only for a block to exist. Memory
/// stays a few MiB whatever the input.
struct ParallelGzipWriter {
    let level: Int
    let threads: Int
    /// Slots in the ring: blocks read ahead of the one being written.
    var slots: Int { max(2, threads * 4) }

    /// Compresses `inputs` (file descriptors, read to their ends, in order, as one stream) to `write`.
    /// - Parameter report: called after each block written with the bytes read and written so far.
    func run(inputs: [(fd: Int32, name: String)], write: (UnsafeRawBufferPointer) throws -> Void,
             report: (_ read: Int, _ written: Int) -> Void) throws {
        let ring = Ring(slots: slots)
        let workers = try (0..<threads).map { _ in try BlockDeflater(level: level) }.map { Owned(deflater: $0) }
        for owned in workers {
            Thread { ring.work(with: owned.deflater) }.start()
        }
        defer { ring.stop() }

        var source = inputs.makeIterator()
        var current = source.next()
        /// The last 32 KiB read: the next block's dictionary.
        let history = UnsafeMutableRawBufferPointer.allocate(byteCount: GzipFraming.dictionarySize, alignment: 16)
        defer { history.deallocate() }
        var kept = 0

        try GzipFraming.header(level: level).withUnsafeBytes { try write($0) }
        var written = 10
        var crc: UInt32 = 0
        var total = 0
        var nextRead = 0
        var nextWrite = 0
        var ended = false
        while true {
            // Read ahead while there are free slots.
            while !ended && nextRead - nextWrite < ring.count {
                let slot = ring.slot(nextRead)
                slot.length = 0
                while slot.length < GzipFraming.blockSize, let input = current {
                    let n = read(input.fd, slot.input + slot.length, GzipFraming.blockSize - slot.length)
                    if n < 0 {
                        if errno == EINTR { continue }
                        throw CompressIO.Failure(message: "\(input.name): \(CompressIO.errorText())")
                    }
                    if n == 0 { current = source.next() } else { slot.length += n }
                }
                // A block ending the input carries deflate's final block; when the input ends exactly
                // at a block's end, an empty block follows to carry it.
                ended = current == nil
                slot.isLast = ended
                memcpy(slot.dictionary, history.baseAddress!, kept)
                slot.dictionaryLength = kept
                // The next block's history: the last 32 KiB of what was read so far.
                let fromBlock = min(slot.length, GzipFraming.dictionarySize)
                let fromOld = min(kept, GzipFraming.dictionarySize - fromBlock)
                memmove(history.baseAddress!, history.baseAddress! + kept - fromOld, fromOld)
                memcpy(history.baseAddress! + fromOld, slot.input + slot.length - fromBlock, fromBlock)
                kept = fromOld + fromBlock
                ring.publish(nextRead)
                nextRead += 1
            }
            if nextWrite == nextRead { break }
            // Write the oldest block once it is done.
            let slot = ring.waitDone(nextWrite)
            if let failure = slot.failure { throw failure }
            try slot.output.withUnsafeBytes { try write($0) }
            written += slot.output.count
            crc = GzipFraming.combine(crc, slot.crc, lengthOfB: slot.length)
            total += slot.length
            ring.release(nextWrite)
            nextWrite += 1
            report(total, written)
        }
        try GzipFraming.trailer(crc: crc, length: UInt64(total)).withUnsafeBytes { try write($0) }
    }
}

/// One block in the ring: its input, its dictionary (copied, since the block before may be overwritten
/// while this one is compressed), its output.
private final class Slot {
    let input = UnsafeMutableRawPointer.allocate(byteCount: GzipFraming.blockSize, alignment: 16)
    let dictionary = UnsafeMutableRawPointer.allocate(byteCount: GzipFraming.dictionarySize, alignment: 16)
    var length = 0
    var dictionaryLength = 0
    var isLast = false
    var output: [UInt8] = []
    var crc: UInt32 = 0
    var failure: CompressionError?

    deinit {
        input.deallocate()
        dictionary.deallocate()
    }

    func compress(with deflater: BlockDeflater) {
        let piece = UnsafeRawBufferPointer(start: input, count: length)
        output.removeAll(keepingCapacity: true)
        failure = nil
        do throws(CompressionError) {
            try deflater.compress(piece, dictionary: UnsafeRawBufferPointer(start: dictionary, count: dictionaryLength),
                                  last: isLast, into: &output)
        } catch {
            failure = error
        }
        crc = GzipFraming.crc32(piece)
    }
}

/// The slots and who may touch them: a slot is the reader's while free, a worker's from `publish` until
/// it is done, the writer's from `waitDone` until `release`. The lock orders every hand-over, so the
/// slots need no lock of their own: hence unchecked.
private final class Ring: @unchecked Sendable {
    private enum State { case free, ready, taken, done }
    private let slots: [Slot]
    private var states: [State]
    private var readyQueue: [Int] = []   // block numbers published, oldest first, not yet taken
    private var readyHead = 0
    private var stopped = false
    private let condition = NSCondition()

    init(slots: Int) {
        self.slots = (0..<slots).map { _ in Slot() }
        states = Array(repeating: .free, count: slots)
    }

    var count: Int { slots.count }

    func slot(_ block: Int) -> Slot { slots[block % slots.count] }

    func publish(_ block: Int) {
        condition.lock()
        states[block % slots.count] = .ready
        readyQueue.append(block)
        condition.broadcast()
        condition.unlock()
    }

    func waitDone(_ block: Int) -> Slot {
        condition.lock()
        while states[block % slots.count] != .done { condition.wait() }
        condition.unlock()
        return slots[block % slots.count]
    }

    func release(_ block: Int) {
        condition.lock()
        states[block % slots.count] = .free
        condition.unlock()
    }

    /// A worker: takes the oldest ready block, compresses it, marks it done; until `stop`.
    func work(with deflater: BlockDeflater) {
        while true {
            condition.lock()
            while readyHead == readyQueue.count && !stopped { condition.wait() }
            if stopped {
                condition.unlock()
                return
            }
            let block = readyQueue[readyHead]
            readyHead += 1
            if readyHead > 1024 {
                readyQueue.removeFirst(readyHead)
                readyHead = 0
            }
            states[block % slots.count] = .taken
            condition.unlock()

            slots[block % slots.count].compress(with: deflater)

            condition.lock()
            states[block % slots.count] = .done
            condition.broadcast()
            condition.unlock()
        }
    }

    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
    }
}

/// A deflater handed to the one worker thread that uses it.
private struct Owned: @unchecked Sendable {
    let deflater: BlockDeflater
}
