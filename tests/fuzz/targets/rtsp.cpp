// RTSP answers from the Neon (modules/eyetracker/rtsp_client.hpp): ResponseParser (1 MiB bodies,
// as RtspStream) fed the server's bytes in fuzzer-chosen chunks, and RtspStream::on_response's
// walk through OPTIONS, DESCRIBE, SETUP and PLAY with the same pure steps: rtsp_cseq (stale
// answers skipped), rtsp_describe_track (SDP, track choice, control URL), rtsp_session, and the
// requests that follow, formatted as the client sends them. The sockets are left out.
//
// Input: byte 0 picks the chunking; the rest is what the server sent.
#include "fuzz_util.hpp"
#include "rtsp_client.hpp"

#include <map>
#include <string>

using namespace pilogger::neon;

namespace {

const std::string kUrl = "rtsp://192.168.1.20:8086/?camera=world";

class Session {
public:
    // false once the session failed.
    bool on_response(const Response& r) {
        if (rtsp_cseq(r) != cseq_) return true;  // a stale answer
        if (state_ == State::Playing) {
            return r.status == 200 || ((r.status == 405 || r.status == 501) && method_ == "GET_PARAMETER");
        }
        if (r.status != 200) return false;
        switch (state_) {
            case State::Options:
                state_ = State::Describe;
                request("DESCRIBE", kUrl, {{"Accept", "application/sdp"}});
                break;
            case State::Describe: {
                std::string error;
                std::optional<RtspTrack> track = rtsp_describe_track(r, kUrl, &error);
                if (!track) {
                    FUZZ_CHECK(!error.empty());
                    return false;
                }
                FUZZ_CHECK(track->media.clock_rate > 0);
                RtpClock clock(track->media.clock_rate);
                control_url_ = track->control_url;
                sprop_parameter_sets_annexb(track->media.fmtp);
                state_ = State::Setup;
                request("SETUP", control_url_, {{"Transport", "RTP/AVP;unicast;client_port=20000-20001"}});
                break;
            }
            case State::Setup: {
                std::optional<RtspSession> session = rtsp_session(r.header("Session"));
                if (!session) return false;
                FUZZ_CHECK(!session->id.empty());
                FUZZ_CHECK(session->timeout_s >= 2 && session->timeout_s <= 86400);
                session_ = session->id;
                state_ = State::Play;
                request("PLAY", kUrl, {{"Range", "npt=0.000-"}});
                break;
            }
            case State::Play:
                state_ = State::Playing;
                request("GET_PARAMETER", kUrl, {});
                break;
            default: break;
        }
        return true;
    }

private:
    enum class State { Options, Describe, Setup, Play, Playing };

    void request(const std::string& method, const std::string& target, std::map<std::string, std::string> headers) {
        headers["CSeq"] = std::to_string(++cseq_);
        headers["User-Agent"] = "pilogger-eyetracker";
        if (!session_.empty()) headers["Session"] = session_;
        method_ = method;
        std::string wire = format_request(method, target, "RTSP/1.0", headers);
        // What the device gave us and we send back must not break the request apart.
        FUZZ_CHECK(wire.find("\r\n\r\n") == wire.size() - 4);
        size_t lines = 0;
        for (char c : wire) lines += c == '\n' ? 1 : 0;
        FUZZ_CHECK(lines == headers.size() + 2);
        for (size_t i = 0; i < wire.size(); ++i) {
            if (wire[i] == '\r') FUZZ_CHECK(i + 1 < wire.size() && wire[i + 1] == '\n');
            if (wire[i] == '\n') FUZZ_CHECK(i > 0 && wire[i - 1] == '\r');
        }
    }

    State state_ = State::Options;
    int cseq_ = 1;  // OPTIONS went out with CSeq 1
    std::string method_ = "OPTIONS";
    std::string control_url_;
    std::string session_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    const uint8_t plan = in.u8();
    ResponseParser parser(1u << 20);
    Session session;
    bool closed = false;
    fuzz::for_each_chunk(in.rest_text(), plan, [&](std::string_view chunk) {
        if (closed) return;
        parser.feed(chunk);
        while (!closed) {
            auto response = parser.next();
            if (!response) break;
            closed = !session.on_response(*response);
        }
        if (!parser.error().empty()) closed = true;
    });
    return 0;
}
