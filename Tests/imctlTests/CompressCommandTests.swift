import Foundation
import Testing

/// End-to-end tests of `imctl compress`, run against the built binary.
@Suite struct CompressCommandTests {
    @Test func gzipReadsWhatCompressWrites() async throws {
        let dir = try CompressScratch()
        let input = try dir.write("chat.txt", compressChatText(bytes: 300_000))
        for level in ["-1", "-6", "-9"] {
            let compressed = try await compressRun(compressTestBinary(), ["compress", "-c", level, input.path])
            #expect(compressed.status == 0)
            #expect(compressed.stdout.prefix(2) == Data([0x1f, 0x8b]))
            let gz = try dir.write("chat\(level).gz", compressed.stdout)
            let gunzip = try await compressRun(URL(fileURLWithPath: "/usr/bin/env"), ["gzip", "-d", "-c"], stdin: gz)
            #expect(gunzip.status == 0)
            #expect(gunzip.stdout == (try Data(contentsOf: input)))
        }
        // Standard input works too, and `-c` accepts `--level`.
        let piped = try await compressRun(compressTestBinary(), ["compress", "-c", "--level", "3"], stdin: input)
        let gz = try dir.write("piped.gz", piped.stdout)
        #expect(try await compressRun(URL(fileURLWithPath: "/usr/bin/env"), ["gzip", "-d", "-c"], stdin: gz).stdout == Data(contentsOf: input))
    }

    @Test func decompressesWhatGzipWrites() async throws {
        let dir = try CompressScratch()
        let original = compressChatText(bytes: 200_000)
        let input = try dir.write("chat.txt", original)
        let gzip = try await compressRun(URL(fileURLWithPath: "/usr/bin/env"), ["gzip", "-c", "-9"], stdin: input)
        let gz = try dir.write("chat.gz", gzip.stdout)
        let result = try await compressRun(compressTestBinary(), ["compress", "-d"], stdin: gz)
        #expect(result.status == 0)
        #expect(result.stdout == original)
        // Concatenated members decode one after the other, as with gzip.
        let twice = try dir.write("twice.gz", gzip.stdout + gzip.stdout)
        let both = try await compressRun(compressTestBinary(), ["compress", "-d", twice.path])
        #expect(both.status == 0)
        #expect(both.stdout == original + original)
    }

