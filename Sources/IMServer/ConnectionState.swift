import IMStorage
import IMWire
import NIOCore
import NIOWebSocket

/// What a subscription follows: one conversation, or every direct conversation of its reader.
enum Feed: Hashable, Sendable {
    case conversation(ConversationKey)
    /// Positions are message ids, not seqs, since they span conversations.
    case allDirect(String)

    var byID: Bool {
        if case .allDirect = self { return true }
        return false
    }
}

/// The protocol logic of one WebSocket connection, as a value: sign-in and the order of frames
/// around it, subscriptions and the replay/live seam, the sends it has in flight and the bound on what
/// it may owe the network. Events go in, actions come out; `ChatConnection` carries them out. No
/// sockets, no tasks; time comes in with the events.
struct ConnectionState {
    /// Bounds of one connection (`ServerConfiguration` holds the defaults and their reasons).
    struct Limits: Sendable {
        var maxMessageBytes: Int
        var maxPendingBytes: Int
        var maxUnackedSends: Int
        var maxUnackedBytes: Int
        var maxQueuedFrames: Int
        var signInTimeout: TimeAmount
        var writeTimeout: TimeAmount
        var maxSubscriptions: Int
        var maxHistory: Int
        /// Sends per second a connection may make on average, and in a burst (0: no limit).
        var sendsPerSecond: Int
        var sendBurst: Int
    }

    /// A decoded client frame, or why it could not be decoded.
    enum Inbound {
        case frame(ClientFrame)
        case invalid(WireError, id: String?)
    }

    /// Work for the channel handler, in order.
    enum Action {
        /// Encode and write a frame.
        case send(ServerFrame)
        /// Write the frames of `chunk` from entry `from` on.
        case write(Chunk, from: Int)
        /// Send a close frame, then close.
        case close(WebSocketErrorCode, String)
        /// Look a token up; answer with `tokenChecked`.
        case checkToken(String)
        /// Look a user up; answer with `peerChecked`.
        case checkPeer(String)
        /// Hand a message to the group committer; answer with `sendsAnswered`.
        case submit(ConversationKey, clientID: String, body: String, sender: String)
        /// Register the feed with the hub (before its replay reads anything), or drop it.
        case register(Feed)
        case unregister(Feed)
        /// Replay stored messages, then call `replayFinished` (or `replayFailed`).
        case replay(Feed, Subscription.Start, generation: Int)
        case pauseReading
        case resumeReading
    }

    /// What to do about one chunk of live or replayed messages.
    enum Delivery {
        case none
        case write(from: Int)
        /// The reader is too far behind: close it (it resumes after its last position).
        case cut(String)
    }

    /// What the bytes owed to the network call for.
    enum Outbound: Equatable {
        /// Below the stall mark: replays may go on.
        case flowing
        /// Above it: replays wait; check again at the deadline (the write timeout).
        case stalled(until: NIODeadline)
        case cut(String)
    }

    private struct Sub {
        var generation: Int
        var replaying = true
        var last: Int64 = 0
        var held: [Chunk] = []
        var heldBytes = 0
        /// The label the client used (`general`, `@bob`, `@*`), named again in `subscribed`.
        var label: String
    }

    private enum Phase {
        case anonymous
        case signedIn(UserRecord)
        case closing
    }

    private enum Wait {
        case token
        case peer(String)
    }

    let limits: Limits
    private var phase: Phase = .anonymous
    private var waiting: Wait?
    private var queue: [Inbound] = [] {
        didSet { queueBytes = queue.reduce(0) { $0 + Self.size(of: $1) } }
    }
    /// Body bytes of the frames waiting in `queue`.
    private var queueBytes = 0

    private static func size(of inbound: Inbound) -> Int {
        if case .frame(.send(_, _, let body)) = inbound { return body.utf8.count }
        return 0
    }
    private var subs: [Feed: Sub] = [:]
    private var knownPeers: Set<String> = []
    private var generation = 0
    private var unacked = 0
    /// Body sizes of the sends in flight, oldest first (answers come in the same order).
    private var unackedSizes: [Int] = []
    private var unackedSizesStart = 0
    private var unackedBytes = 0
    private var readingPaused = false
    private var stalledSince: NIODeadline?
    /// The first send refused for now (over the rate, or the store failed), and how: until the client
    /// sends it again, later sends are refused the same way, so that none overtakes it.
    private var refusedFrom: (id: String, code: WireError.Code)?
    /// The send rate's token bucket.
    private var sendTokens: Double
    private var sendTokensAt: NIODeadline?
    /// The time of the frame being processed (for the send rate).
    private var now: NIODeadline
    /// When a connection that has not signed in is closed.
    let signInDeadline: NIODeadline

