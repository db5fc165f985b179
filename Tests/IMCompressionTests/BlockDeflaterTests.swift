import IMCompression
import Testing

/// pigz's framing, in memory: blocks compressed apart, primed with the input before them, make one gzip
/// stream when put together with a header and a trailer whose CRC is combined from the blocks'.
@Suite struct BlockDeflaterTests {
    static func gzipInBlocks(_ input: [UInt8], blockSize: Int, level: Int = 6) throws -> [UInt8] {
        var out = GzipFraming.header(level: level)
        var crc: UInt32 = 0
        let deflater = try BlockDeflater(level: level)
        let starts = Array(stride(from: 0, to: max(input.count, 1), by: blockSize))
        try input.withUnsafeBytes { all in
            for (n, start) in starts.enumerated() {
                let end = min(start + blockSize, input.count)
                let block = UnsafeRawBufferPointer(rebasing: all[start..<end])
                let dictionary = UnsafeRawBufferPointer(rebasing: all[max(0, start - GzipFraming.dictionarySize)..<start])
                try deflater.compress(block, dictionary: dictionary, last: n == starts.count - 1, into: &out)
                crc = GzipFraming.combine(crc, GzipFraming.crc32(block), lengthOfB: block.count)
            }
        }
        return out + GzipFraming.trailer(crc: crc, length: UInt64(input.count))
    }

    @Test(arguments: [0, 1, 1000, 100_000, 300_001])
    func blocksMakeOneGzipStream(size: Int) throws {
        let input = Array(ChatText.text(bytes: 300_001).prefix(size))
        for blockSize in [4096, 128 * 1024] {
            let gz = try Self.gzipInBlocks(input, blockSize: blockSize)
            #expect(try Inflater.decompress(gz, configuration: InflateConfiguration(format: .gzip)) == input, "\(size) in \(blockSize)-byte blocks")
        }
    }

    @Test func combinedCRCIsTheWholeInputsCRC() {
        let input = ChatText.text(bytes: 50_000)
        let whole = input.withUnsafeBytes { GzipFraming.crc32($0) }
        let a = input[..<12_345].withUnsafeBytes { GzipFraming.crc32($0) }
        let b = input[12_345...].withUnsafeBytes { GzipFraming.crc32($0) }
        #expect(GzipFraming.combine(a, b, lengthOfB: input.count - 12_345) == whole)
        #expect(GzipFraming.trailer(crc: 0x0403_0201, length: (1 << 32) + 5) == [1, 2, 3, 4, 5, 0, 0, 0])
    }

    /// Priming with the history keeps the ratio: 32 KiB blocks with it are within 1 % of one stream,
    /// and smaller than the same blocks without it.
    @Test func primingKeepsTheRatio() throws {
        let input = ChatText.text(bytes: 400_000)
        let blocks = try Self.gzipInBlocks(input, blockSize: 32 * 1024).count
        let one = try Deflater.compress(input, configuration: DeflateConfiguration(format: .gzip, level: 6)).count
        #expect(Double(blocks) / Double(one) < 1.01, "\(blocks) vs \(one)")
        var unprimed = 0
        let deflater = try BlockDeflater(level: 6)
        try input.withUnsafeBytes { all in
            for start in stride(from: 0, to: input.count, by: 32 * 1024) {
                var out: [UInt8] = []
                try deflater.compress(UnsafeRawBufferPointer(rebasing: all[start..<min(start + 32 * 1024, input.count)]),
                                      dictionary: UnsafeRawBufferPointer(start: nil, count: 0), last: false, into: &out)
                unprimed += out.count
            }
        }
        #expect(unprimed > blocks)
    }
}