    @Test(.enabled(if: compressHasTool("python3")), arguments: [
        ("zlib", "sys.stdout.buffer.write(zlib.compress(d, 9))"),
        ("raw", "c = zlib.compressobj(6, zlib.DEFLATED, -15); sys.stdout.buffer.write(c.compress(d) + c.flush())"),
        ("gzip", "c = zlib.compressobj(6, zlib.DEFLATED, 31); sys.stdout.buffer.write(c.compress(d) + c.flush())"),
    ])
    func decompressesWhatPythonZlibWrites(format: String, script: String) async throws {
        let dir = try CompressScratch()
        let original = compressChatText(bytes: 100_000)
        let input = try dir.write("chat.txt", original)
        let python = try await compressRun(
            URL(fileURLWithPath: "/usr/bin/env"),
            ["python3", "-c", "import sys, zlib; d = sys.stdin.buffer.read(); \(script)"], stdin: input)
        #expect(python.status == 0)
        let compressed = try dir.write("chat.\(format)", python.stdout)
        let result = try await compressRun(compressTestBinary(), ["compress", "-d", "--format", format], stdin: compressed)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == original)
        // And Python reads what we write in the same framing.
        let ours = try await compressRun(compressTestBinary(), ["compress", "-c", "--format", format, input.path])
        let ourFile = try dir.write("ours.\(format)", ours.stdout)
        let wbits = ["zlib": "15", "raw": "-15", "gzip": "31"][format]!
        let back = try await compressRun(
            URL(fileURLWithPath: "/usr/bin/env"),
            ["python3", "-c", "import sys, zlib; sys.stdout.buffer.write(zlib.decompress(sys.stdin.buffer.read(), \(wbits)))"],
            stdin: ourFile)
        #expect(back.stdout == original)
    }

    @Test func badInputExits65WithAClearMessage() async throws {
        let dir = try CompressScratch()
        let original = compressChatText(bytes: 100_000)
        let gzip = try await compressRun(URL(fileURLWithPath: "/usr/bin/env"), ["gzip", "-c"], stdin: try dir.write("in.txt", original))

        let notGzip = try await compressRun(compressTestBinary(), ["compress", "-d"], stdin: try dir.write("plain", original))
        #expect(notGzip.status == 65)
        #expect(notGzip.stdout.isEmpty)
        #expect(notGzip.stderr == "imctl: compress: not in gzip format\n")

        let truncated = try await compressRun(compressTestBinary(), ["compress", "-d"], stdin: try dir.write("cut.gz", gzip.stdout.prefix(gzip.stdout.count / 2)))
        #expect(truncated.status == 65)
        #expect(truncated.stderr.hasPrefix("imctl: compress: unexpected end of input"))
        #expect(truncated.stdout.count < original.count)

        var corrupt = gzip.stdout
        corrupt[corrupt.count - 8] ^= 0xff  // the CRC-32
        let bad = try await compressRun(compressTestBinary(), ["compress", "-d"], stdin: try dir.write("bad.gz", corrupt))
        #expect(bad.status == 65)
        #expect(bad.stderr.hasPrefix("imctl: compress: corrupt compressed data"))
        #expect(bad.stderr.split(separator: "\n").count == 1)

        let empty = try await compressRun(compressTestBinary(), ["compress", "-d"], stdin: try dir.write("empty", Data()))
        #expect(empty.status == 65)

        let missing = try await compressRun(compressTestBinary(), ["compress", "-d", dir.url.appendingPathComponent("nope").path])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("No such file"))
    }

    @Test func usageErrorsExit64() async throws {
        for arguments in [
            ["compress", "--levels", "1-12"], ["compress", "--levels", "x"], ["compress", "--window-bits", "20"],
            ["compress", "-c", "--json"], ["compress", "--train"], ["compress", "--level", "5"], ["compress", "--bogus"],
        ] {
            let result = try await compressRun(compressTestBinary(), arguments, stdin: URL(fileURLWithPath: "/dev/null"))
            #expect(result.status == 64, "\(arguments)")
            #expect(!result.stderr.isEmpty)
        }
    }

    @Test func hundredMegabytesStreamInConstantMemory() async throws {
        let dir = try CompressScratch()
        let chunk = compressChatText(bytes: 1 << 20)
        let big = dir.url.appendingPathComponent("big.txt")
        _ = FileManager.default.createFile(atPath: big.path, contents: nil)
        let handle = try FileHandle(forWritingTo: big)
        for _ in 0..<100 { try handle.write(contentsOf: chunk) }
        try handle.close()
        let gz = dir.url.appendingPathComponent("big.gz")
        let out = dir.url.appendingPathComponent("big.out")

        let compress = try await compressPeakRSS(["compress", "-c", "-1"], stdin: big, stdout: gz)
        #expect(compress.status == 0)
        #expect(compress.kilobytes < 64 * 1024, "compress peak RSS \(compress.kilobytes) KiB")
        let decompress = try await compressPeakRSS(["compress", "-d"], stdin: gz, stdout: out)
        #expect(decompress.status == 0)
        #expect(decompress.kilobytes < 64 * 1024, "decompress peak RSS \(decompress.kilobytes) KiB")
        let cmp = try await compressRun(URL(fileURLWithPath: "/usr/bin/env"), ["cmp", big.path, out.path])
        #expect(cmp.status == 0)
    }

    @Test func measurementPrintsATableAndJSON() async throws {
        let dir = try CompressScratch()
        let input = try dir.write("chat.txt", compressChatText(bytes: 60_000))
        let table = try await compressRun(compressTestBinary(), ["compress", "--levels", "1,6", input.path])
        #expect(table.status == 0, "\(table.stderr)")
        let lines = String(decoding: table.stdout, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.first?.hasPrefix("level") == true)
        #expect(lines.dropFirst().allSatisfy { $0.contains("60000") })

        let json = try await compressRun(compressTestBinary(), ["compress", "--levels", "1-3", "--json"], stdin: input)
        #expect(json.status == 0)
        let rows = try compressJSONLines(json.stdout)
        #expect(rows.map { $0["level"] as? Int } == [1, 2, 3])
        #expect(rows.allSatisfy { $0["kind"] as? String == "level" && ($0["ratio"] as? Double ?? 0) > 1 })
    }

    @Test func messageStudyComparesThreeWays() async throws {
        let dir = try CompressScratch()
        var rng = CompressPRNG(seed: 3)
        let jsonLines = (0..<1500).map { index in
            let body = compressChatMessage(&rng).replacingOccurrences(of: "\"", with: "\\\"")
            return "{\"id\":\(index),\"room\":\"general\",\"body\":\"\(body)\"}"
        }.joined(separator: "\n")
        let input = try dir.write("chat.jsonl", Data(jsonLines.utf8))
        let dictionary = dir.url.appendingPathComponent("dict.bin")
        let result = try await compressRun(
            compressTestBinary(), ["compress", "--messages", "--train", "--train-out", dictionary.path, "--json", input.path])
        #expect(result.status == 0, "\(result.stderr)")
        let rows = try compressJSONLines(result.stdout)
        #expect(rows.first?["kind"] as? String == "study")
        #expect(rows.first?["messages"] as? Int == 1500)
        let modes = rows.filter { $0["kind"] as? String == "mode" }.compactMap { $0["mode"] as? String }
        #expect(modes == ["uncompressed", "alone", "context-takeover", "dictionary"])
        #expect(rows.filter { $0["kind"] as? String == "window" }.count == 7)
        let trained = try Data(contentsOf: dictionary)
        #expect(trained.count > 100 && trained.count <= 32 * 1024)

        let table = try await compressRun(compressTestBinary(), ["compress", "--messages", "--dict", dictionary.path, "--window-bits", "12", input.path])
        #expect(table.status == 0, "\(table.stderr)")
        let text = String(decoding: table.stdout, as: UTF8.self)
        #expect(text.contains("context-takeover"))
        #expect(text.contains("dictionary"))
        #expect(text.contains("KiB/connection"))
    }
}

