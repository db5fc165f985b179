import ArgumentParser
import Foundation
import IMClient

/// Shell completion of room and `@user` names: the conversations the signed-in user has, asked of the
/// server (`GET /v1/conversations`) with the same server and token the command would use. A quick
/// question, at most half a second; when the server cannot say (not signed in, not running, slow),
/// there is simply nothing to offer.
enum ConversationCompletion {
    static let kind = CompletionKind.custom { (words: [String], index: Int, prefix: String) async -> [String] in
        await names(words: words, index: index, prefix: prefix)
    }

    static func names(words: [String], index: Int, prefix: String) async -> [String] {
        /// The value of `--flag VALUE` or `--flag=VALUE` on the command line being completed.
        func value(_ flag: String) -> String? {
            for (i, word) in words.enumerated() {
                if word == flag, i + 1 < words.count { return words[i + 1] }
                if word.hasPrefix(flag + "=") { return String(word.dropFirst(flag.count + 1)) }
            }
            return nil
        }
        let server = Defaults.resolveServer(value("--server"))
        guard let token = Defaults.resolveToken(value("--token"), for: server) else { return [] }
        let api = APIClient(server: server, token: token, caCertificatePath: Defaults.resolveCACert(value("--cacert")))
        guard let text = try? await api.call("GET", "/v1/conversations?limit=200", timeout: .milliseconds(500)),
              let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let list = object["conversations"] as? [[String: Any]] else { return [] }
        let names = list.compactMap { $0["room"] as? String }
        // bash breaks words at `@` (COMP_WORDBREAKS): `@b` arrives as `@` then `b`, and only `b` is replaced.
        if index > 0, index <= words.count, words[index - 1] == "@" {
            return names.filter { $0.hasPrefix("@" + prefix) }.map { String($0.dropFirst()) }
        }
        return names.filter { $0.hasPrefix(prefix) }
    }
}
