import Foundation
import NIOCore

/// Facts about the machine the process runs on.
public enum Host {
    /// CPUs this process may run on (its affinity mask, as `taskset` sets it, from `/proc/self/status`);
    /// at least 1, and NIO's count where there is no such file.
    public static func usableCPUs() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed:") })
        else { return System.coreCount }
        let mask = line.dropFirst("Cpus_allowed:".count).filter { $0.isHexDigit }
        let count = mask.reduce(0) { $0 + (Int(String($1), radix: 16) ?? 0).nonzeroBitCount }
        return count > 0 ? count : System.coreCount
    }
}
