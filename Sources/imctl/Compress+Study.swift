import ArgumentParser
import Foundation
import IMCompression

extension Compress {
    /// The default mode: a table of levels.
    func runLevelStudy() throws {
        let input = try readInputs()
        let levels = try Self.parseLevels(self.levels ?? Self.defaultLevels)
        let rows: [LevelMeasurement]
        let progress = ProgressLine()
        defer { progress.finish() }
        do {
            rows = try LevelStudy.measure(input, configuration: LevelStudyConfiguration(
                levels: levels, format: format.zlibFormat, windowBits: windowBits)) { done, total in
                progress.update("measuring level \(levels[done]) (\(done + 1) of \(total))")
            }
        } catch {
            CompressIO.diagnose(error.description)
            throw ExitCode(error == .verificationFailed ? 1 : 65)
        }
        if json {
            for row in rows { try printJSON(kind: "level", row) }
        } else {
            print(CompressReport.levelTable(rows), terminator: "")
        }
    }

    /// `--messages`: compare ways of sending chat messages.
    func runMessageStudy() throws {
        let input = try readInputs()
        let messages: [[UInt8]]
        do {
            messages = try CompressReport.messages(from: input, forceJSON: jsonInput)
        } catch {
            CompressIO.diagnose(error.message)
            throw ExitCode(65)
        }
        guard !messages.isEmpty else {
            CompressIO.diagnose("no messages in the input")
            throw ExitCode(65)
        }
        var dictionary: [UInt8]?
        if let dictionaryPath {
            dictionary = try readFile(dictionaryPath)
        } else if train {
            // A dictionary longer than the window minus zlib's lookahead is never reached.
            let maxSize = min(ZlibLimits.maxDictionarySize, (1 << windowBits) - 262)
            let trained = DictionaryTrainer.train(messages, configuration: DictionaryTrainingConfiguration(maxSize: maxSize))
            CompressIO.diagnose("trained a \(trained.count)-byte dictionary on an evenly spaced sample (about 128 KiB) of \(messages.count) messages")
            if let trainOut {
                do {
                    try CompressIO.writeFile(trainOut, trained)
                } catch {
                    CompressIO.diagnose(error.message)
                    throw ExitCode.failure
                }
            }
            dictionary = trained
        }
        let report: MessageStudyReport
        let progress = ProgressLine()
        defer { progress.finish() }
        do {
            report = try MessageStudy.measure(messages, configuration: MessageStudyConfiguration(
                windowBits: windowBits, dictionary: dictionary)) { done, total in
                progress.update("measuring \(messages.count) messages: step \(done + 1) of \(total)")
            }
        } catch {
            CompressIO.diagnose(error.description)
            throw ExitCode(error == .verificationFailed ? 1 : 65)
        }
        if json {
            try printJSON(kind: "study", CompressReport.Summary(report))
            for row in report.modes { try printJSON(kind: "mode", row) }
            for row in report.windows { try printJSON(kind: "window", row) }
        } else {
            print(CompressReport.messageTables(report), terminator: "")
        }
    }

    private func readInputs() throws -> [UInt8] {
        var input: [UInt8] = []
        for path in files.isEmpty ? ["-"] : files {
            input.append(contentsOf: try readFile(path))
        }
        return input
    }

    private func readFile(_ path: String) throws -> [UInt8] {
        do {
            return try CompressIO.readAll(path)
        } catch {
            CompressIO.diagnose(error.message)
            throw ExitCode.failure
        }
    }

    private func printJSON(kind: String, _ row: some Encodable) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(KindTagged(kind: kind, row: row))
        print(String(decoding: data, as: UTF8.self))
    }
}

/// A row with a `"kind"` field added beside its own fields.
private struct KindTagged<Row: Encodable>: Encodable {
    var kind: String
    var row: Row

    private enum CodingKeys: String, CodingKey { case kind }

    func encode(to encoder: any Encoder) throws {
        try row.encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .kind)
    }
}
