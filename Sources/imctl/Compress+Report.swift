import Foundation
import IMCompression

/// Turning inputs into messages and results into tables for `imctl compress`.
enum CompressReport {
    struct InputError: Error {
        var message: String
    }

    /// Splits the input into messages: lines, or the `body` of JSON lines when `forceJSON` is set
    /// or every line is a JSON object with a string `body`.
    static func messages(from input: [UInt8], forceJSON: Bool) throws(InputError) -> [[UInt8]] {
        let lines = ChatMessages.lines(input)
        let looksLikeJSON = !lines.isEmpty && lines.allSatisfy { $0.first == UInt8(ascii: "{") }
        guard forceJSON || looksLikeJSON else { return lines }
        var bodies: [[UInt8]] = []
        bodies.reserveCapacity(lines.count)
        for (index, line) in lines.enumerated() {
            let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any]
            guard let body = object?["body"] as? String else {
                if forceJSON {
                    throw InputError(message: "line \(index + 1): not a JSON object with a string \"body\"")
                }
                return lines
            }
            bodies.append(Array(body.utf8))
        }
        return bodies
    }

    /// The `study` JSON row.
    struct Summary: Encodable {
        var messages: Int
        var inputBytes: Int
        var windowBits: Int
        var level: Int
        var dictionaryBytes: Int

        init(_ report: MessageStudyReport) {
            messages = report.messages
            inputBytes = report.inputBytes
            windowBits = report.windowBits
            level = report.level
            dictionaryBytes = report.dictionaryBytes
        }
    }

    static func levelTable(_ rows: [LevelMeasurement]) -> String {
        var table: [[String]] = [["level", "input bytes", "output bytes", "ratio", "compress MB/s", "decompress MB/s"]]
        for row in rows {
            table.append([
                "\(row.level)", "\(row.inputBytes)", "\(row.outputBytes)", fixed(row.ratio, 3),
                fixed(row.compressMBps, 1), fixed(row.decompressMBps, 1),
            ])
        }
        return render(table)
    }

    static func messageTables(_ report: MessageStudyReport) -> String {
        var out = "\(report.messages) messages, \(report.inputBytes) bytes, level \(report.level), "
            + "window bits \(report.windowBits)"
            + (report.dictionaryBytes > 0 ? ", dictionary \(report.dictionaryBytes) bytes" : "") + "\n\n"
        var modes: [[String]] = [["mode", "wire bytes", "bytes/msg", "ratio", "compress µs/msg", "decompress µs/msg"]]
        for row in report.modes {
            modes.append([
                row.mode.rawValue, "\(row.wireBytes)", fixed(row.bytesPerMessage, 1), fixed(row.ratio, 3),
                fixed(row.compressMicrosPerMessage, 2), fixed(row.decompressMicrosPerMessage, 2),
            ])
        }
        out += render(modes) + "\n"
        var windows: [[String]] = [[
            "window bits", "takeover bytes/msg", "takeover ratio", "alone bytes/msg",
            "deflate KiB", "inflate KiB", "KiB/connection",
        ]]
        for row in report.windows {
            windows.append([
                "\(row.windowBits)", fixed(row.takeoverBytesPerMessage, 1), fixed(row.takeoverRatio, 3),
                fixed(row.aloneBytesPerMessage, 1), kib(row.deflateMemoryBytes), kib(row.inflateMemoryBytes),
                kib(row.perConnectionBytes),
            ])
        }
        out += render(windows)
        out += "memory: zlib's formula per direction with context takeover (deflate (1 << (wbits+2)) + "
            + "(1 << (memLevel+9)), inflate (1 << wbits) + 7 KiB), held for the connection's life\n"
        return out
    }

    /// Left-aligns the first column and right-aligns the rest.
    static func render(_ rows: [[String]]) -> String {
        guard let columns = rows.first?.count else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows {
            for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
        }
        var out = ""
        for row in rows {
            var cells: [String] = []
            for (index, cell) in row.enumerated() {
                let pad = String(repeating: " ", count: widths[index] - cell.count)
                cells.append(index == 0 ? cell + pad : pad + cell)
            }
            out += cells.joined(separator: "  ") + "\n"
        }
        return out
    }

    static func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }

    static func kib(_ bytes: Int) -> String {
        fixed(Double(bytes) / 1024, 1)
    }
}
