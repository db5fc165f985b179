import ArgumentParser
import IMCompression

/// `imctl compress`: measure zlib on your data, or compress and decompress a stream.
struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Measure zlib on your data, or gzip/gunzip a stream.",
        discussion: """
            Without -c or -d, measures each level on the input (all FILEs concatenated, or stdin): \
            input and output bytes, ratio, compress and decompress MB/s (10^6 bytes of uncompressed \
            data per second), each cell repeated until it ran 3 times and 0.2 s, median reported. \
            Every round trip is verified.

            --messages treats the input as chat messages (one per line, or JSON lines with a "body" \
            string) and compares how they would travel over permessage-deflate: each alone \
            (no_context_takeover), one stream with context takeover, and each alone with a preset \
            dictionary (--dict FILE, or --train). A second table gives ratio and per-connection \
            memory at each window size.

            --json prints JSON Lines: one object per table row, each with a "kind" field \
            ("level"; or "study", "mode" and "window" for --messages).

            -c compresses to stdout (gzip unless --format), -d decompresses to stdout; both stream \
            in constant memory. With gzip framing -c uses every CPU it may (pigz's method: 128 KiB \
            blocks primed with the 32 KiB before them; -p/--threads sets how many). Corrupt, \
            truncated or non-gzip input exits 65.
            """
    )

    @Argument(help: "Files to read; standard input when none.", completion: .file())
    var files: [String] = []

    @Option(help: ArgumentHelp("Levels to measure: a list like 1,6,9 or a range like 1-9 (default 1,6,9).", valueName: "levels"))
    var levels: String?

    @Flag(help: "Print JSON Lines (one object per table row) instead of a table.")
    var json = false

    @Flag(help: "Study the input as chat messages, one per line.")
    var messages = false

    @Flag(name: .customLong("json-input"), help: "Lines are JSON objects; the message is their \"body\" string (detected automatically otherwise).")
    var jsonInput = false

    @Option(name: .customLong("dict"), help: ArgumentHelp("Preset dictionary for the dictionary row of --messages.", valueName: "file"), completion: .file())
    var dictionaryPath: String?

    @Flag(help: "Train a preset dictionary from a sample of the messages for the dictionary row.")
    var train = false

    @Option(name: .customLong("train-out"), help: ArgumentHelp("Write the trained dictionary to this file.", valueName: "file"), completion: .file())
    var trainOut: String?

    @Option(name: .customLong("window-bits"), help: ArgumentHelp("LZ77 window as a power of two, 9–15 (RFC 7692 max_window_bits).", valueName: "bits"))
    var windowBits: Int = 15

    @Flag(name: [.customShort("c"), .customLong("stdout")], help: "Compress to standard output.")
    var toStdout = false

    @Flag(name: [.customShort("d"), .customLong("decompress")], help: "Decompress to standard output.")
    var decompress = false

    @Option(help: ArgumentHelp("Framing for -c and -d, and for the level measurement.", valueName: "format"))
    var format: FormatOption = .gzip

    @Option(help: ArgumentHelp("Compression level for -c, 0–9 (default 6).", valueName: "level"))
    var level: Int?

    @Option(name: [.customShort("p"), .customLong("threads")],
            help: ArgumentHelp("Threads for -c with gzip framing, as pigz -p (default: the CPUs this process may use).", valueName: "n"))
    var threads: Int?

    @Flag(exclusivity: .chooseLast, help: "Shorthand for --level N, as in gzip.")
    var levelShorthand: LevelShorthand?

    var isPipeMode: Bool { toStdout || decompress }

    mutating func validate() throws {
        guard (9...15).contains(windowBits) else {
            throw ValidationError("--window-bits must be between 9 and 15, got \(windowBits).")
        }
        if let level, !(0...9).contains(level) {
            throw ValidationError("--level must be between 0 and 9, got \(level).")
        }
        if let level, let levelShorthand, level != levelShorthand.level {
            throw ValidationError("--level \(level) and -\(levelShorthand.level) disagree.")
        }
        do {
            _ = try Self.parseLevels(levels ?? Self.defaultLevels)
        } catch {
            throw ValidationError("--levels: \(error.reason)")
        }
        if let threads, !(1...256).contains(threads) {
            throw ValidationError("--threads must be between 1 and 256, got \(threads).")
        }
        if threads != nil && (!toStdout || decompress) {
            throw ValidationError("--threads applies to -c.")
        }
        if isPipeMode {
            let measurementOnly: [(Bool, String)] = [
                (json, "--json"), (messages, "--messages"), (jsonInput, "--json-input"),
                (dictionaryPath != nil, "--dict"), (train, "--train"), (trainOut != nil, "--train-out"),
                (levels != nil, "--levels"),
            ]
            if let (_, flag) = measurementOnly.first(where: { $0.0 }) {
                throw ValidationError("\(flag) measures; it cannot be combined with -c or -d.")
            }
        } else {
            if level != nil || levelShorthand != nil {
                throw ValidationError("--level and -1…-9 apply to -c; use --levels to choose what to measure.")
            }
            if !messages {
                let messageOnly: [(Bool, String)] = [
                    (jsonInput, "--json-input"), (dictionaryPath != nil, "--dict"), (train, "--train"),
                    (trainOut != nil, "--train-out"),
                ]
                if let (_, flag) = messageOnly.first(where: { $0.0 }) {
                    throw ValidationError("\(flag) needs --messages.")
                }
            }
            if dictionaryPath != nil && train {
                throw ValidationError("--dict and --train are alternatives; give one.")
            }
            if trainOut != nil && !train {
                throw ValidationError("--train-out needs --train.")
            }
        }
    }

    func run() throws {
        if isPipeMode {
            try runPipe()
        } else if messages {
            try runMessageStudy()
        } else {
            try runLevelStudy()
        }
    }

    /// Levels measured when `--levels` is not given.
    static let defaultLevels = "1,6,9"

    /// The compression level for -c.
    var pipeLevel: Int { level ?? levelShorthand?.level ?? 6 }

    struct LevelListError: Error {
        var reason: String
    }

    /// Parses `1,6,9`, `1-9` or a mix like `1-3,9` into distinct levels in the given order.
    static func parseLevels(_ text: String) throws(LevelListError) -> [Int] {
        var result: [Int] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard (1...2).contains(bounds.count),
                let low = Int(bounds[0].trimmingWhitespace), let high = Int(bounds[bounds.count - 1].trimmingWhitespace)
            else {
                throw LevelListError(reason: "'\(part)' is not a level or a range like 1-9.")
            }
            guard (0...9).contains(low), (0...9).contains(high) else {
                throw LevelListError(reason: "levels must be between 0 and 9, got '\(part)'.")
            }
            guard low <= high else {
                throw LevelListError(reason: "range '\(part)' runs backwards.")
            }
            for value in low...high where !result.contains(value) { result.append(value) }
        }
        return result
    }
}

extension Substring {
    fileprivate var trimmingWhitespace: Substring {
        var slice = self
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return slice
    }
}

extension Compress {
    /// `--format`: the framing of -c and -d.
    enum FormatOption: String, ExpressibleByArgument, CaseIterable {
        case gzip, zlib, raw

        var zlibFormat: ZlibFormat {
            switch self {
            case .gzip: return .gzip
            case .zlib: return .zlib
            case .raw: return .raw
            }
        }
    }

    /// `-1` … `-9`: gzip's level shorthand.
    enum LevelShorthand: Int, EnumerableFlag {
        case one = 1, two, three, four, five, six, seven, eight, nine

        var level: Int { rawValue }

        static func name(for value: LevelShorthand) -> NameSpecification {
            .customShort(Character(String(value.rawValue)))
        }

        static func help(for value: LevelShorthand) -> ArgumentHelp? {
            value == .one
                ? "-1 (fastest) … -9 (smallest): shorthand for --level N."
                : ArgumentHelp(visibility: .hidden)
        }
    }
}