    init(limits: Limits, now: NIODeadline) {
        self.limits = limits
        self.signInDeadline = now + limits.signInTimeout
        self.sendTokens = Double(limits.sendBurst)
        self.now = now
    }

    /// The signed-in user, if any.
    var user: UserRecord? {
        if case .signedIn(let u) = phase { return u }
        return nil
    }

    var isClosing: Bool {
        if case .closing = phase { return true }
        return false
    }

    /// Sends handed to the committer and not yet answered.
    var unackedSends: Int { unacked }

    /// Feeds currently followed.
    var feeds: [Feed] { Array(subs.keys) }

    // MARK: sign-in

    /// The connection is open; `headerToken` came in an `Authorization: Bearer` upgrade header.
    mutating func start(headerToken: String?) -> [Action] {
        guard let headerToken else { return [] }
        waiting = .token
        return [.checkToken(headerToken)]
    }

    /// The answer to `checkToken`: the token's user, or nil for a bad token.
    mutating func tokenChecked(_ found: UserRecord?) -> [Action] {
        guard case .token? = waiting, !isClosing else { return [] }
        waiting = nil
        guard let found else {
            return closeAction(.policyViolation, "not authorised",
                               after: [.send(.error(code: .unauthorized, message: "invalid, expired or revoked token", id: nil))])
        }
        phase = .signedIn(found)
        var actions: [Action] = [.send(.authed(user: found.name, maxMessageBytes: limits.maxMessageBytes))]
        actions += drainQueue()
        return actions
    }

    /// The token could not be checked (the store failed): say so, and close so the client retries later.
    mutating func tokenCheckFailed() -> [Action] {
        guard case .token? = waiting, !isClosing else { return [] }
        waiting = nil
        return closeAction(.unexpectedServerError, "store unavailable",
                           after: [.send(.error(code: .unavailable, message: "could not check the token now; try again", id: nil))])
    }

    /// Deadlines: a connection that has not signed in by `signInDeadline` is closed.
    mutating func tick(now: NIODeadline) -> [Action] {
        guard case .anonymous = phase, now >= signInDeadline else { return [] }
        if case .token? = waiting { return [] }  // the answer is on its way
        return closeAction(.policyViolation, "sign-in timeout",
                           after: [.send(.error(code: .unauthorized, message: "sign in within \(limits.signInTimeout.seconds) s", id: nil))])
    }

    // MARK: frames

    /// A frame arrived (frames wait, in order, while a token or user is being looked up).
    mutating func received(_ inbound: Inbound, now: NIODeadline = .now()) -> [Action] {
        self.now = now
        guard !isClosing else { return [] }
        if waiting != nil {
            queue.append(inbound)
            return readingAction()
        }
        return process(inbound)
    }

    private mutating func drainQueue() -> [Action] {
        var actions: [Action] = []
        while waiting == nil, !queue.isEmpty, !isClosing {
            actions += process(queue.removeFirst())
        }
        return actions + readingAction()
    }

    private mutating func process(_ inbound: Inbound) -> [Action] {
        let frame: ClientFrame
        switch inbound {
        case .invalid(let error, let id):
            return [.send(.error(code: error.code, message: error.message, id: id))]
        case .frame(let f):
            frame = f
        }
        switch frame {
        case .auth(let token):
            waiting = .token
            return [.checkToken(token)]
        case .ping(let ref):
            return [.send(.pong(ref: ref))]
        default:
            break
        }
        guard let user else {
            return [.send(.error(code: .unauthorized,
                                 message: "authenticate first: send {\"op\":\"auth\",\"token\":\"…\"} or an Authorization header", id: nil))]
        }
        switch frame {
        case .send(let id, let to, let body):
            if let peer = unknownPeer(to) { return lookUp(peer, then: inbound) }
            if let refused = refusedFrom {
                guard id == refused.id else {
                    return [.send(.error(code: refused.code, message: "resend in order, starting with '\(refused.id)'", id: id))]
                }
                refusedFrom = nil
            }
            guard takeSendToken() else {
                refusedFrom = (id, .rateLimited)
                return [.send(.error(code: .rateLimited, message: "over \(limits.sendsPerSecond) sends per second; resend after a pause",
                                     id: id))]
            }
            unacked += 1
            unackedSizes.append(body.utf8.count)
            unackedBytes += body.utf8.count
            return [.submit(ConversationKey(target: to, user: user.name), clientID: id, body: body, sender: user.name)] + readingAction()
        case .subscribe(let sub):
            if case .target(let t) = sub.scope, let peer = unknownPeer(t) { return lookUp(peer, then: inbound) }
            return subscribe(sub, user: user)
        case .unsubscribe(let to):
            let feed: Feed? = to == "@*" ? .allDirect(user.name) : (try? Target(parsing: to)).map { .conversation(ConversationKey(target: $0, user: user.name)) }
            guard let feed, subs.removeValue(forKey: feed) != nil else { return [] }
            return [.unregister(feed)]
        case .auth, .ping:
            return []
        }
    }