/// The `imctl` binary next to the test bundle, or in the package's debug build folder.
fileprivate func compressTestBinary() -> URL {
    let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("imctl")
    if FileManager.default.isExecutableFile(atPath: beside.path) { return beside }
    return URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug/imctl")
}

fileprivate struct CompressRunResult {
    var status: Int32
    var stdout: Data
    var stderr: String
}

/// Runs a program with stdin from a file and stdout/stderr captured through temporary files
/// (no pipes, so no deadlock on large outputs).
/// Runs a child to its end on a thread of its own: a test waiting for a 100 MB pipe must not hold one of
/// the few threads of Swift's cooperative pool, which the other suites' in-process servers run on.
fileprivate func compressRun(_ executable: URL, _ arguments: [String], stdin: URL? = nil) async throws -> CompressRunResult {
    try await onOwnThread { try compressRunBlocking(executable, arguments, stdin: stdin) }
}

fileprivate func compressRunBlocking(_ executable: URL, _ arguments: [String], stdin: URL? = nil) throws -> CompressRunResult {
    let scratch = try CompressScratch()
    let outURL = scratch.url.appendingPathComponent("stdout")
    let errURL = scratch.url.appendingPathComponent("stderr")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.standardInput = try FileHandle(forReadingFrom: stdin ?? URL(fileURLWithPath: "/dev/null"))
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    process.waitUntilExit()
    return CompressRunResult(
        status: process.terminationStatus, stdout: try Data(contentsOf: outURL),
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self))
}

