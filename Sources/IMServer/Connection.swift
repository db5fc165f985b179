import Prometheus
import NIOWebSocket
import Foundation
import HTTPTypes
import IMStorage
import IMWire
import Logging
import NIOCore
import WSCore

/// One WebSocket connection: reads frames in order, answers on its outbox.
struct Connection {
    let server: ChatServer
    let outbox: Outbox
    let logger: Logger
    private(set) var user: UserRecord?
    private var subscriptions: [Subscriber.Scope: Subscriber] = [:]
    private var knownPeers: Set<String> = []

    init(server: ChatServer, outbox: Outbox, user: UserRecord?, logger: Logger) {
        self.server = server
        self.outbox = outbox
        self.user = user
        self.logger = logger
    }

    /// Runs the connection until the peer closes it or the server shuts down.
    /// - Parameter outbox: the connection's queue, already registered with the server.
    static func run(server: ChatServer, outbox: Outbox, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
                    user: UserRecord?, logger: Logger) async throws {
        server.metrics.connections.increment()
        defer { server.metrics.connections.decrement() }
        var connection = Connection(server: server, outbox: outbox, user: user, logger: logger)
        if let user {
            outbox.send(server.authedFrame(user))
        }
        var failure: (any Error)?
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await Self.writeLoop(outbox: outbox, outbound: outbound)
            }
            do {
                var iterator = inbound.messages(maxSize: server.configuration.maxFrameBytes).makeAsyncIterator()
                while let message = try await iterator.next() {
                    server.metrics.framesIn.increment()
                    if server.isClosing { continue }
                    switch message {
                    case .binary:
                        connection.fail(.init(.binaryFrame, "binary frames are not part of the protocol; send JSON text frames"))
                    case .text(let text):
                        await connection.handle(text, group: &group)
                    }
                }
            } catch {
                // Rethrown below so the library closes with the matching code (1007 bad UTF-8, 1009 too big).
                logger.debug("connection ended: \(error)")
                failure = error
            }
            connection.endSubscriptions()
            outbox.finish()
            // Replays still running for a connection that is gone stop at their next page.
            group.cancelAll()
        }
        if let failure { throw failure }
    }

    private static func writeLoop(outbox: Outbox, outbound: WebSocketOutboundWriter) async {
        do {
            for await item in outbox.stream {
                outbox.taken()
                switch item {
                case .text(let text):
                    try await outbound.write(.text(text))
                case .close(let code, let reason):
                    try await outbound.close(code, reason: reason)
                    return
                }
            }
            if outbox.didOverflow {
                try await outbound.close(.policyViolation, reason: "too slow: resume after your last seq")
            }
        } catch {
            // The peer went away; the read loop sees it too.
        }
    }

    private func fail(_ error: WireError, id: String? = nil) {
        server.metrics.frameErrors.increment()
        outbox.send(ServerFrame.error(code: error.code, message: error.message, id: id).encoded())
    }

    mutating func handle(_ text: String, group: inout TaskGroup<Void>) async {
        let frame: ClientFrame
        do {
            frame = try ClientFrame.decode(text.utf8, maxBodyBytes: server.configuration.maxMessageBytes)
        } catch {
            fail(error, id: Self.clientID(in: text))
            return
        }
        if case .auth(let token) = frame {
            await authenticate(token)
            return
        }
        if case .ping(let ref) = frame {
            outbox.send(ServerFrame.pong(ref: ref).encoded())
            return
        }
        guard let user else {
            fail(.unauthorized("authenticate first: send {\"op\":\"auth\",\"token\":\"…\"} or an Authorization header"))
            return
        }
        switch frame {
        case .send(let id, let to, let body):
            await send(id: id, to: to, body: body, user: user)
        case .subscribe(let sub):
            await subscribe(sub, user: user, group: &group)
        case .unsubscribe(let to):
            let scope: Subscriber.Scope? =
                to == "@*" ? .allDirect(user.name) : (try? Target(parsing: to)).map { .conversation(ConversationKey(target: $0, user: user.name)) }
            if let scope, let s = subscriptions.removeValue(forKey: scope) {
                server.hub.remove(s)
            }
        case .auth, .ping:
            break
        }
    }

    private mutating func authenticate(_ token: String) async {
        do {
            if let u = try await server.store.authenticate(tokenHash: Credentials.tokenHash(token), now: Timestamp.nowMillis()) {
                user = u
                outbox.send(server.authedFrame(u))
                return
            }
        } catch {
            logger.error("token check failed: \(error)")
        }
        fail(.unauthorized("invalid, expired or revoked token"))
        outbox.close(.policyViolation, reason: "not authorised")
    }

    private mutating func send(id: String, to: Target, body: String, user: UserRecord) async {
        guard await peerExists(to, id: id) else { return }
        let key = ConversationKey(target: to, user: user.name)
        let outbox = self.outbox
        let metrics = server.metrics
        let message = NewMessage(conversation: key, sender: user.name, clientID: id, body: body, ts: Timestamp.nowMillis())
        server.committer.submit(message) { result in
            switch result {
            case .success(let outcome):
                if outcome.duplicate { metrics.duplicates.increment() }
                let m = outcome.message
                let ack = Ack(cid: id, id: m.id, room: m.conversation.label(for: user.name), seq: m.seq,
                              ts: Timestamp.rfc3339(millis: m.ts), duplicate: outcome.duplicate)
                outbox.send(ServerFrame.ack(ack).encoded())
            case .failure:
                metrics.frameErrors.increment()
                outbox.send(ServerFrame.error(code: .unavailable, message: "the store could not commit the message; retry with the same id",
                                              id: id).encoded())
            }
        }
    }

    /// Whether a direct target names an existing user (remembered per connection); answers `not_found` if not.
    private mutating func peerExists(_ target: Target, id: String?) async -> Bool {
        guard case .direct(let peer) = target, !knownPeers.contains(peer) else { return true }
        guard (try? await server.store.user(named: peer)) ?? nil != nil else {
            fail(.init(.notFound, "no such user '\(peer)'"), id: id)
            return false
        }
        knownPeers.insert(peer)
        return true
    }

    private mutating func subscribe(_ sub: Subscription, user: UserRecord, group: inout TaskGroup<Void>) async {
        let scope: Subscriber.Scope
        switch sub.scope {
        case .allDirect: scope = .allDirect(user.name)
        case .target(let t):
            guard await peerExists(t, id: nil) else { return }
            scope = .conversation(ConversationKey(target: t, user: user.name))
        }
        if case .allDirect = scope, case .last = sub.start {
            fail(.badFrame("'history' needs one conversation; '@*' resumes with 'after_id'"))
            return
        }
        if let old = subscriptions.removeValue(forKey: scope) { server.hub.remove(old) }
        let subscriber = Subscriber(scope: scope, reader: user.name, outbox: outbox)
        subscriptions[scope] = subscriber
        server.hub.add(subscriber)
        let server = self.server
        let label = sub.scope.description
        let logger = self.logger
        group.addTask {
            do {
                try await Self.replay(subscriber, start: sub.start, server: server, label: label)
            } catch is CancellationError {
                // The connection went away during the replay.
            } catch {
                logger.error("replay of \(label) failed: \(error)")
                server.metrics.frameErrors.increment()
                subscriber.outbox.send(ServerFrame.error(code: .unavailable, message: "could not read history of \(label)", id: nil).encoded())
                server.hub.remove(subscriber)
            }
        }
    }

    /// Replays stored messages after the subscription's start, then switches it to live delivery.
    private static func replay(_ s: Subscriber, start: Subscription.Start, server: ChatServer, label: String) async throws {
        let store = server.store
        let page = ServerConfiguration.replayPage
        var last: Int64 = 0
        switch (s.scope, start) {
        case (.conversation(let key), .afterSeq(let after)):
            last = after
            while true {
                try await s.outbox.waitForRoom()
                let batch = try await store.messages(in: key, afterSeq: last, limit: page)
                for m in batch { s.replayed(m); last = m.seq }
                if batch.count < page || Task.isCancelled { break }
            }
        case (.conversation(let key), .last(let n)):
            let batch = try await store.lastMessages(in: key, count: n)
            for m in batch { s.replayed(m) }
            last = batch.last?.seq ?? 0
            if n == 0 || batch.isEmpty {
                last = try await store.lastMessages(in: key, count: 1).last?.seq ?? 0
            }
        case (.conversation(let key), .live), (.conversation(let key), .afterID):
            last = try await store.lastMessages(in: key, count: 1).last?.seq ?? 0
        case (.allDirect(let user), .afterID(let after)):
            last = after
            while true {
                try await s.outbox.waitForRoom()
                let batch = try await store.directMessages(of: user, afterID: last, limit: page)
                for m in batch { s.replayed(m); last = m.id }
                if batch.count < page || Task.isCancelled { break }
            }
        case (.allDirect, _):
            last = try await store.lastMessageID()
        }
        s.goLive(after: last, label: label)
    }

    mutating func endSubscriptions() {
        for s in subscriptions.values { server.hub.remove(s) }
        subscriptions = [:]
    }

    /// The `id` of a frame that failed to decode, when it is there, so the client can match the error.
    static func clientID(in text: String) -> String? {
        guard text.utf8.count < 1 << 20, let data = text.data(using: .utf8),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let id = object["id"] as? String, id.utf8.count <= maxClientIDLength
        else { return nil }
        return id
    }
}