    private func unknownPeer(_ target: Target) -> String? {
        guard case .direct(let peer) = target, !knownPeers.contains(peer) else { return nil }
        return peer
    }

    /// Puts the frame back at the head of the queue and waits for the user lookup.
    private mutating func lookUp(_ peer: String, then inbound: Inbound) -> [Action] {
        waiting = .peer(peer)
        queue.insert(inbound, at: 0)
        return [.checkPeer(peer)]
    }

    /// The answer to `checkPeer`.
    /// The answer to `checkPeer`: whether the user exists, or nil when the store could not say.
    mutating func peerChecked(_ name: String, exists: Bool?) -> [Action] {
        guard case .peer(let waitingFor)? = waiting, waitingFor == name, !isClosing else { return [] }
        waiting = nil
        if exists == true {
            knownPeers.insert(name)
            return drainQueue()
        }
        // The frame that asked is answered with `not_found` (or `unavailable`: retry); the rest go on.
        var actions: [Action] = []
        if !queue.isEmpty, case .frame(let frame) = queue.removeFirst() {
            var id: String?
            if case .send(let cid, _, _) = frame { id = cid }
            actions.append(exists == nil
                ? .send(.error(code: .unavailable, message: "could not look up '\(name)' now; try again", id: id))
                : .send(.error(code: .notFound, message: "no such user '\(name)'", id: id)))
        }
        return actions + drainQueue()
    }

    /// Takes one send from the token bucket (refilled at `sendsPerSecond`, holding at most `sendBurst`).
    private mutating func takeSendToken() -> Bool {
        guard limits.sendsPerSecond > 0 else { return true }
        if let at = sendTokensAt {
            let elapsed = Double((now - at).nanoseconds) / 1e9
            sendTokens = min(Double(limits.sendBurst), sendTokens + max(0, elapsed) * Double(limits.sendsPerSecond))
        }
        sendTokensAt = now
        guard sendTokens >= 1 else { return false }
        sendTokens -= 1
        return true
    }

    private mutating func subscribe(_ sub: Subscription, user: UserRecord) -> [Action] {
        let feed: Feed
        switch sub.scope {
        case .allDirect: feed = .allDirect(user.name)
        case .target(let t): feed = .conversation(ConversationKey(target: t, user: user.name))
        }
        if case .allDirect = feed, case .last = sub.start {
            return [.send(.error(code: .badFrame, message: "'history' needs one conversation; '@*' resumes with 'after_id'", id: nil))]
        }
        if case .last(let n) = sub.start, n > limits.maxHistory {
            return [.send(.error(code: .badFrame, message: "'history' is at most \(limits.maxHistory); page on with 'after'", id: nil))]
        }
        let isNew = subs[feed] == nil
        if isNew, subs.count >= limits.maxSubscriptions {
            return [.send(.error(code: .limit, message: "at most \(limits.maxSubscriptions) subscriptions per connection", id: nil))]
        }
        generation += 1
        // A second `sub` to the same feed replaces the first: its replay's pages and `subscribed` are ignored.
        subs[feed] = Sub(generation: generation, label: sub.scope.description)
        var actions: [Action] = isNew ? [.register(feed)] : []
        actions.append(.replay(feed, sub.start, generation: generation))
        return actions
    }

    private mutating func readingAction() -> [Action] {
        let shouldPause = unacked >= limits.maxUnackedSends || unackedBytes >= limits.maxUnackedBytes
            || queue.count >= limits.maxQueuedFrames || queueBytes >= limits.maxUnackedBytes
        guard shouldPause != readingPaused, !isClosing else { return [] }
        readingPaused = shouldPause
        return [shouldPause ? .pauseReading : .resumeReading]
    }

    // MARK: sends

    /// `count` sends were answered (acked, or refused by the store); `firstFailed` is the first of them
    /// the store refused, if any: later sends wait for it to be sent again.
    mutating func sendsAnswered(_ count: Int, firstFailed: String? = nil) -> [Action] {
        if let firstFailed, refusedFrom == nil { refusedFrom = (firstFailed, .unavailable) }
        let n = min(count, unacked)
        unacked -= n
        for _ in 0..<n {
            unackedBytes -= unackedSizes[unackedSizesStart]
            unackedSizesStart += 1
        }
        if unackedSizesStart > 1024 && unackedSizesStart * 2 > unackedSizes.count {
            unackedSizes.removeFirst(unackedSizesStart)
            unackedSizesStart = 0
        }
        return readingAction()
    }

    // MARK: deliveries

