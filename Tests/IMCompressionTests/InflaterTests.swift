import IMCompression
import Testing

@Suite struct InflaterTests {
    static let sample = ChatText.text(bytes: 20_000)

    @Test(arguments: ZlibFormat.allCases)
    func byteByByteInput(format: ZlibFormat) throws {
        let compressed = try Deflater.compress(Self.sample, configuration: DeflateConfiguration(format: format))
        let inflater = try Inflater(configuration: InflateConfiguration(format: format))
        var out: [UInt8] = []
        for byte in compressed {
            #expect(!inflater.isFinished)
            try inflater.decompress([byte], into: &out)
        }
        try inflater.finish()
        #expect(out == Self.sample)
    }

    @Test(arguments: ZlibFormat.allCases)
    func splitAtEveryOffset(format: ZlibFormat) throws {
        let message = Array("@alice the deploy is done 🚀 https://example.com/x".utf8)
        let compressed = try Deflater.compress(message, configuration: DeflateConfiguration(format: format))
        for split in 0...compressed.count {
            let inflater = try Inflater(configuration: InflateConfiguration(format: format))
            var out: [UInt8] = []
            try inflater.decompress(Array(compressed[..<split]), into: &out)
            try inflater.decompress(Array(compressed[split...]), into: &out)
            try inflater.finish()
            #expect(out == message, "split at \(split)")
        }
    }

    @Test func multiMemberGzipDecodesLikeGzip() throws {
        let a = Array("first member\n".utf8)
        let b = Array("second member\n".utf8)
        let joined = try Deflater.compress(a) + Deflater.compress(b)
        #expect(try Inflater.decompress(joined) == a + b)
        let single = try Inflater(configuration: InflateConfiguration(multiMember: false))
        var out: [UInt8] = []
        #expect(throws: CompressionError.trailingData) { try single.decompress(joined, into: &out) }
    }

    @Test func garbageAfterGzipMemberIsTrailingData() throws {
        let data = try Deflater.compress(Self.sample) + Array("junk".utf8)
        #expect(throws: CompressionError.trailingData) { try Inflater.decompress(data) }
    }