/// Runs imctl under `/usr/bin/time -f %M` and returns the child's peak RSS in KiB.
fileprivate func compressPeakRSS(_ arguments: [String], stdin: URL, stdout: URL) async throws -> (status: Int32, kilobytes: Int) {
    try await onOwnThread { try compressPeakRSSBlocking(arguments, stdin: stdin, stdout: stdout) }
}

fileprivate func compressPeakRSSBlocking(_ arguments: [String], stdin: URL, stdout: URL) throws -> (status: Int32, kilobytes: Int) {
    let scratch = try CompressScratch()
    let timeOut = scratch.url.appendingPathComponent("time")
    _ = FileManager.default.createFile(atPath: stdout.path, contents: nil)
    let process = Process()
    process.standardInput = try FileHandle(forReadingFrom: stdin)
    process.standardOutput = try FileHandle(forWritingTo: stdout)
    if FileManager.default.isExecutableFile(atPath: "/usr/bin/time") {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/time")
        process.arguments = ["-f", "%M", "-o", timeOut.path, compressTestBinary().path] + arguments
        try process.run()
        process.waitUntilExit()
        let text = String(decoding: try Data(contentsOf: timeOut), as: UTF8.self)
        let kilobytes = text.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } ?? Int.max
        return (process.terminationStatus, kilobytes)
    }
    // No GNU time: the children's peak RSS after wait (ru_maxrss is in KiB on Linux).
    process.executableURL = compressTestBinary()
    process.arguments = arguments
    try process.run()
    process.waitUntilExit()
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_CHILDREN.rawValue), &usage)
    #else
    getrusage(RUSAGE_CHILDREN, &usage)
    #endif
    return (process.terminationStatus, Int(usage.ru_maxrss))
}

fileprivate func compressHasTool(_ name: String) -> Bool {
    (try? compressRunBlocking(URL(fileURLWithPath: "/usr/bin/env"), [name, "--version"]).status) == 0
}

fileprivate func compressJSONLines(_ data: Data) throws -> [[String: Any]] {
    try String(decoding: data, as: UTF8.self).split(separator: "\n").map { line in
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
        return try #require(object as? [String: Any])
    }
}

/// A temporary directory removed when the value goes away.
fileprivate final class CompressScratch {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("imctl-compress-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func write(_ name: String, _ data: Data) throws -> URL {
        let file = url.appendingPathComponent(name)
        try data.write(to: file)
        return file
    }
}

/// SplitMix64, for deterministic chat-like test data.
fileprivate struct CompressPRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

fileprivate let compressUsers = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]
fileprivate let compressWords = [
    "the", "deploy", "is", "done", "can", "you", "check", "build", "failed", "again", "lunch", "at", "noon",
    "meeting", "moved", "to", "tomorrow", "thanks", "looks", "good", "merged", "please", "review", "server",
]
fileprivate let compressEmoji = ["👍", "🎉", "😂", "🚀", "🔥"]

fileprivate func compressChatMessage(_ rng: inout CompressPRNG) -> String {
    var words = ["@" + compressUsers.randomElement(using: &rng)!]
    for _ in 0..<Int.random(in: 2...12, using: &rng) { words.append(compressWords.randomElement(using: &rng)!) }
    switch Int.random(in: 0..<6, using: &rng) {
    case 0: words.append("https://git.example.com/team/repo/pull/\(Int.random(in: 1...9999, using: &rng))")
    case 1: words.append(compressEmoji.randomElement(using: &rng)!)
    default: break
    }
    return words.joined(separator: " ")
}

