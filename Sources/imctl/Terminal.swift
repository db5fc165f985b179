import IMWire
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Terminal manners: colour and progress only for a person at a terminal.
enum Terminal {
    /// Whether to draw (colour, progress) on `fd`: it is a terminal, `NO_COLOR` is not set
    /// (no-color.org) and `TERM` is not `dumb`.
    static func draws(on fd: Int32) -> Bool {
        isatty(fd) == 1 && Environment.value("NO_COLOR") == nil && Environment.value("TERM") != "dumb"
    }

    /// `listen`'s text line with the room in cyan and the sender in a bold colour of their own (the
    /// same name, the same colour, every time). Names cannot hold control characters; the body is
    /// escaped as in the plain line.
    static func colouredLine(_ m: MessageView) -> String {
        "\(m.ts) \u{1B}[36m\(m.room)\u{1B}[0m \u{1B}[1;\(colour(of: m.from))m\(m.from)\u{1B}[0m: \(OutputTemplate.terminalSafe(m.body))"
    }

    /// Red, green, yellow, blue or magenta (cyan is the room's), by an FNV-1a hash of the name.
    static func colour(of name: String) -> Int {
        var hash: UInt32 = 2_166_136_261
        for byte in name.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return 31 + Int(hash % 5)
    }
}

/// One line of progress on stderr, redrawn in place at most five times a second, shown only on a
/// terminal (`Terminal.draws(on: 2)`) and only once the run has lasted `after`, so that quick runs
/// print nothing. `finish()` erases it.
final class ProgressLine {
    private let enabled: Bool
    private let start = ContinuousClock.now
    private let after: Duration
    private var last: ContinuousClock.Instant?
    private var drawn = false

    init(after: Duration = .seconds(1), enabled: Bool = Terminal.draws(on: 2)) {
        self.after = after
        self.enabled = enabled
    }

    func update(_ text: @autoclosure () -> String) {
        guard enabled else { return }
        let now = ContinuousClock.now
        guard now - start >= after else { return }
        if let last, now - last < .milliseconds(200) { return }
        last = now
        drawn = true
        Output.write(2, "\r\u{1B}[K" + text())
    }

    func finish() {
        if drawn { Output.write(2, "\r\u{1B}[K") }
        drawn = false
    }
}
