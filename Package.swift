// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

// How `imctl` is linked, for start-up time (`send` runs once per message in shell loops; see
// docs/BENCHMARKS.md, "One imctl send"):
// - Swift links executables with --export-dynamic: 44,000 symbols in the dynamic table, which the loader
//   and the runtime's start-up `dladdr` then search (2 ms of every start). Nothing needs them.
// - Not position-independent: 137,000 relocations (3.3 MB) and the pages they touch cost 1.3 ms of every
//   start. The program's own image then loads at a fixed address (libraries, heap and stacks are still
//   randomised); SECURITY.md says what that means. `IMCTL_PIE=1 swift build …` builds a PIE instead.
//   Release builds only: a debug build linked this way against the shared Swift runtime makes the
//   loader warn about a protected symbol it references.
let executableLinkerSettings: [LinkerSetting] = [.unsafeFlags(["-Xlinker", "--no-export-dynamic"])]
    + (Context.environment["IMCTL_PIE"] == "1" ? [] : [.unsafeFlags(["-Xclang-linker", "-no-pie"], .when(configuration: .release))])

let package = Package(
    name: "imctl",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "imctl", targets: ["imctl"]),
        .library(name: "IMWire", targets: ["IMWire"]),
        .library(name: "IMCompression", targets: ["IMCompression"]),
        .library(name: "IMAuth", targets: ["IMAuth"]),
        .library(name: "IMStorage", targets: ["IMStorage"]),
        .library(name: "IMServer", targets: ["IMServer"]),
        .library(name: "IMClient", targets: ["IMClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        // Wire protocol: frames, validation, limits. Pure: no I/O.
        .target(
            name: "IMWire",
            swiftSettings: swiftSettings
        ),
        // Thin C shim over the system zlib.
        .systemLibrary(name: "CIMZlib", pkgConfig: "zlib", providers: [.apt(["libz-dev"])]),
        // Swift zlib streams. Pure: no I/O.
        .target(
            name: "IMCompression",
            dependencies: ["CIMZlib"],
            swiftSettings: swiftSettings
        ),
        // Password hashing, API tokens, one-time codes. Pure: no I/O.
        .target(
            name: "IMAuth",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        // Store protocol and the SQLite driver.
        .target(
            name: "IMStorage",
            dependencies: [
                "IMWire",
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                // Also imported: VaporCSQLite, sqlite-nio's own SQLite (not a product; see SQLiteMessageWriter).
            ],
            swiftSettings: swiftSettings
        ),
        // The WebSocket + HTTP server.
        .target(
            name: "IMServer",
            dependencies: [
                "IMWire", "IMAuth", "IMStorage", "IMCompression",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            exclude: ["Web"],
            swiftSettings: swiftSettings,
            plugins: ["EmbedWeb"]
        ),
        // Builds the chat page of Web/ into the server (no file beside the binary, no build step of its own).
        .executableTarget(name: "imctl-embed-web", path: "Plugins/EmbedWebTool"),
        .plugin(name: "EmbedWeb", capability: .buildTool(), dependencies: ["imctl-embed-web"]),
        // Client library: connect, send with pipelined acks, listen with resume.
        .target(
            name: "IMClient",
            dependencies: [
                "IMWire",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "HummingbirdWSCompression", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "WSCore", package: "swift-websocket"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "imctl",
            dependencies: [
                "IMWire", "IMCompression", "IMAuth", "IMStorage", "IMServer", "IMClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings,
            linkerSettings: executableLinkerSettings
        ),
        .testTarget(name: "IMWireTests", dependencies: ["IMWire"], swiftSettings: swiftSettings),
        .testTarget(name: "IMCompressionTests", dependencies: ["IMCompression"], swiftSettings: swiftSettings),
        .testTarget(name: "IMAuthTests", dependencies: ["IMAuth"], swiftSettings: swiftSettings),
        // A throwaway PostgreSQL for the tests that run on every store.
        .target(name: "IMTestSupport", path: "Tests/IMTestSupport", swiftSettings: swiftSettings),
        .testTarget(name: "IMStorageTests", dependencies: ["IMStorage", "IMAuth", "IMWire", "IMTestSupport"], swiftSettings: swiftSettings),
        // The client's logic without sockets.
        .testTarget(name: "IMClientTests", dependencies: ["IMClient", "IMWire"], swiftSettings: swiftSettings),
        .testTarget(
            name: "IMServerTests",
            dependencies: [
                "IMServer", "IMClient", "IMAuth", "IMStorage", "IMWire",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: swiftSettings
        ),
        // End-to-end tests of the built `imctl` binary: they import none of its modules.
        .testTarget(name: "imctlTests", dependencies: ["IMTestSupport"], swiftSettings: swiftSettings),
    ]
)
