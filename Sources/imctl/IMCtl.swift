import ArgumentParser

/// The root command: it only lists the subcommands.
@main
struct IMCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "imctl",
        abstract: "A chat toolkit for shells and servers: run an instant-messaging server and talk to it from scripts.",
        version: "0.1.0",
        subcommands: [Serve.self, Login.self, Logout.self, Send.self, Listen.self, Users.self, Compress.self, Bench.self]
    )
}
