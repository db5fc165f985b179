import IMClient
import IMServer
import IMWire
import Testing

@Suite struct LoadGeneratorTests {
    @Test func countsEveryDeliveryAcrossRoomsAndServers() async throws {
        try await withServer { server in
            let token = try await server.user("bench")
            // The same server twice stands in for two nodes: the balancing logic is what is exercised.
            let config = LoadConfiguration(servers: [server.url, server.url], balance: .leastConnections, token: token, publishers: 2,
                                           subscribers: 5, rooms: 2, messages: 400, size: 64, roomPrefix: "t")
            let report = try await LoadGenerator(configuration: config, logger: quietLogger).run()
            // Room 0 has subscribers 0, 2, 4 and publisher 0; room 1 has subscribers 1, 3 and publisher 1.
            #expect(report.acked == 400)
            #expect(report.expected == 200 * 3 + 200 * 2)
            #expect(report.delivered == report.expected)
            #expect(report.lost == 0 && report.duplicated == 0)
            #expect((report.latencyMs["p50"] ?? -1) > 0)
            #expect(report.latencyMs["p99"]! <= report.latencyMs["max"]!)
        }
    }

    @Test func ratePacesThePublishers() async throws {
        try await withServer { server in
            let token = try await server.user("bench")
            let config = LoadConfiguration(servers: [server.url], token: token, publishers: 1, subscribers: 1, messages: 50, size: 40,
                                           rate: 100, roomPrefix: "paced")
            let report = try await LoadGenerator(configuration: config, logger: quietLogger).run()
            // 50 messages at 100/s take about half a second; unpaced they would take a few milliseconds.
            #expect(report.publishSeconds >= 0.45)
            #expect(report.lost == 0)
        }
    }
}