    /// Live messages of `feed`, committed after the subscription was registered.
    mutating func deliver(_ chunk: Chunk, to feed: Feed) -> Delivery {
        guard !isClosing, var sub = subs[feed] else { return .none }
        if sub.replaying {
            // Held until the replay ends; then only what it did not cover is sent.
            sub.heldBytes += chunk.byteCount(from: 0)
            if sub.heldBytes > limits.maxPendingBytes { return cut("too slow: resume after your last seq") }
            sub.held.append(chunk)
            subs[feed] = sub
            return .none
        }
        guard let from = chunk.firstIndex(after: sub.last, byID: feed.byID) else { return .none }
        sub.last = chunk.position(chunk.entries.count - 1, byID: feed.byID)
        subs[feed] = sub
        return .write(from: from)
    }

    /// A page of stored messages for the replay of `generation`.
    mutating func replayed(_ chunk: Chunk, feed: Feed, generation: Int) -> Delivery {
        guard !isClosing, var sub = subs[feed], sub.generation == generation, sub.replaying, !chunk.isEmpty else { return .none }
        guard let from = chunk.firstIndex(after: sub.last, byID: feed.byID) else { return .none }
        sub.last = chunk.position(chunk.entries.count - 1, byID: feed.byID)
        subs[feed] = sub
        return .write(from: from)
    }

    /// Whether the replay of `generation` should go on reading pages.
    func replayWanted(feed: Feed, generation: Int) -> Bool {
        guard !isClosing, let sub = subs[feed] else { return false }
        return sub.generation == generation && sub.replaying
    }

    /// The replay of `generation` ended at `head` (the last position stored when it ended): say
    /// `subscribed`, then send what was held back after the last position sent, and go live.
    mutating func replayFinished(feed: Feed, generation: Int, head: Int64) -> [Action] {
        guard !isClosing, var sub = subs[feed], sub.generation == generation, sub.replaying else { return [] }
        sub.last = max(sub.last, head)
        var actions: [Action] = [.send(.subscribed(to: sub.label, seq: sub.last))]
        for chunk in sub.held {
            guard let from = chunk.firstIndex(after: sub.last, byID: feed.byID) else { continue }
            sub.last = chunk.position(chunk.entries.count - 1, byID: feed.byID)
            actions.append(.write(chunk, from: from))
        }
        sub.held = []
        sub.heldBytes = 0
        sub.replaying = false
        subs[feed] = sub
        return actions
    }

    /// The replay of `generation` could not read the store: the subscription is dropped.
    mutating func replayFailed(feed: Feed, generation: Int) -> [Action] {
        guard !isClosing, let sub = subs[feed], sub.generation == generation else { return [] }
        subs[feed] = nil
        return [.send(.error(code: .unavailable, message: "could not read history of \(sub.label)", id: nil)), .unregister(feed)]
    }

    // MARK: outbound

    /// The bytes written and not yet taken by the network. Past `maxPendingBytes` the reader is cut;
    /// above three quarters of it replays wait, and a reader that stays there for the write timeout
    /// (its TCP window shut) is cut too.
    mutating func outbound(pending: Int, now: NIODeadline) -> Outbound {
        if pending > limits.maxPendingBytes {
            return .cut("too slow: resume after your last seq")
        }
        guard pending > limits.maxPendingBytes / 4 * 3 else {
            stalledSince = nil
            return .flowing
        }
        let since = stalledSince ?? now
        stalledSince = since
        if now - since >= limits.writeTimeout { return .cut("write timeout: resume after your last seq") }
        return .stalled(until: since + limits.writeTimeout)
    }

    // MARK: closing

    /// The token this connection signed in with no longer signs anyone in.
    mutating func revoked() -> [Action] {
        guard user != nil else { return [] }
        return closeAction(.policyViolation, "not authorised",
                           after: [.send(.error(code: .unauthorized, message: "signed out: the token was revoked or expired, or the user's "
                               + "password changed or the user was disabled or removed", id: nil))])
    }

    /// The server is shutting down.
    mutating func shutdown() -> [Action] {
        closeAction(.goingAway, "server shutting down")
    }

    private mutating func cut(_ reason: String) -> Delivery {
        phase = .closing
        return .cut(reason)
    }

    /// Closes, after `actions`; later events do nothing.
    mutating func closeAction(_ code: WebSocketErrorCode, _ reason: String, after actions: [Action] = []) -> [Action] {
        guard !isClosing else { return [] }
        phase = .closing
        queue = []
        return actions + [.close(code, reason)]
    }

    /// Marks the connection closed without an action (the peer closed, or the handler cut it).
    mutating func closed() {
        phase = .closing
        queue = []
    }
}

extension TimeAmount {
    var seconds: Int64 { nanoseconds / 1_000_000_000 }
}
