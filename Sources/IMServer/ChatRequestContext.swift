import Hummingbird
import NIOCore

/// The HTTP request context: Hummingbird's basic one plus the client's address (for login throttling).
struct ChatRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// The client's IP address as text ("unknown" when there is none).
    var clientAddress: String { remoteAddress?.ipAddress ?? "unknown" }
}
