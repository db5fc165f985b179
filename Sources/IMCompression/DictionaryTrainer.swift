/// Settings of ``DictionaryTrainer``.
public struct DictionaryTrainingConfiguration: Sendable {
    /// The largest dictionary to build. zlib uses at most the window (32 KiB at 15 bits), minus
    /// its 262-byte lookahead, so more is wasted.
    public var maxSize: Int
    /// About how many message bytes to sample. 128 KiB keeps training under a second and the
    /// counting table small; chat vocabulary repeats well within that.
    public var sampleBytes: Int
    /// The substring lengths counted. zlib matches are 3–258 bytes; 4–32 covers words, names,
    /// URL prefixes and JSON keys without counting every length.
    public var lengths: [Int]
    /// A substring must occur in at least this many sampled messages to be considered.
    public var minMessages: Int

    /// Creates settings with the defaults described on each property.
    public init(
        maxSize: Int = ZlibLimits.maxDictionarySize, sampleBytes: Int = 128 * 1024,
        lengths: [Int] = [4, 6, 8, 12, 16, 24, 32], minMessages: Int = 3
    ) {
        self.maxSize = maxSize
        self.sampleBytes = sampleBytes
        self.lengths = lengths
        self.minMessages = minMessages
    }
}

/// Builds a preset dictionary from sample messages.
///
/// The method, kept deliberately simple:
/// 1. Sample evenly spaced messages, about `sampleBytes` in total.
/// 2. For each substring of the configured lengths (4–32 bytes), count how many sampled messages
///    contain it (a substring repeated inside one message is already compressible without help).
/// 3. Score each substring as `messages containing it × its length`, the bytes a match could save.
/// 4. Take substrings best score first, skipping any whose 8-byte pieces are mostly in already
///    chosen ones (the same URL shifted by a byte, a word inside a chosen phrase), until the size
///    cap is reached.
/// 5. Concatenate them with the best last: zlib codes near matches (short distances) more cheaply
///    and keeps the end of the dictionary when the window is smaller than it.
public enum DictionaryTrainer {
    /// Trains a dictionary of at most `configuration.maxSize` bytes; empty when nothing repeats.
    public static func train(
        _ messages: [[UInt8]], configuration: DictionaryTrainingConfiguration = DictionaryTrainingConfiguration()
    ) -> [UInt8] {
        let sample = self.sample(messages, bytes: configuration.sampleBytes)
        let maxLength = configuration.lengths.max() ?? 0
        guard !sample.isEmpty, maxLength > 0, configuration.maxSize > 0 else { return [] }
        var counted = [Bool](repeating: false, count: maxLength + 1)
        for length in configuration.lengths where length > 0 { counted[length] = true }

        var table: [UInt64: Entry] = [:]
        for (messageIndex, message) in sample.enumerated() {
            message.withUnsafeBufferPointer { bytes in
                for start in bytes.indices {
                    var hash = fnvOffset
                    for length in 1...min(maxLength, bytes.count - start) {
                        hash = (hash ^ UInt64(bytes[start + length - 1])) &* fnvPrime
                        guard counted[length] else { continue }
                        let key = hash ^ UInt64(length)
                        if var entry = table[key] {
                            if entry.lastMessage != Int32(messageIndex) {
                                entry.messages += 1
                                entry.lastMessage = Int32(messageIndex)
                                table[key] = entry
                            }
                        } else {
                            table[key] = Entry(
                                messages: 1, lastMessage: Int32(messageIndex), message: Int32(messageIndex),
                                offset: Int32(start), length: Int32(length))
                        }
                    }
                }
            }
        }

        let candidates = table.values
            .filter { Int($0.messages) >= configuration.minMessages }
            .sorted { ($0.score, $1.offset, $1.message) > ($1.score, $0.offset, $0.message) }
        var chosen: [(piece: ArraySlice<UInt8>, score: Int)] = []
        var covered = Set<UInt64>()
        var size = 0
        for candidate in candidates {
            let message = sample[Int(candidate.message)]
            let piece = message[Int(candidate.offset)..<Int(candidate.offset + candidate.length)]
            guard size + piece.count <= configuration.maxSize else { continue }
            // Skip a candidate mostly made of text already chosen (the same URL shifted by one
            // byte, a word inside a phrase): a match only needs the text once.
            let grams = grams(of: piece, length: min(overlapGram, piece.count))
            let seen = grams.filter { covered.contains($0) }.count
            guard seen * 2 < grams.count || (seen == 0 && grams.isEmpty) else { continue }
            chosen.append((piece, candidate.score))
            size += piece.count
            for length in 1...min(overlapGram, piece.count) {
                covered.formUnion(self.grams(of: piece, length: length))
            }
            if size >= configuration.maxSize - (configuration.lengths.min() ?? 1) + 1 { break }
        }
        // Stable order: lowest score first, so the most valuable strings sit at the end.
        chosen.sort { $0.score < $1.score }
        var dictionary: [UInt8] = []
        dictionary.reserveCapacity(size)
        for entry in chosen { dictionary.append(contentsOf: entry.piece) }
        return dictionary
    }

    /// Evenly spaced messages totalling about `bytes`.
    static func sample(_ messages: [[UInt8]], bytes: Int) -> [[UInt8]] {
        let total = messages.reduce(0) { $0 + $1.count }
        guard total > bytes, bytes > 0 else { return messages }
        let stride = max(1, (total + bytes - 1) / bytes)
        return Swift.stride(from: 0, to: messages.count, by: stride).map { messages[$0] }
    }

    private struct Entry {
        var messages: Int32
        var lastMessage: Int32
        var message: Int32
        var offset: Int32
        var length: Int32
        var score: Int { Int(messages) * Int(length) }
    }

    private static let fnvOffset: UInt64 = 0xcbf2_9ce4_8422_2325
    private static let fnvPrime: UInt64 = 0x100_0000_01b3

    /// Overlap between candidates is judged on substrings of this length (or shorter candidates whole).
    private static let overlapGram = 8

    /// The hashes of every `length`-byte substring of `piece`, keyed as in the counting table.
    private static func grams(of piece: ArraySlice<UInt8>, length: Int) -> [UInt64] {
        guard length > 0, piece.count >= length else { return [] }
        var result: [UInt64] = []
        result.reserveCapacity(piece.count - length + 1)
        var start = piece.startIndex
        while start + length <= piece.endIndex {
            var hash = fnvOffset
            for byte in piece[start..<(start + length)] { hash = (hash ^ UInt64(byte)) &* fnvPrime }
            result.append(hash ^ UInt64(length))
            start += 1
        }
        return result
    }
}
