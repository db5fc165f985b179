import ArgumentParser

/// The root command: it only lists the subcommands.
struct IMCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imctl",
        abstract: "A chat toolkit for shells and servers: run an instant-messaging server and talk to it from scripts.",
        version: "0.1.0",
        subcommands: [Serve.self, Login.self, Logout.self, Send.self, Listen.self, Users.self, Compress.self, Bench.self]
    )
}

/// The entry point. `imctl send …` is first parsed as a command of its own: a shell loop starts it once
/// per message, and parsing it under the root makes ArgumentParser reflect over the root and its
/// completion-script options too (about a millisecond of every send, in first-time protocol
/// conformance lookups). Anything that does not parse that way (help, `--version`, a mistake) goes
/// through the root as always, so what users see does not change.
@main
enum Main {
    static func main() async {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == IMCtl.Send.configuration.commandName, var send = try? await IMCtl.Send.asyncParse(Array(arguments.dropFirst())) {
            do {
                try await send.run()
            } catch {
                IMCtl.exit(withError: error)
            }
        } else {
            await IMCtl.main(arguments)
        }
    }
}
