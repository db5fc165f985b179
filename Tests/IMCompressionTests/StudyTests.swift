import IMCompression
import Testing

@Suite struct StudyTests {
    static let quick = Stopwatch(minRuns: 1, minTotal: .zero, maxRuns: 1)

    @Test func levelStudyReportsEveryLevel() throws {
        let input = ChatText.text(bytes: 50_000)
        let rows = try LevelStudy.measure(input, configuration: LevelStudyConfiguration(levels: [0, 1, 6, 9], stopwatch: Self.quick))
        #expect(rows.map(\.level) == [0, 1, 6, 9])
        for row in rows {
            #expect(row.inputBytes == input.count)
            #expect(row.compressMBps > 0 && row.decompressMBps > 0)
            #expect(abs(row.ratio - Double(row.inputBytes) / Double(row.outputBytes)) < 1e-9)
        }
        #expect(rows[0].outputBytes > input.count)  // level 0 stores
        #expect(rows[2].outputBytes <= rows[1].outputBytes)
        #expect(try rows[2].outputBytes == Deflater.compress(input).count)
    }

    @Test func stopwatchRunsUntilStableAndTakesTheMedian() {
        final class FakeTime: @unchecked Sendable { var now = Duration.zero }
        let time = FakeTime()
        let stopwatch = Stopwatch(minRuns: 3, minTotal: .seconds(1), maxRuns: 100) { time.now }
        var step = 0
        let result = stopwatch.median {
            step += 1
            time.now += .milliseconds(step == 2 ? 900 : 100)
        }
        // 100 + 900 + 100 = 1.1 s after 3 runs: enough time and runs; the median ignores the outlier.
        #expect(result.runs == 3)
        #expect(result.median == .milliseconds(100))
    }

    @Test func messageStudyComparesModes() throws {
        let messages = ChatText.messages(400)
        let dictionary = DictionaryTrainer.train(messages)
        let report = try MessageStudy.measure(messages, configuration: MessageStudyConfiguration(
            dictionary: dictionary, windowTable: [9, 15], stopwatch: Self.quick))
        #expect(report.modes.map(\.mode) == [.uncompressed, .alone, .contextTakeover, .dictionary])
        let bytes = Dictionary(uniqueKeysWithValues: report.modes.map { ($0.mode, $0.wireBytes) })
        #expect(bytes[.uncompressed] == messages.reduce(0) { $0 + $1.count })
        #expect(bytes[.contextTakeover]! < bytes[.alone]!)
        #expect(bytes[.dictionary]! < bytes[.alone]!)
        #expect(report.windows.map(\.windowBits) == [9, 15])
        #expect(report.windows[1].perConnectionBytes == 256 * 1024 + 39 * 1024)
        #expect(report.windows[1].takeoverRatio >= report.windows[0].takeoverRatio)
    }

    @Test func messageStudyWithoutDictionaryHasThreeRows() throws {
        let report = try MessageStudy.measure(ChatText.messages(50), configuration: MessageStudyConfiguration(
            windowTable: [], stopwatch: Self.quick))
        #expect(report.modes.map(\.mode) == [.uncompressed, .alone, .contextTakeover])
    }

    @Test func trainerPutsFrequentStringsLastAndRespectsTheCap() {
        let messages = ChatText.messages(2000)
        let dictionary = DictionaryTrainer.train(messages, configuration: DictionaryTrainingConfiguration(maxSize: 2048))
        #expect(!dictionary.isEmpty && dictionary.count <= 2048)
        let text = String(decoding: dictionary, as: UTF8.self)
        #expect(text.contains("example.com/team/"))
        #expect(text.contains("/pull/"))
        // The URL prefix occurs in a sixth of all messages: it belongs near the end.
        let tail = String(decoding: dictionary.suffix(512), as: UTF8.self)
        #expect(tail.contains("example.com"))
        #expect(DictionaryTrainer.train([]).isEmpty)
        #expect(DictionaryTrainer.train([Array("unique".utf8)]).isEmpty)
    }

    @Test func linesSplitOnNewlines() {
        let input = Array("one\r\ntwo\n\nthree".utf8)
        #expect(ChatMessages.lines(input).map { String(decoding: $0, as: UTF8.self) } == ["one", "two", "three"])
        #expect(ChatMessages.lines([]).isEmpty)
    }
}
