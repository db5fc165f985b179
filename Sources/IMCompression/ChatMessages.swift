/// Splitting a text sample into chat messages. Pure functions over bytes.
public enum ChatMessages {
    /// Splits `data` into lines on `\n`, dropping a trailing `\r` and empty lines.
    public static func lines(_ data: [UInt8]) -> [[UInt8]] {
        var messages: [[UInt8]] = []
        var start = 0
        for index in data.indices where data[index] == UInt8(ascii: "\n") {
            append(data[start..<index], to: &messages)
            start = index + 1
        }
        append(data[start...], to: &messages)
        return messages
    }

    private static func append(_ line: ArraySlice<UInt8>, to messages: inout [[UInt8]]) {
        var line = line
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if !line.isEmpty { messages.append(Array(line)) }
    }
}
