import Prometheus
import Foundation
import IMCompression
import IMAuth
import IMStorage
import IMWire
import Logging
import NIOCore
import NIOWebSocket

/// One WebSocket connection at `/v1/ws`, on its channel's event loop: RFC 6455 framing (with
/// `FrameSequencer`), permessage-deflate (IMCompression), and the chat protocol (with
/// `ConnectionState`). Writes go straight into the channel; the hub appends committed messages to it
/// from its own event loop and flushes once per batch.
///
/// All mutable state is touched on `eventLoop` only; other threads reach it through `eventLoop.execute`.
final class ChatConnection: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: ChatServer
    let eventLoop: any EventLoop
    private let deflate: DeflateParameters?
    private let headerToken: String?
    private let logger: Logger

    private var context: ChannelHandlerContext?
    /// The channel's options, fetched once: the getter builds a generic value on every call.
    private var options: (any NIOSynchronousChannelOptions)?
    private var state: ConnectionState
    private var sequencer: FrameSequencer
    private var deflater: PerMessageDeflater?
    private var inflater: PerMessageInflater?
    private var encoder = FrameEncoder()
    private var registration: Int?

    private var unflushed = 0
    private var readPaused = false
    private var readPending = false
    private var stalled = false
    private var roomWaiters: [EventLoopPromise<Bool>] = []
    private var closeSent = false
    private var gone = false
    private var readSinceLastPing = true
    private var timers: [Scheduled<Void>] = []
    private var pingTask: RepeatedTask?
    private var stallTimer: Scheduled<Void>?

    init(server: ChatServer, eventLoop: any EventLoop, deflate: DeflateParameters?, headerToken: String?, logger: Logger) {
        self.server = server
        self.eventLoop = eventLoop
        self.deflate = deflate
        self.headerToken = headerToken
        self.logger = logger
        let configuration = server.configuration
        self.state = ConnectionState(limits: configuration.connectionLimits, now: .now())
        self.sequencer = FrameSequencer(compressionNegotiated: deflate != nil, maxMessageBytes: configuration.maxFrameBytes)
    }

    /// The signed-in user's name (event loop only).
    var userName: String? { state.user?.name }

    // MARK: lifecycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        options = context.channel.syncOptions
        server.metrics.connections.increment()
        guard let id = server.register(self) else {
            run(state.shutdown())
            flush()
            return
        }
        registration = id
        run(state.start(headerToken: headerToken))
        let loop = context.eventLoop
        timers.append(loop.scheduleTask(deadline: state.signInDeadline) { [self] in
            run(state.tick(now: .now()))
            flush()
        })
        pingTask = loop.scheduleRepeatedTask(initialDelay: ServerConfiguration.pingInterval, delay: ServerConfiguration.pingInterval) {
            [self] _ in ping()
        }
        flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        tearDown()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tearDown()
        self.context = nil
    }

    private func tearDown() {
        guard !gone else { return }
        gone = true
        state.closed()
        for feed in state.feeds { server.hub.remove(self, feed) }
        for t in timers { t.cancel() }
        pingTask?.cancel()
        pingTask = nil
        stallTimer?.cancel()
        timers = []
        let waiters = roomWaiters
        roomWaiters = []
        for w in waiters { w.succeed(false) }
        if let registration { server.unregister(registration) }
        registration = nil
        server.metrics.connections.decrement()
    }

    /// The session's token stopped being valid: close with 1008 (called on the event loop).
    func revoke() {
        run(state.revoked())
        flush()
    }

    /// The server is shutting down: close with 1001 (called on the event loop).
    func shutdown() {
        run(state.shutdown())
        flush()
    }

    private func ping() {
        guard let context, !closeSent else { return }
        if !readSinceLastPing {
            // Nothing at all came back for a whole interval, not even a pong: the peer is gone.
            logger.debug("no answer to ping; closing")
            context.close(promise: nil)
            return
        }
        readSinceLastPing = false
        context.writeAndFlush(wrapOutboundOut(WebSocketWire.frame(opcode: WebSocketWire.ping, payload: EmptyCollection(),
                                                                   allocator: context.channel.allocator)), promise: nil)
    }

    // MARK: reading

    func read(context: ChannelHandlerContext) {
        if readPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        readSinceLastPing = true
        guard !closeSent || frame.opcode == .connectionClose else { return }
        let first = (frame.fin ? 0x80 : 0) | (frame.rsv1 ? 0x40 : 0) | (frame.rsv2 ? 0x20 : 0) | (frame.rsv3 ? 0x10 : 0)
            | UInt8(webSocketOpcode: frame.opcode)
        var payload = frame.data
        if let key = frame.maskKey { payload.unmask(key) }
        switch sequencer.receive(firstByte: first, masked: frame.maskKey != nil, payload: payload) {
        case .partial, .pong:
            break
        case .ping(let payload):
            write(WebSocketWire.frame(opcode: WebSocketWire.pong, payload: payload.readableBytesView, allocator: context.channel.allocator))
        case .close(let code, _):
            if closeSent {
                context.close(promise: nil)
            } else {
                // Echo the peer's code (RFC 6455 §5.5.1), then close once it is written.
                closeSent = true
                state.closed()
                let echo = code.map { WebSocketErrorCode(codeNumber: Int($0)) } ?? .normalClosure
                let frame = WebSocketWire.closeFrame(echo, reason: "", allocator: context.channel.allocator)
                context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in context.close(promise: nil) }
            }
        case .fail(let code, let reason):
            fail(code, reason)
        case .message(let payload, let text, let compressed):
            message(payload, text: text, compressed: compressed)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let e = error as? NIOWebSocketError {
            switch e {
            case .invalidFrameLength: fail(.messageTooLarge, "frame over \(server.configuration.maxFrameBytes) bytes")
            default: fail(.protocolError, "\(e)")
            }
            return
        }
        logger.debug("connection error: \(error)")
        context.close(promise: nil)
    }

    private func message(_ payload: ByteBuffer, text: Bool, compressed: Bool) {
        var payload = payload
        if compressed {
            guard let deflate else { return fail(.protocolError, "compressed message without permessage-deflate") }
            do {
                if inflater == nil {
                    inflater = try PerMessageInflater(configuration: .init(
                        windowBits: deflate.clientWindowBits, contextTakeover: !deflate.clientNoContextTakeover,
                        maxMessageSize: server.configuration.maxFrameBytes))
                }
                var bytes: [UInt8] = []
                try payload.withUnsafeReadableBytes { try inflater!.decompress($0, into: &bytes) }
                payload = ByteBuffer(bytes: bytes)
            } catch let error as CompressionError where error == .outputLimitExceeded {
                return fail(.messageTooLarge, "message over \(server.configuration.maxFrameBytes) bytes")
            } catch {
                return fail(.dataInconsistentWithMessage, "bad permessage-deflate data")
            }
        }
        server.metrics.framesIn.increment()
        guard text else {
            return received(.invalid(WireError(.binaryFrame, "binary frames are not part of the protocol; send JSON text frames"), id: nil))
        }
        let maxBody = server.configuration.maxMessageBytes
        let decoded = payload.withUnsafeReadableBytes { bytes -> Result<ClientFrame, WireError>? in
            guard UTF8Validation.isValid(bytes) else { return nil }
            return Result { () throws(WireError) in try ClientFrame.decode(bytes, maxBodyBytes: maxBody) }
        }
        guard let decoded else { return fail(.dataInconsistentWithMessage, "text frame is not valid UTF-8") }
        if server.isClosing { return }
        switch decoded {
        case .success(let frame): received(.frame(frame))
        case .failure(let error): received(.invalid(error, id: Self.clientID(in: Array(payload.readableBytesView))))
        }
    }

    private func received(_ inbound: ConnectionState.Inbound) {
        run(state.received(inbound))
    }

    /// Fails the connection: a close frame with `code`, then the TCP connection is closed.
    private func fail(_ code: WebSocketErrorCode, _ reason: String) {
        guard let context else { return }
        state.closed()
        if !closeSent {
            closeSent = true
            let frame = WebSocketWire.closeFrame(code, reason: reason, allocator: context.channel.allocator)
            context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in context.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: actions

    private func run(_ actions: [ConnectionState.Action]) {
        for action in actions { run(action) }
    }

    private func run(_ action: ConnectionState.Action) {
        switch action {
        case .send(let frame):
            if case .error = frame { server.metrics.frameErrors.increment() }
            writeText(frame.encoded())
        case .write(let chunk, let from):
            write(chunk, from: from)
        case .close(let code, let reason):
            startClose(code, reason)
        case .checkToken(let token):
            let store = server.store
            let hash = Credentials.tokenHash(token)
            Task {
                let result = await Result(catching: { try await store.authenticate(tokenHash: hash, now: Timestamp.nowMillis()) })
                self.eventLoop.execute {
                    switch result {
                    case .success(let user):
                        if user != nil, let id = self.registration { self.server.signedIn(id, tokenHash: hash) }
                        self.run(self.state.tokenChecked(user))
                    case .failure(let error):
                        self.logger.error("token check failed: \(error)")
                        self.run(self.state.tokenCheckFailed())
                    }
                    self.flush()
                }
            }
        case .checkPeer(let name):
            let store = server.store
            Task {
                let exists: Bool? = await Result(catching: { try await store.user(named: name) }).map { $0 != nil }.get(or: nil)
                self.eventLoop.execute {
                    self.run(self.state.peerChecked(name, exists: exists))
                    self.flush()
                }
            }
        case .submit(let conversation, let clientID, let body, let sender):
            let message = NewMessage(conversation: conversation, sender: sender, clientID: clientID, body: body, ts: Timestamp.nowMillis())
            server.committer.submit(message, origin: .connection(self, cid: clientID))
        case .register(let feed):
            if let name = userName { server.hub.add(self, reader: name, feed) }
        case .unregister(let feed):
            server.hub.remove(self, feed)
        case .replay(let feed, let start, let generation):
            guard let name = userName else { return }
            let server = self.server
            Task {
                do {
                    let head = try await server.replay(feed, start: start, reader: name) { chunk in
                        await self.replayPage(chunk, feed: feed, generation: generation)
                    }
                    self.eventLoop.execute {
                        guard let head else { return }
                        self.run(self.state.replayFinished(feed: feed, generation: generation, head: head))
                        self.flush()
                    }
                } catch {
                    server.logger.error("replay failed: \(error)")
                    self.eventLoop.execute {
                        self.run(self.state.replayFailed(feed: feed, generation: generation))
                        self.flush()
                    }
                }
            }
        case .pauseReading:
            readPaused = true
        case .resumeReading:
            readPaused = false
            if readPending, let context {
                readPending = false
                context.read()
            }
        }
    }

    /// Sends a close frame after what is queued; the TCP connection closes when the peer answers, or
    /// after the close timeout.
    private func startClose(_ code: WebSocketErrorCode, _ reason: String) {
        guard let context, !closeSent else { return }
        closeSent = true
        write(WebSocketWire.closeFrame(code, reason: reason, allocator: context.channel.allocator))
        flush()
        timers.append(context.eventLoop.scheduleTask(in: ServerConfiguration.closeTimeout) { context.close(promise: nil) })
    }

    // MARK: writing

    private func write(_ buffer: ByteBuffer) {
        guard let context else { return }
        unflushed += buffer.readableBytes
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func writeText(_ text: String) {
        guard let context else { return }
        write(WebSocketWire.textFrame(text, allocator: context.channel.allocator))
    }

    /// Writes the frames of `chunk` from entry `from` on: the shared bytes as they are, or, with
    /// permessage-deflate, each message compressed in this connection's stream.
    private func write(_ chunk: Chunk, from: Int) {
        guard let deflate, let context else {
            write(chunk.frames(from: from))
            return
        }
        do {
            if deflater == nil {
                // Allocated on the first message, so that idle listeners carry no deflate state.
                deflater = try PerMessageDeflater(configuration: .init(
                    windowBits: deflate.serverWindowBits, contextTakeover: !deflate.serverNoContextTakeover))
            }
            var out: [UInt8] = []
            for i in from..<chunk.entries.count {
                out.removeAll(keepingCapacity: true)
                try chunk.payload(i).withUnsafeReadableBytes { try deflater!.compress($0, into: &out) }
                write(WebSocketWire.frame(opcode: WebSocketWire.text, rsv1: true, payload: out, allocator: context.channel.allocator))
            }
        } catch {
            logger.error("deflate failed: \(error)")
            fail(.unexpectedServerError, "compression failed")
        }
    }

    /// Flushes what was written, then checks what the connection owes the network against its bound.
    func flush() {
        guard let context, unflushed > 0 else { return }
        unflushed = 0
        context.flush()
        checkOutbound()
    }

    private func checkOutbound() {
        guard let context, !gone else { return }
        let pending = (try? options?.getOption(.bufferedWritableBytes)) ?? 0
        switch state.outbound(pending: pending, now: .now()) {
        case .flowing:
            stalled = false
            stallTimer?.cancel()
            stallTimer = nil
            let waiters = roomWaiters
            roomWaiters = []
            for w in waiters { w.succeed(true) }
        case .stalled(let until):
            stalled = true
            if stallTimer == nil {
                stallTimer = context.eventLoop.scheduleTask(deadline: until) { [self] in
                    stallTimer = nil
                    checkOutbound()
                }
            }
        case .cut(let reason):
            cut(reason)
        }
    }

    /// Closes a reader that fell too far behind; it resumes after its last position and loses nothing.
    private func cut(_ reason: String) {
        guard let context else { return }
        server.metrics.slowConsumers.increment()
        logger.info("closing a slow reader: \(reason)")
        state.closed()
        if !closeSent {
            closeSent = true
            write(WebSocketWire.closeFrame(.policyViolation, reason: reason, allocator: context.channel.allocator))
            unflushed = 0
            context.flush()
        }
        timers.append(context.eventLoop.scheduleTask(in: ServerConfiguration.closeTimeout) { context.close(promise: nil) })
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { checkOutbound() }
        context.fireChannelWritabilityChanged()
    }

    // MARK: called by the hub and the replays (on the event loop)

    /// Live messages of `feed`; returns how many frames were written.
    func deliver(_ chunk: Chunk, to feed: Feed) -> Int {
        switch state.deliver(chunk, to: feed) {
        case .none:
            return 0
        case .write(let from):
            write(chunk, from: from)
            return chunk.entries.count - from
        case .cut(let reason):
            cut(reason)
            return 0
        }
    }

    /// Acks (or `unavailable` errors) for `count` of this connection's sends, already framed.
    func answered(_ frames: ByteBuffer, count: Int, firstFailed: String? = nil) {
        write(frames)
        run(state.sendsAnswered(count, firstFailed: firstFailed))
    }

    /// Writes one page of a replay; returns once there is room for the next, or false to stop.
    func replayPage(_ chunk: Chunk, feed: Feed, generation: Int) async -> Bool {
        let promise = eventLoop.makePromise(of: Bool.self)
        eventLoop.execute { [self] in
            switch state.replayed(chunk, feed: feed, generation: generation) {
            case .none: break
            case .write(let from): write(chunk, from: from)
            case .cut(let reason): cut(reason)
            }
            flush()
            guard !gone, state.replayWanted(feed: feed, generation: generation) else { return promise.succeed(false) }
            if stalled { roomWaiters.append(promise) } else { promise.succeed(true) }
        }
        return (try? await promise.futureResult.get()) ?? false
    }

    /// The `id` of a frame that failed to decode, when it is there, so the client can match the error.
    static func clientID(in bytes: [UInt8]) -> String? {
        guard bytes.count < 1 << 20,
              let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any],
              let id = object["id"] as? String, id.utf8.count <= maxClientIDLength
        else { return nil }
        return id
    }
}

extension ByteBuffer {
    /// Applies (or removes) a WebSocket mask in place, eight bytes at a time.
    mutating func unmask(_ key: WebSocketMaskingKey) {
        let k = (key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3])
        let word = withUnsafeBytes(of: k) { $0.loadUnaligned(as: UInt64.self) }
        withUnsafeMutableReadableBytes { p in
            let n = p.count
            var i = 0
            while i + 8 <= n {
                p.storeBytes(of: p.loadUnaligned(fromByteOffset: i, as: UInt64.self) ^ word, toByteOffset: i, as: UInt64.self)
                i += 8
            }
            while i < n {
                p[i] ^= key[i & 3]
                i += 1
            }
        }
    }
}

extension Result {
    /// The success value, or `fallback` on failure.
    func get(or fallback: Success) -> Success {
        (try? get()) ?? fallback
    }
}

extension Result where Failure == any Error {
    /// Runs an async throwing body, catching its error.
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
