import IMCompression
import Testing

@Suite struct PerMessageDeflateTests {
    static let messages = ChatText.messages(300)

    @Test(arguments: [true, false], [9, 12, 15])
    func roundTrip(contextTakeover: Bool, windowBits: Int) throws {
        let settings = PerMessageDeflateConfiguration(windowBits: windowBits, contextTakeover: contextTakeover)
        let sender = try PerMessageDeflater(configuration: settings)
        let receiver = try PerMessageInflater(configuration: settings)
        for message in Self.messages {
            let payload = try sender.compress(message)
            #expect(payload.suffix(4) != [0x00, 0x00, 0xff, 0xff])
            #expect(try receiver.decompress(payload) == message)
        }
    }

    @Test func rfc7692Example() throws {
        // RFC 7692 §7.2.3.1: "Hello" compressed alone is f2 48 cd c9 c9 07 00.
        let sender = try PerMessageDeflater(configuration: PerMessageDeflateConfiguration(contextTakeover: false))
        let hello = Array("Hello".utf8)
        #expect(try sender.compress(hello) == [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        #expect(try sender.compress(hello) == [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        // §7.2.3.2: with context takeover the second "Hello" is a back-reference.
        let takeover = try PerMessageDeflater()
        #expect(try takeover.compress(hello) == [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00])
        #expect(try takeover.compress(hello) == [0xf2, 0x00, 0x11, 0x00, 0x00])
        let receiver = try PerMessageInflater()
        #expect(try receiver.decompress([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]) == hello)
        #expect(try receiver.decompress([0xf2, 0x00, 0x11, 0x00, 0x00]) == hello)
        // §7.2.3.3: a stored (uncompressed) block, and §7.2.3.4: a final block (BFINAL = 1).
        #expect(try PerMessageInflater().decompress([0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]) == hello)
        let final = try PerMessageInflater()
        #expect(try final.decompress([0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00]) == hello)
        #expect(try final.decompress([0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]) == hello)
    }

    @Test func emptyMessage() throws {
        let sender = try PerMessageDeflater()
        let payload = try sender.compress([])
        #expect(payload == [0x00])
        #expect(try PerMessageInflater().decompress(payload) == [])
    }

    @Test func contextTakeoverCompressesRepeatsBetter() throws {
        let alone = try PerMessageDeflater(configuration: PerMessageDeflateConfiguration(contextTakeover: false))
        let kept = try PerMessageDeflater()
        var aloneBytes = 0
        var keptBytes = 0
        for message in Self.messages {
            aloneBytes += try alone.compress(message).count
            keptBytes += try kept.compress(message).count
        }
        #expect(keptBytes < aloneBytes * 3 / 4)
    }

    @Test func dictionaryRoundTrip() throws {
        let dictionary = DictionaryTrainer.train(Self.messages)
        #expect(!dictionary.isEmpty)
        let settings = PerMessageDeflateConfiguration(contextTakeover: false, dictionary: dictionary)
        let sender = try PerMessageDeflater(configuration: settings)
        let receiver = try PerMessageInflater(configuration: settings)
        for message in Self.messages {
            #expect(try receiver.decompress(try sender.compress(message)) == message)
        }
    }

    @Test func messageSizeCapAppliesPerMessage() throws {
        let settings = PerMessageDeflateConfiguration(maxMessageSize: 1000)
        let sender = try PerMessageDeflater(configuration: settings)
        let receiver = try PerMessageInflater(configuration: settings)
        let small = [UInt8](repeating: 0x61, count: 1000)
        for _ in 0..<5 {
            #expect(try receiver.decompress(try sender.compress(small)) == small)
        }
        let big = try PerMessageDeflater(configuration: PerMessageDeflateConfiguration(contextTakeover: false))
            .compress([UInt8](repeating: 0, count: 1_000_000))
        let fresh = try PerMessageInflater(configuration: settings)
        #expect(throws: CompressionError.outputLimitExceeded) { try fresh.decompress(big) }
    }

    @Test func corruptPayloadIsRejected() throws {
        #expect(throws: CompressionError.corruptData) { try PerMessageInflater().decompress([0xff, 0xff, 0xff]) }
    }
}