/// About `bytes` of newline-separated chat-like text.
fileprivate func compressChatText(bytes: Int) -> Data {
    var rng = CompressPRNG(seed: 11)
    var text = ""
    text.reserveCapacity(bytes + 200)
    while text.utf8.count < bytes {
        text += compressChatMessage(&rng)
        text += "\n"
    }
    return Data(text.utf8.prefix(bytes))
}

/// `-c` on several cores (pigz's method): one gzip stream that gzip reads, the same bytes whatever the
/// thread count, about the ratio of one stream.
@Suite struct ParallelCompressTests {
    static let gzip = URL(fileURLWithPath: "/usr/bin/env")

    @Test func blocksOnSeveralThreadsMakeOneStreamGzipReads() async throws {
        let dir = try CompressScratch()
        let text = try await onOwnThread { compressChatText(bytes: 3_300_000) }   // off the cooperative pool
        let block = 128 * 1024
        // Around block edges and the ring's (2 threads: 8 slots; 3 threads: 12).
        for size in [0, 1, block - 1, block, block + 1, 8 * block, 8 * block + 1, 12 * block, 3_300_000] {
            let input = try dir.write("in-\(size).txt", text.prefix(size))
            var outputs: [Data] = []
            for threads in ["2", "3"] {
                let r = try await compressRun(compressTestBinary(), ["compress", "-c", "-p", threads, input.path])
                #expect(r.status == 0, "\(size) bytes, \(threads) threads: \(r.stderr)")
                let gz = try dir.write("out-\(size)-\(threads).gz", r.stdout)
                let back = try await compressRun(Self.gzip, ["gzip", "-d", "-c"], stdin: gz)
                #expect(back.status == 0 && back.stdout == text.prefix(size), "\(size) bytes, \(threads) threads: gzip -d got \(back.stdout.count) bytes")
                let ours = try await compressRun(compressTestBinary(), ["compress", "-d"], stdin: gz)
                #expect(ours.stdout == text.prefix(size))
                outputs.append(r.stdout)
            }
            // Blocks are cut at fixed places, so the thread count does not change a byte.
            #expect(Set(outputs).count == 1, "\(size) bytes: outputs differ between thread counts")
        }
    }

    @Test func severalInputsAndStdinFormOneStreamWithinOnePercentOfOneThread() async throws {
        let dir = try CompressScratch()
        let (textA, textB) = try await onOwnThread { (compressChatText(bytes: 1_500_000), Data(compressChatText(bytes: 700_001).reversed())) }
        let a = try dir.write("a.txt", textA)
        let b = try dir.write("b.txt", textB)
        let both = try Data(contentsOf: a) + Data(contentsOf: b)
        // FILE, stdin (a again), FILE: one stream, in that order.
        let r = try await compressRun(compressTestBinary(), ["compress", "-c", "-p", "2", a.path, "-", b.path], stdin: a)
        #expect(r.status == 0)
        let back = try await compressRun(Self.gzip, ["gzip", "-d", "-c"], stdin: try dir.write("ab.gz", r.stdout))
        #expect(back.stdout == (try Data(contentsOf: a)) + both)

        let whole = try dir.write("whole.txt", both)
        let parallel = try await compressRun(compressTestBinary(), ["compress", "-c", "-6", "-p", "2", whole.path])
        let single = try await compressRun(compressTestBinary(), ["compress", "-c", "-6", "-p", "1", whole.path])
        #expect(single.status == 0 && parallel.status == 0)
        let ratio = Double(parallel.stdout.count) / Double(single.stdout.count)
        #expect(ratio < 1.01, "parallel output is \(ratio) × the single stream's")
    }

    @Test func threadsIsValidated() async throws {
        for arguments in [["compress", "-c", "-p", "0"], ["compress", "-d", "-p", "2"], ["compress", "--threads", "2", "x"]] {
            let r = try await compressRun(compressTestBinary(), arguments)
            #expect(r.status == 64, "\(arguments)")
        }
    }
}
