import Prometheus

/// The server's Prometheus metrics, one registry per server (so tests can run several in one process).
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let messagesStored: Counter
    let messagesDelivered: Counter
    let duplicates: Counter
    let commitFailures: Counter
    let framesIn: Counter
    let frameErrors: Counter
    let connections: Gauge
    let commitDuration: DurationHistogram
    let batchSize: ValueHistogram
    let slowConsumers: Counter
    let connectionsRefused: Counter
    let tcpConnections: Gauge
    let historyCacheHits: Counter
    let historyStoreReads: Counter
    let logins: Counter
    let loginFailures: Counter

    init() {
        messagesStored = registry.makeCounter(name: "imctl_messages_stored_total", help: "Messages committed to the store.")
        messagesDelivered = registry.makeCounter(name: "imctl_messages_delivered_total", help: "Live messages written to listeners.")
        duplicates = registry.makeCounter(name: "imctl_duplicate_sends_total", help: "Sends that repeated a stored client id.")
        commitFailures = registry.makeCounter(name: "imctl_commit_failures_total", help: "Transactions that failed.")
        framesIn = registry.makeCounter(name: "imctl_frames_received_total", help: "WebSocket messages received.")
        frameErrors = registry.makeCounter(name: "imctl_frame_errors_total", help: "Error frames sent.")
        connections = registry.makeGauge(name: "imctl_connections", help: "Open WebSocket connections.")
        commitDuration = registry.makeDurationHistogram(
            name: "imctl_commit_duration_seconds",
            buckets: [.microseconds(250), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                      .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1)],
            help: "Time to commit one batch.")
        batchSize = registry.makeValueHistogram(name: "imctl_commit_batch_size", buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
                                                help: "Messages per committed transaction.")
        slowConsumers = registry.makeCounter(name: "imctl_slow_consumers_total",
                                             help: "Connections closed for falling too far behind (they resume after their last seq).")
        connectionsRefused = registry.makeCounter(name: "imctl_connections_refused_total",
                                                  help: "TCP connections closed at once: the server's or their address's cap was reached.")
        tcpConnections = registry.makeGauge(name: "imctl_tcp_connections", help: "Open TCP connections (HTTP and WebSocket), as counted against the caps.")
        historyCacheHits = registry.makeCounter(name: "imctl_history_cache_hits_total", help: "History reads answered from memory.")
        historyStoreReads = registry.makeCounter(name: "imctl_history_store_reads_total", help: "History reads that went to the store.")
        logins = registry.makeCounter(name: "imctl_logins_total", help: "Successful password logins.")
        loginFailures = registry.makeCounter(name: "imctl_login_failures_total", help: "Refused password logins.")
    }

    /// The text exposition format.
    func render() -> String {
        registry.emitToString()
    }
}
