import Foundation

// imctl-embed-web OUTPUT.swift FILE…: writes `enum WebAssets` with each file's bytes as base64 (a
// string literal compiles fast at any size; an array literal of bytes does not).
let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: imctl-embed-web OUTPUT.swift FILE…\n".utf8))
    exit(64)
}
var source = """
    // Generated at build time by the EmbedWeb plugin from the files of Web/. Do not edit.
    enum WebAssets {
        /// File name → contents, base64.
        static let base64: [String: String] = [

    """
for path in arguments.dropFirst() {
    let url = URL(fileURLWithPath: path)
    let data = try Data(contentsOf: url)
    source += "        \"\(url.lastPathComponent)\": \"\(data.base64EncodedString())\",\n"
}
source += "    ]\n}\n"
try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