    @Test func trailingDataAfterZlibStream() throws {
        let data = try Deflater.compress(Self.sample, configuration: DeflateConfiguration(format: .zlib)) + [0]
        #expect(throws: CompressionError.trailingData) {
            try Inflater.decompress(data, configuration: InflateConfiguration(format: .zlib))
        }
    }

    @Test func notGzipProducesNothing() throws {
        let inflater = try Inflater()
        var out: [UInt8] = []
        #expect(throws: CompressionError.notGzip) { try inflater.decompress(Array("hello world".utf8), into: &out) }
        #expect(out.isEmpty)
        // The check also works when the magic number arrives one byte at a time.
        let slow = try Inflater()
        try slow.decompress([0x1f], into: &out)
        #expect(throws: CompressionError.notGzip) { try slow.decompress([0x00], into: &out) }
    }

    @Test func wrongFramingIsReported() throws {
        let gzip = try Deflater.compress(Self.sample)
        #expect(throws: CompressionError.wrongFormat) {
            try Inflater.decompress(gzip, configuration: InflateConfiguration(format: .zlib))
        }
    }

    @Test(arguments: ZlibFormat.allCases)
    func truncatedInputIsDetected(format: ZlibFormat) throws {
        let compressed = try Deflater.compress(Self.sample, configuration: DeflateConfiguration(format: format))
        for cut in [1, compressed.count / 2, compressed.count - 1] {
            #expect(throws: CompressionError.truncatedInput) {
                try Inflater.decompress(Array(compressed[..<cut]), configuration: InflateConfiguration(format: format))
            }
        }
        #expect(throws: CompressionError.truncatedInput) {
            try Inflater.decompress([], configuration: InflateConfiguration(format: format))
        }
    }

    @Test func corruptDataIsDetected() throws {
        var gzip = try Deflater.compress(Self.sample)
        gzip[gzip.count - 6] ^= 0xff  // inside the CRC-32
        #expect(throws: CompressionError.corruptData) { try Inflater.decompress(gzip) }

        var zlib = try Deflater.compress(Self.sample, configuration: DeflateConfiguration(format: .zlib))
        zlib[zlib.count - 1] ^= 0x01  // Adler-32
        #expect(throws: CompressionError.corruptData) {
            try Inflater.decompress(zlib, configuration: InflateConfiguration(format: .zlib))
        }

        // A reserved block type (BTYPE = 11) is invalid deflate.
        #expect(throws: CompressionError.corruptData) {
            try Inflater.decompress([0x07, 0x00], configuration: InflateConfiguration(format: .raw))
        }
    }

    @Test func errorMessagesAreClear() {
        #expect(CompressionError.notGzip.description == "not in gzip format")
        #expect(CompressionError.corruptData.with(detail: "invalid distance too far back").description
            == "corrupt compressed data (invalid distance too far back)")
        #expect(CompressionError.corruptData.with(detail: "x") == .corruptData)
        #expect(CompressionError.corruptData != .truncatedInput)
    }

    @Test func outputCapStopsABomb() throws {
        let zeros = [UInt8](repeating: 0, count: 10_000_000)
        let bomb = try Deflater.compress(zeros, configuration: DeflateConfiguration(level: 9))
        #expect(bomb.count < 20_000)
        let limit = 1_000_000
        let inflater = try Inflater(configuration: InflateConfiguration(maxOutput: limit))
        var out: [UInt8] = []
        #expect(throws: CompressionError.outputLimitExceeded) { try inflater.decompress(bomb, into: &out) }
        #expect(out.count <= limit)
        // Exactly at the limit is allowed.
        let exact = try Inflater.decompress(
            try Deflater.compress(Array(zeros[..<limit])), configuration: InflateConfiguration(maxOutput: limit))
        #expect(exact.count == limit)
    }

    @Test func sinkOutputStaysInBufferSizedPieces() throws {
        let zeros = [UInt8](repeating: 0, count: 5_000_000)
        let bomb = try Deflater.compress(zeros)
        let inflater = try Inflater(configuration: InflateConfiguration(bufferSize: 4096))
        var total = 0
        try bomb.withUnsafeBytes { bytes in
            try inflater.decompress(bytes) { chunk in
                #expect(chunk.count <= 4096)
                total += chunk.count
            }
        }
        try inflater.finish()
        #expect(total == zeros.count)
    }

    @Test(arguments: [ZlibFormat.zlib, .raw])
    func presetDictionaryRoundTrip(format: ZlibFormat) throws {
        let dictionary = Array("the deploy is done https://git.example.com/team/repo/pull/".utf8)
        let message = Array("@bob the deploy is done https://git.example.com/team/repo/pull/42".utf8)
        let plain = try Deflater.compress(message, configuration: DeflateConfiguration(format: format))
        let primed = try Deflater.compress(message, configuration: DeflateConfiguration(format: format, dictionary: dictionary))
        #expect(primed.count < plain.count)
        #expect(try Inflater.decompress(primed, configuration: InflateConfiguration(format: format, dictionary: dictionary)) == message)
        if format == .zlib {
            #expect(throws: CompressionError.dictionaryNeeded) {
                try Inflater.decompress(primed, configuration: InflateConfiguration(format: .zlib))
            }
            #expect(throws: CompressionError.dictionaryMismatch) {
                try Inflater.decompress(primed, configuration: InflateConfiguration(format: .zlib, dictionary: [1, 2, 3, 4]))
            }
        }
    }

    @Test func resetAllowsReuse() throws {
        let compressed = try Deflater.compress(Self.sample, configuration: DeflateConfiguration(format: .raw))
        let inflater = try Inflater(configuration: InflateConfiguration(format: .raw))
        for _ in 0..<3 {
            var out: [UInt8] = []
            try inflater.decompress(compressed, into: &out)
            try inflater.finish()
            #expect(out == Self.sample)
            try inflater.reset()
        }
    }
}
