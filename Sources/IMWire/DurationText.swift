/// Parses durations written `500ms`, `10s`, `5m`, `2h`, `30d`.
public enum DurationText {
    /// The longest lifetime a token may be given (ten years), in the commands and the server alike.
    public static let maxTokenLifetime: Duration = .seconds(3_650 * 86_400)

    /// Parses `text` into a `Duration`, or returns nil with no partial result.
    public static func parse(_ text: String) -> Duration? {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        for (suffix, millis) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "5ms" also ends in "s": only accept when the rest is all digits.
            guard !number.isEmpty, number.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), number.utf8.count <= 12,
                  let n = Int64(number)
            else { continue }
            // Twelve digits of days do not fit in 64 bits of milliseconds: an overflow is not a duration.
            let (ms, overflow) = n.multipliedReportingOverflow(by: millis)
            guard !overflow else { return nil }
            return .milliseconds(ms)
        }
        return nil
    }
}
