import IMCompression
import Testing

@Suite struct DeflaterTests {
    static let sample = ChatText.text(bytes: 40_000)

    @Test(arguments: ZlibFormat.allCases, Array(0...9))
    func roundTripEveryFormatAndLevel(format: ZlibFormat, level: Int) throws {
        let compressed = try Deflater.compress(Self.sample, configuration: DeflateConfiguration(format: format, level: level))
        let decoded = try Inflater.decompress(compressed, configuration: InflateConfiguration(format: format))
        #expect(decoded == Self.sample)
        if level > 0 { #expect(compressed.count < Self.sample.count / 2) }
    }

    @Test(arguments: [9, 12, 15], [1, 8, 9])
    func roundTripWindowAndMemLevel(windowBits: Int, memLevel: Int) throws {
        let configuration = DeflateConfiguration(format: .zlib, windowBits: windowBits, memLevel: memLevel)
        let compressed = try Deflater.compress(Self.sample, configuration: configuration)
        #expect(try Inflater.decompress(compressed, configuration: InflateConfiguration(format: .zlib, windowBits: windowBits)) == Self.sample)
    }

    @Test(arguments: [CompressionStrategy.default, .filtered, .huffmanOnly, .rle, .fixed])
    func roundTripEveryStrategy(strategy: CompressionStrategy) throws {
        let compressed = try Deflater.compress(Self.sample, configuration: DeflateConfiguration(strategy: strategy))
        #expect(try Inflater.decompress(compressed) == Self.sample)
    }

    @Test func emptyAndIncompressibleInputs() throws {
        for input in [[], [0x41], ChatText.random(100_000)] as [[UInt8]] {
            for format in ZlibFormat.allCases {
                let compressed = try Deflater.compress(input, configuration: DeflateConfiguration(format: format))
                #expect(try Inflater.decompress(compressed, configuration: InflateConfiguration(format: format)) == input)
            }
        }
    }

    @Test func streamingInputInPiecesMatchesOneShot() throws {
        let whole = try Deflater.compress(Self.sample)
        let deflater = try Deflater()
        var pieces: [UInt8] = []
        var offset = 0
        var size = 1
        while offset < Self.sample.count {
            let end = min(Self.sample.count, offset + size)
            try deflater.compress(Array(Self.sample[offset..<end]), into: &pieces)
            offset = end
            size = size * 3 + 1
        }
        try deflater.finish(into: &pieces)
        #expect(pieces == whole)
        #expect(deflater.isFinished)
    }

    @Test func gzipOutputHasGzipHeaderAndSize() throws {
        let compressed = try Deflater.compress(Self.sample)
        #expect(compressed.prefix(2) == [0x1f, 0x8b])
        // The gzip trailer ends with the input size modulo 2^32, little-endian.
        let size = compressed.suffix(4).reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect(size == Self.sample.count)
    }

    @Test func syncFlushEndsOnByteBoundaryWithEmptyStoredBlock() throws {
        let deflater = try Deflater(configuration: DeflateConfiguration(format: .raw))
        var out: [UInt8] = []
        try deflater.compress(Array("hello".utf8), flush: .sync, into: &out)
        #expect(out.suffix(4) == [0x00, 0x00, 0xff, 0xff])
        let inflater = try Inflater(configuration: InflateConfiguration(format: .raw))
        var decoded: [UInt8] = []
        try inflater.decompress(out, into: &decoded)
        #expect(decoded == Array("hello".utf8))
    }

    @Test func resetStartsAFreshStream() throws {
        let deflater = try Deflater(configuration: DeflateConfiguration(format: .zlib))
        var first: [UInt8] = []
        try deflater.compress(Self.sample, flush: .finish, into: &first)
        #expect(throws: CompressionError.streamFinished) {
            var more: [UInt8] = []
            try deflater.compress([1, 2, 3], into: &more)
        }
        try deflater.reset()
        var second: [UInt8] = []
        try deflater.compress(Self.sample, flush: .finish, into: &second)
        #expect(first == second)
    }

    @Test func sinkSeesEveryByte() throws {
        let deflater = try Deflater(configuration: DeflateConfiguration(bufferSize: 100))
        var collected: [UInt8] = []
        try Self.sample.withUnsafeBytes { bytes in
            try deflater.compress(bytes, flush: .finish) { chunk in
                #expect(chunk.count <= 100)
                collected.append(contentsOf: chunk)
            }
        }
        #expect(try Inflater.decompress(collected) == Self.sample)
    }

    @Test func invalidParametersAreRejected() {
        #expect(throws: CompressionError.invalidParameter) { try Deflater(configuration: DeflateConfiguration(level: 10)) }
        #expect(throws: CompressionError.invalidParameter) { try Deflater(configuration: DeflateConfiguration(windowBits: 8)) }
        #expect(throws: CompressionError.invalidParameter) { try Deflater(configuration: DeflateConfiguration(memLevel: 0)) }
        #expect(throws: CompressionError.invalidParameter) { try Inflater(configuration: InflateConfiguration(windowBits: 16)) }
        #expect(throws: CompressionError.dictionaryNotSupported) {
            try Deflater(configuration: DeflateConfiguration(format: .gzip, dictionary: [1, 2, 3]))
        }
        #expect(throws: CompressionError.dictionaryNotSupported) {
            try Inflater(configuration: InflateConfiguration(format: .gzip, dictionary: [1, 2, 3]))
        }
    }

    @Test func memoryFormulasMatchZlibDocumentation() {
        #expect(ZlibMemory.deflate(windowBits: 15, memLevel: 8) == 256 * 1024)
        #expect(ZlibMemory.inflate(windowBits: 15) == 32 * 1024 + 7 * 1024)
        #expect(DeflateConfiguration(windowBits: 9, memLevel: 1).estimatedMemory == 2048 + 1024)
    }
}
