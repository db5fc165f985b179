/// The bodies of the HTTP JSON API (docs/PROTOCOL.md, "HTTP JSON API"), shared by the server that
/// decodes and writes them and the clients that write and decode them. Field names are the wire's.
public enum API {
    /// `POST /v1/login`.
    public struct LoginRequest: Codable, Sendable, Equatable {
        public var user: String
        public var password: String
        public var otp: String?
        /// The token's lifetime in seconds (the server's default when absent).
        public var ttlSeconds: Int64?

        public init(user: String, password: String, otp: String? = nil, ttlSeconds: Int64? = nil) {
            self.user = user
            self.password = password
            self.otp = otp
            self.ttlSeconds = ttlSeconds
        }

        enum CodingKeys: String, CodingKey {
            case user, password, otp
            case ttlSeconds = "ttl_seconds"
        }
    }

    /// The answer to a login: the token, once.
    public struct LoginAnswer: Codable, Sendable, Equatable {
        public var token: String
        public var user: String
        public var admin: Bool
        public var expires: String

        public init(token: String, user: String, admin: Bool, expires: String) {
            self.token = token
            self.user = user
            self.admin = admin
            self.expires = expires
        }
    }

    /// `POST /v1/messages`.
    public struct PostMessage: Codable, Sendable, Equatable {
        public var to: String
        public var body: String
        public var id: String?

        public init(to: String, body: String, id: String? = nil) {
            self.to = to
            self.body = body
            self.id = id
        }
    }

    /// `POST /v1/users`.
    public struct NewUser: Codable, Sendable, Equatable {
        public var name: String
        public var password: String
        public var admin: Bool?

        public init(name: String, password: String, admin: Bool? = nil) {
            self.name = name
            self.password = password
            self.admin = admin
        }
    }

    /// `PUT /v1/users/NAME/password`.
    public struct PasswordChange: Codable, Sendable, Equatable {
        public var password: String

        public init(password: String) { self.password = password }
    }

    /// `POST /v1/users/NAME/otp`.
    public struct OTPChange: Codable, Sendable, Equatable {
        public var enable: Bool

        public init(enable: Bool) { self.enable = enable }
    }

    /// The answer to turning two-factor sign-in on: the secret, once, for an authenticator app.
    public struct OTPAnswer: Codable, Sendable, Equatable {
        public var uri: String

        public init(uri: String) { self.uri = uri }
    }

    /// `POST /v1/users/NAME/tokens`.
    public struct NewToken: Codable, Sendable, Equatable {
        public var ttlSeconds: Int64?
        public var label: String?

        public init(ttlSeconds: Int64? = nil, label: String? = nil) {
            self.ttlSeconds = ttlSeconds
            self.label = label
        }

        enum CodingKeys: String, CodingKey {
            case label
            case ttlSeconds = "ttl_seconds"
        }
    }

    /// The answer to minting a token: the token, once, and its id.
    public struct TokenAnswer: Codable, Sendable, Equatable {
        public var token: String
        public var id: Int64
        public var expires: String?

        public init(token: String, id: Int64, expires: String? = nil) {
            self.token = token
            self.id = id
            self.expires = expires
        }
    }

    /// The answer to revoking all of a user's tokens.
    public struct Revoked: Codable, Sendable, Equatable {
        public var revoked: Int

        public init(revoked: Int) { self.revoked = revoked }
    }
}
