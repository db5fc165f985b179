import Prometheus
import Foundation
import HTTPTypes
import Hummingbird
import IMAuth
import IMStorage
import IMWire
import NIOCore
import NIOPosix

/// A password hash to verify against when the user does not exist, so that the answer takes as long.
private let decoyHash = (try? Credentials.hashPassword("decoy-password-never-matches")) ?? ""

extension ChatServer {
    /// Marks a 401 that only lacks the one-time code.
    static let otpHeader = HTTPField.Name("X-Imctl-Otp")!

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
    }

    static func encode<T: Encodable>(_ value: T) -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return (try? String(decoding: e.encode(value), as: UTF8.self)) ?? "{}"
    }

    /// The signed-in user of a request, from its bearer token.
    func authorize(_ request: Request) async throws -> UserRecord {
        guard let token = Self.bearerToken(request.headers) else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing bearer token")
        }
        let found: UserRecord?
        do {
            found = try await store.authenticate(tokenHash: Credentials.tokenHash(token), now: Timestamp.nowMillis())
        } catch {
            throw Self.unavailable(error)
        }
        guard let user = found else {
            throw HTTPError(.unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "invalid, expired or revoked token")
        }
        return user
    }

    func authorizeAdmin(_ request: Request) async throws -> UserRecord {
        let user = try await authorize(request)
        guard user.isAdmin else { throw HTTPError(.forbidden, message: "admin rights needed") }
        return user
    }

    /// Maps store errors to HTTP statuses.
    static func mapped(_ error: any Error) -> any Error {
        if error is HTTPError { return error }
        if let weak = error as? WeakPassword { return HTTPError(.badRequest, message: weak.description) }
        guard let e = error as? StorageError else {
            return HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: "the store is unavailable; try again")
        }
        if e.isNotFound { return HTTPError(.notFound, message: e.description) }
        if e.isConflict { return HTTPError(.conflict, message: e.description) }
        if e.isInvalidInput { return HTTPError(.badRequest, message: e.description) }
        return HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: "the store is unavailable: \(e.description)")
    }

    func addRoutes(to router: Router<ChatRequestContext>) {
        router.get("/healthz") { _, _ in Self.json(#"{"status":"ok"}"#) }
        router.get(RouterPath(ChatUpgrader.path)) { _, _ -> Response in
            throw HTTPError(.upgradeRequired, headers: [.upgrade: "websocket"], message: "a WebSocket endpoint: connect with ws:// (see docs/PROTOCOL.md)")
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.render())))
        }
        router.post("/v1/login") { request, context in
            let login = try await request.decode(as: API.LoginRequest.self, context: context)
            let ttl = try Self.expiry(seconds: login.ttlSeconds ?? Int64(ServerConfiguration.loginTokenTTL.components.seconds))
            return try await self.login(login.user, login.password, otp: login.otp, expiresAt: ttl, address: context.clientAddress)
        }
        router.post("/v1/logout") { request, _ in
            guard let token = Self.bearerToken(request.headers) else { throw HTTPError(.unauthorized, message: "missing bearer token") }
            _ = try await self.store.revokeToken(hash: Credentials.tokenHash(token))
            return Response(status: .noContent)
        }
        router.get("/v1/me") { request, _ in
            let user = try await self.authorize(request)
            return Self.json(Self.encode(user))
        }
        router.post("/v1/messages") { request, context in
            let user = try await self.authorize(request)
            let post = try await request.decode(as: API.PostMessage.self, context: context)
            return try await self.post(post.to, post.body, id: post.id, user: user)
        }
        router.get("/v1/history") { request, _ in
            let user = try await self.authorize(request)
            let q = request.uri.queryParameters
            guard let to = q.get("to") else { throw HTTPError(.badRequest, message: "give ?to=ROOM or ?to=@user") }
            let target: Target
            do { target = try Target(parsing: to) } catch { throw HTTPError(.badRequest, message: "\(error)") }
            let after = Int64(q.get("after") ?? "0") ?? 0
            let limit = min(max(Int(q.get("limit") ?? "100") ?? 100, 1), 10_000)
            // `last=N`: the newest N instead of those after a seq.
            let last = q.get("last").map { min(max(Int($0) ?? 100, 1), 10_000) }
            let key = ConversationKey(target: target, user: user.name)
            let messages: [StoredMessage]
            do {
                if let last {
                    messages = try await self.lastMessages(in: key, count: last)
                } else {
                    messages = try await self.messages(in: key, afterSeq: after, limit: limit)
                }
            } catch {
                throw Self.unavailable(error)
            }
            // At most `maxHistoryResponseBytes` (and always one message): a client pages on with `after`.
            // With `last`, the newest are kept.
            var lines: [String] = []
            var bytes = 0
            for m in last == nil ? messages : messages.reversed() {
                let line = m.view(for: user.name).jsonLine()
                bytes += line.utf8.count + 1
                if bytes > ServerConfiguration.maxHistoryResponseBytes && !lines.isEmpty { break }
                lines.append(line)
            }
            if last != nil { lines.reverse() }
            return Self.json("{\"messages\":[\(lines.joined(separator: ","))]}")
        }
        router.get("/v1/conversations") { request, _ in
            let user = try await self.authorize(request)
            let limit = min(max(Int(request.uri.queryParameters.get("limit") ?? "100") ?? 100, 1), 1_000)
            let found: [ConversationSummary]
            do { found = try await self.store.conversations(of: user.name, limit: limit) } catch { throw Self.unavailable(error) }
            let items = found.map { c in
                var w = JSONObjectWriter()
                w.add("room", c.conversation.label(for: user.name)); w.add("seq", c.lastSeq); w.add("id", c.lastID)
                w.add("ts", Timestamp.rfc3339(millis: c.lastTS))
                return w.finish()
            }
            return Self.json("{\"conversations\":[\(items.joined(separator: ","))]}")
        }
        addWebRoutes(to: router)
        addAdminRoutes(to: router)
    }

    /// The expiry time of a token that lives `seconds`; 400 for a lifetime out of range (or one whose
    /// arithmetic would overflow).
    static func expiry(seconds: Int64) throws -> Int64 {
        let max = Int64(ServerConfiguration.maxTokenTTL.components.seconds)
        guard seconds >= 1, seconds <= max else {
            throw HTTPError(.badRequest, message: "ttl_seconds must be 1…\(max) (at most \(max / 86_400) days)")
        }
        return Timestamp.nowMillis() + seconds * 1000
    }

    /// Signs a user in. The attempt is reserved with the throttle before the password is hashed, so a
    /// burst of parallel guesses gets no more tries than a patient one; hashing runs on its own pool,
    /// which answers 503 when full.
    private func login(_ name: String, _ password: String, otp: String?, expiresAt: Int64, address: String) async throws -> Response {
        let refused = HTTPError(.unauthorized, message: "wrong user name, password or one-time code")
        if let wait = throttle.reserve(name: name, address: address) {
            metrics.loginFailures.increment()
            let seconds = Int(wait.components.seconds) + 1
            throw HTTPError(.tooManyRequests, headers: [.retryAfter: String(seconds)],
                            message: "too many failed logins; try again in \(seconds)s")
        }
        var outcome = LoginThrottle.Outcome.failed
        defer { throttle.finish(name: name, address: address, outcome) }
        let user: UserRecord?
        let hash: String?
        do {
            user = try await store.user(named: name)
            hash = try await store.passwordHash(of: name)
        } catch {
            outcome = .abandoned
            throw Self.unavailable(error)
        }
        let ok: Bool
        do {
            ok = try await hasher.verify(password, hash: hash ?? decoyHash) && hash != nil
        } catch is PasswordHasher.Busy {
            outcome = .abandoned
            throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: "too many sign-ins at once; try again shortly")
        }
        guard ok, let user, !user.isDisabled, let hash else {
            metrics.loginFailures.increment()
            throw refused
        }
        let secret: String?
        do { secret = try await store.otpSecret(of: name) } catch {
            outcome = .abandoned
            throw Self.unavailable(error)
        }
        if let secret {
            guard let otp else {
                // The password was right; say that a code is needed, so that a client can ask for one. It is
                // not a failure, and the next try (with the code) is reserved anew.
                outcome = .succeeded
                throw HTTPError(.unauthorized, headers: [Self.otpHeader: "required"], message: "user '\(name)' signs in with a one-time code too")
            }
            let step = TOTP.matchingStep(otp, secret: secret, at: Timestamp.nowMillis() / 1000)
            var fresh = false
            if let step {
                do { fresh = try await store.useOTPStep(of: name, step: step) } catch {
                    outcome = .abandoned
                    throw Self.unavailable(error)
                }
            }
            guard fresh else {
                metrics.loginFailures.increment()
                throw refused
            }
        }
        outcome = .succeeded
        metrics.logins.increment()
        if Credentials.needsRehash(hash) {
            // Made with an earlier, weaker cost: re-made now that the password is known. Best effort.
            if let better = try? await hasher.hash(password) {
                try? await store.upgradePasswordHash(of: name, from: hash, to: better)
            }
        }
        let token = Credentials.newToken()
        do {
            _ = try await store.createToken(user: name, tokenHash: Credentials.tokenHash(token), label: "login", expiresAt: expiresAt)
        } catch {
            throw Self.unavailable(error)
        }
        return Self.json(Self.encode(API.LoginAnswer(token: token, user: name, admin: user.isAdmin,
                                                     expires: Timestamp.rfc3339(millis: expiresAt))))
    }

    /// A store failure, as the client should see it: try again later (never 401 or 404).
    static func unavailable(_ error: any Error) -> any Error {
        if error is HTTPError { return error }
        if let e = error as? StorageError, e.isNotFound || e.isConflict || e.isInvalidInput { return mapped(e) }
        return HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: "the store is unavailable; try again")
    }

    private func post(_ to: String, _ body: String, id: String?, user: UserRecord) async throws -> Response {
        let target: Target
        do { target = try Target(parsing: to) } catch { throw HTTPError(.badRequest, message: "\(error)") }
        guard body.utf8.count <= configuration.maxMessageBytes else {
            throw HTTPError(.contentTooLarge, message: "message body is \(body.utf8.count) bytes; the limit is \(configuration.maxMessageBytes)")
        }
        if case .direct(let peer) = target, try await store.user(named: peer) == nil {
            throw HTTPError(.notFound, message: "no such user '\(peer)'")
        }
        let cid = id ?? UUID().uuidString
        guard !cid.isEmpty else { throw HTTPError(.badRequest, message: "'id' must not be empty (leave it out to have one made)") }
        guard cid.utf8.count <= maxClientIDLength else { throw HTTPError(.badRequest, message: "'id' is longer than \(maxClientIDLength) bytes") }
        let message = NewMessage(conversation: ConversationKey(target: target, user: user.name), sender: user.name, clientID: cid,
                                 body: body, ts: Timestamp.nowMillis())
        let outcome = try await committer.submit(message)
        let m = outcome.message
        let ack = Ack(cid: cid, id: m.id, room: m.conversation.label(for: user.name), seq: m.seq, ts: Timestamp.rfc3339(millis: m.ts),
                      duplicate: outcome.duplicate)
        return Self.json(ack.jsonLine(), status: outcome.duplicate ? .ok : .created)
    }

    /// User administration for the admin routes, hashing on the server's hashing threads.
    var directory: UserDirectory {
        UserDirectory(store: store) { password in try await self.hashForAdmin(password) }
    }

    private func hashForAdmin(_ password: String) async throws -> String {
        do {
            return try await hasher.hash(password)
        } catch is PasswordHasher.Busy {
            throw HTTPError(.serviceUnavailable, headers: [.retryAfter: "1"], message: "the server is busy hashing passwords; try again shortly")
        }
    }

    private func addAdminRoutes(to router: Router<ChatRequestContext>) {
        let users = router.group("/v1/users")
        users.get { request, _ in
            _ = try await self.authorizeAdmin(request)
            return Self.json(Self.encode(["users": try await self.store.listUsers()]))
        }
        users.post { request, context in
            _ = try await self.authorizeAdmin(request)
            let new = try await request.decode(as: API.NewUser.self, context: context)
            do {
                let user = try await self.directory.add(new.name, password: new.password, admin: new.admin ?? false)
                return Self.json(Self.encode(user), status: .created)
            } catch { throw Self.mapped(error) }
        }
        users.delete(":name") { request, context in
            _ = try await self.authorizeAdmin(request)
            do { try await self.store.removeUser(named: try context.parameters.require("name")) } catch { throw Self.mapped(error) }
            return Response(status: .noContent)
        }
        users.put(":name/password") { request, context in
            _ = try await self.authorizeAdmin(request)
            let p = try await request.decode(as: API.PasswordChange.self, context: context)
            do { try await self.directory.setPassword(of: try context.parameters.require("name"), to: p.password) } catch { throw Self.mapped(error) }
            return Response(status: .noContent)
        }
        for (path, disabled) in [(":name/disable", true), (":name/enable", false)] {
            users.post(RouterPath(path)) { request, context in
                _ = try await self.authorizeAdmin(request)
                do { try await self.store.setDisabled(try context.parameters.require("name"), disabled) } catch { throw Self.mapped(error) }
                return Response(status: .noContent)
            }
        }
        users.post(":name/tokens") { request, context in
            _ = try await self.authorizeAdmin(request)
            let name = try context.parameters.require("name")
            let spec = try await request.decode(as: API.NewToken.self, context: context)
            let expires = try spec.ttlSeconds.map { try Self.expiry(seconds: $0) }
            do {
                let (token, record) = try await self.directory.mintToken(for: name, expiresAt: expires, label: spec.label)
                let answer = API.TokenAnswer(token: token, id: record.id, expires: expires.map { Timestamp.rfc3339(millis: $0) })
                return Self.json(Self.encode(answer), status: .created)
            } catch { throw Self.mapped(error) }
        }
        users.post(":name/otp") { request, context in
            _ = try await self.authorizeAdmin(request)
            let name = try context.parameters.require("name")
            let spec = try await request.decode(as: API.OTPChange.self, context: context)
            do {
                guard let uri = try await self.directory.setOTP(of: name, enabled: spec.enable) else { return Response(status: .noContent) }
                return Self.json(Self.encode(API.OTPAnswer(uri: uri)))
            } catch { throw Self.mapped(error) }
        }
        users.get(":name/tokens") { request, context in
            _ = try await self.authorizeAdmin(request)
            do {
                return Self.json(Self.encode(["tokens": try await self.store.tokens(of: try context.parameters.require("name"))]))
            } catch { throw Self.mapped(error) }
        }
        users.delete(":name/tokens/:id") { request, context in
            _ = try await self.authorizeAdmin(request)
            let name = try context.parameters.require("name")
            guard let id = Int64(try context.parameters.require("id")) else { throw HTTPError(.badRequest, message: "token id is a number") }
            do { try await self.store.revokeToken(user: name, id: id) } catch { throw Self.mapped(error) }
            return Response(status: .noContent)
        }
        users.delete(":name/tokens") { request, context in
            _ = try await self.authorizeAdmin(request)
            do {
                let n = try await self.store.revokeAllTokens(user: try context.parameters.require("name"))
                return Self.json(Self.encode(API.Revoked(revoked: n)))
            } catch { throw Self.mapped(error) }
        }
    }
}
