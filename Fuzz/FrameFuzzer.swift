// libFuzzer entry for the client frame decoder: compiled together with Sources/IMWire by
// scripts/fuzz-frames.sh (so it reaches the internal two-path decode). It traps when the flat-JSON fast
// path and Foundation's decoder disagree on an input, or when decoding crashes.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzClientFrame(_ start: UnsafeRawPointer?, _ count: Int) -> CInt {
    guard let start else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: start, count: count)
    // The server checks UTF-8 before it decodes (invalid text closes the connection with 1007).
    guard UTF8Validation.isValid(bytes) else { return 0 }
    let fast = Result { () throws(WireError) in try ClientFrame.decode(bytes, maxBodyBytes: 64, fastPath: true) }
    let slow = Result { () throws(WireError) in try ClientFrame.decode(bytes, maxBodyBytes: 64, fastPath: false) }
    switch (fast, slow) {
    case (.success(let a), .success(let b)) where a == b: return 0
    case (.failure(let a), .failure(let b)) where a.code == b.code: return 0
    default:
        fatalError("the decoder's paths disagree on \(String(decoding: bytes, as: UTF8.self).debugDescription): \(fast) vs \(slow)")
    }
}
