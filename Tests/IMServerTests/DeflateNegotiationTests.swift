import Testing
@testable import IMServer

@Suite struct DeflateNegotiationTests {
    @Test func plainOfferIsAccepted() {
        let p = DeflateNegotiation.negotiate(offers: ["permessage-deflate"], windowBits: 15)
        #expect(p?.responseHeader == "permessage-deflate")
        #expect(p?.serverWindowBits == 15 && p?.clientWindowBits == 15)
    }

    @Test func browsersOfferIsAnsweredWithTheServersWindow() {
        // What Chrome and Python websockets send.
        let p = DeflateNegotiation.negotiate(offers: ["permessage-deflate; client_max_window_bits"], windowBits: 12)
        #expect(p?.responseHeader == "permessage-deflate; client_max_window_bits=12")
        #expect(p?.serverWindowBits == 12)
        #expect(p?.clientWindowBits == 12)
    }

    @Test func clientWindowIsNotLimitedUnlessOffered() {
        // Without client_max_window_bits the client may use 15 bits: the inflater must too.
        let p = DeflateNegotiation.negotiate(offers: ["permessage-deflate"], windowBits: 10)
        #expect(p?.clientWindowBits == 15)
        #expect(p?.serverWindowBits == 10)
        #expect(p?.responseHeader == "permessage-deflate")
    }

    @Test func parametersAreEchoed() {
        let p = DeflateNegotiation.negotiate(
            offers: ["permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=11"],
            windowBits: 15)
        #expect(p == DeflateParameters(serverWindowBits: 10, clientWindowBits: 11, serverNoContextTakeover: true, clientNoContextTakeover: true,
                                       responseHeader: "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                                           + "server_max_window_bits=10; client_max_window_bits=11"))
    }

    @Test func firstAcceptableOfferWins() {
        // An 8-bit window cannot be written by zlib; a repeated parameter or an unknown one declines an offer.
        let p = DeflateNegotiation.negotiate(
            offers: ["permessage-deflate; server_max_window_bits=8, permessage-deflate; foo, x-webkit-deflate-frame",
                     "permessage-deflate; client_no_context_takeover; client_no_context_takeover", "permessage-deflate; server_max_window_bits=\"12\""],
            windowBits: 15)
        #expect(p?.serverWindowBits == 12)
        #expect(DeflateNegotiation.negotiate(offers: ["x-webkit-deflate-frame"], windowBits: 15) == nil)
        #expect(DeflateNegotiation.negotiate(offers: ["permessage-deflate; server_max_window_bits"], windowBits: 15) == nil)
        #expect(DeflateNegotiation.negotiate(offers: ["permessage-deflate; client_max_window_bits=16"], windowBits: 15) == nil)
    }
}
