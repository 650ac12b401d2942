#include "rtsp_client.hpp"

#include "clock.hpp"

#include <algorithm>
#include <charconv>
#include <random>

namespace pilogger::neon {

namespace {
constexpr const char* kUserAgent = "pilogger-eyetracker";

constexpr int kMinSessionTimeoutS = 2;
constexpr int kMaxSessionTimeoutS = 86400;

// A whole decimal number (leading spaces allowed, nothing after it but `stop`).
std::optional<int> parse_int(std::string_view text, std::string_view stop = {}) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    int value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end == text.data()) return std::nullopt;
    std::string_view after(end, static_cast<size_t>(text.data() + text.size() - end));
    if (!after.empty() && (stop.empty() || stop.find(after.front()) == std::string_view::npos)) return std::nullopt;
    return value;
}

// Bytes we send back in a request line or header: visible ASCII only (no spaces, no controls).
bool visible_ascii(std::string_view s) {
    for (char c : s) {
        if (c <= ' ' || c > '~') return false;
    }
    return true;
}
}  // namespace

std::optional<int> rtsp_cseq(const Response& response) { return parse_int(response.header("CSeq")); }

std::optional<RtspTrack> rtsp_describe_track(const Response& response, const std::string& request_url, std::string* error) {
    Sdp sdp = parse_sdp(response.body);
    if (sdp.media.empty()) {
        *error = "DESCRIBE gave no media";
        return std::nullopt;
    }
    RtspTrack track;
    track.media = sdp.media.front();
    for (const auto& m : sdp.media) {
        if (m.media == "video" || m.media == "application") {
            track.media = m;
            break;
        }
    }
    if (track.media.clock_rate == 0) {
        *error = "the SDP gives no clock rate for " + track.media.encoding.substr(0, 80);
        return std::nullopt;
    }
    std::string base = response.header("Content-Base");
    if (base.empty()) base = response.header("Content-Location");
    if (base.empty()) base = request_url;
    track.control_url = resolve_control_url(base, track.media.control.empty() ? "*" : track.media.control);
    // It goes into the SETUP request line as is.
    if (!visible_ascii(track.control_url)) {
        *error = "the SDP's control URL is not a URL";
        return std::nullopt;
    }
    return track;
}

std::optional<RtspSession> rtsp_session(std::string_view header) {
    size_t semicolon = header.find(';');
    RtspSession session;
    session.id = std::string(header.substr(0, semicolon));
    while (!session.id.empty() && session.id.back() == ' ') session.id.pop_back();
    if (session.id.empty() || !visible_ascii(session.id)) return std::nullopt;
    if (semicolon != std::string_view::npos) {
        std::string_view params = header.substr(semicolon);
        if (size_t t = params.find("timeout="); t != std::string_view::npos) {
            std::optional<int> timeout = parse_int(params.substr(t + 8), "; ");
            if (timeout) session.timeout_s = std::clamp(*timeout, kMinSessionTimeoutS, kMaxSessionTimeoutS);
        }
    }
    return session;
}

RtspStream::RtspStream(uv::Loop& loop, std::string name, Callbacks callbacks, Options options)
    : loop_(loop), name_(std::move(name)), callbacks_(std::move(callbacks)), options_(options) {}

RtspStream::~RtspStream() { close(); }

void RtspStream::close() {
    if (state_ == State::Closed || state_ == State::Idle) {
        state_ = State::Closed;
        return;
    }
    // TEARDOWN goes out if the connection still takes writes; nobody waits for its answer.
    if (tcp_ && !session_.empty()) {
        tcp_->write(format_request("TEARDOWN", control_url_.empty() ? url_ : control_url_, "RTSP/1.0",
                                   {{"CSeq", std::to_string(++cseq_)}, {"Session", session_},
                                    {"User-Agent", kUserAgent}}));
    }
    state_ = State::Closed;
    tcp_.reset();
    rtp_socket_.reset();
    rtcp_socket_.reset();
    request_timer_.reset();
    keepalive_timer_.reset();
    reorder_timer_.reset();
    reorder_.reset();
}

void RtspStream::fail(const std::string& why) {
    if (state_ == State::Closed) return;
    close();
    if (callbacks_.failed) callbacks_.failed("rtsp " + name_ + " (" + url_ + "): " + why);
}

void RtspStream::open(const std::string& address, const std::string& url) {
    close();
    auto parsed = parse_url(url);
    state_ = State::Connecting;
    url_ = url;
    if (!parsed || parsed->scheme != "rtsp") {
        fail("not an rtsp:// URL");
        return;
    }
    session_.clear();
    control_url_.clear();
    cseq_ = 0;
    keepalive_with_options_ = false;
    parser_ = ResponseParser(1u << 20);
    reorder_ = RtpReorderBuffer(
        {options_.reorder_depth, int64_t{options_.reorder_wait_ms} * 1'000'000});
    stats_ = {};
    tcp_ = std::make_unique<uv::Tcp>(loop_);
    request_timer_ = std::make_unique<uv::Timer>(loop_);
    request_timer_->start(static_cast<uint64_t>(options_.request_timeout_ms), 0, [this] { fail("cannot connect in time"); });
    tcp_->connect(address, parsed->port, [this](int status) {
        if (status < 0) {
            fail("connect: " + uv::error_text(status));
            return;
        }
        tcp_->set_nodelay(true);
        tcp_->start_read(
            [this](std::string_view chunk) {
                parser_.feed(chunk);
                while (state_ != State::Closed) {
                    auto response = parser_.next();
                    if (!response) break;
                    on_response(*response);
                }
                if (state_ != State::Closed && !parser_.error().empty()) fail(parser_.error());
            },
            [this](int end) { fail("connection closed (" + uv::error_text(end) + ")"); });
        state_ = State::Options;
        send_request("OPTIONS", url_, {});
    });
}

void RtspStream::send_request(const std::string& method, const std::string& target,
                              std::map<std::string, std::string> headers) {
    headers["CSeq"] = std::to_string(++cseq_);
    headers["User-Agent"] = kUserAgent;
    if (!session_.empty()) headers["Session"] = session_;
    pending_method_ = method;
    tcp_->write(format_request(method, target, "RTSP/1.0", headers));
    request_timer_->start(static_cast<uint64_t>(options_.request_timeout_ms), 0,
                          [this, method] { fail(method + " not answered in time"); });
}

void RtspStream::on_response(const Response& response) {
    if (rtsp_cseq(response) != cseq_) return;  // a stale answer
    request_timer_->stop();
    std::string method = std::move(pending_method_);
    pending_method_.clear();
    bool keepalive = state_ == State::Playing;
    if (keepalive) {
        // GET_PARAMETER is the usual keep-alive; a server without it gets OPTIONS instead.
        if ((response.status == 405 || response.status == 501) && method == "GET_PARAMETER") {
            keepalive_with_options_ = true;
        } else if (response.status == 454) {
            fail("the device forgot the session (454)");
        } else if (response.status != 200) {
            fail(method + " answered " + std::to_string(response.status) + " " + response.reason);
        }
        return;
    }
    if (response.status != 200) {
        fail(method + " answered " + std::to_string(response.status) + " " + response.reason);
        return;
    }
    switch (state_) {
        case State::Options:
            state_ = State::Describe;
            send_request("DESCRIBE", url_, {{"Accept", "application/sdp"}});
            break;
        case State::Describe: {
            std::string error;
            std::optional<RtspTrack> track = rtsp_describe_track(response, url_, &error);
            if (!track) {
                fail(error);
                return;
            }
            media_ = std::move(track->media);
            control_url_ = std::move(track->control_url);
            clock_ = std::make_unique<RtpClock>(media_.clock_rate);
            try {
                bind_udp();
            } catch (const std::exception& e) {
                fail(e.what());
                return;
            }
            state_ = State::Setup;
            send_request("SETUP", control_url_,
                         {{"Transport", "RTP/AVP;unicast;client_port=" + std::to_string(rtp_socket_->local_port()) +
                                            "-" + std::to_string(rtcp_socket_->local_port())}});
            break;
        }
        case State::Setup: {
            std::optional<RtspSession> session = rtsp_session(response.header("Session"));
            if (!session) {
                fail("SETUP gave no usable session (Session: " + response.header("Session").substr(0, 80) + ")");
                return;
            }
            session_ = session->id;
            session_timeout_s_ = session->timeout_s;
            if (callbacks_.described) callbacks_.described(media_);
            if (state_ == State::Closed) return;
            state_ = State::Play;
            send_request("PLAY", url_, {{"Range", "npt=0.000-"}});
            break;
        }
        case State::Play:
            state_ = State::Playing;
            start_keepalive();
            break;
        default:
            break;
    }
}

void RtspStream::start_keepalive() {
    keepalive_timer_ = std::make_unique<uv::Timer>(loop_);
    // Half the timeout leaves room for one lost or slow keep-alive.
    auto period_ms = static_cast<uint64_t>(session_timeout_s_) * 500;
    keepalive_timer_->start(period_ms, period_ms, [this] {
        if (!pending_method_.empty()) return;  // one request at a time
        if (keepalive_with_options_) {
            send_request("OPTIONS", url_, {});
        } else {
            send_request("GET_PARAMETER", url_, {});
        }
    });
    reorder_timer_ = std::make_unique<uv::Timer>(loop_);
    reorder_timer_->start(10, 10, [this] { drain_reorder(false); });
}

void RtspStream::bind_udp() {
    // RTP on an even port and RTCP on the next one (RFC 3550 11); retry when either is taken.
    std::mt19937 random(static_cast<uint32_t>(mono_ns()));
    for (int attempt = 0; attempt < 50; ++attempt) {
        int rtp_port = static_cast<int>(20000 + 2 * (random() % 20000));
        try {
            auto rtp = std::make_unique<uv::Udp>(loop_);
            rtp->bind(options_.bind_address, rtp_port);
            auto rtcp = std::make_unique<uv::Udp>(loop_);
            rtcp->bind(options_.bind_address, rtp_port + 1);
            rtp_socket_ = std::move(rtp);
            rtcp_socket_ = std::move(rtcp);
        } catch (const uv::Error&) {
            continue;
        }
        // Gaze and video bursts must not overflow the kernel's default socket buffer.
        rtp_socket_->set_receive_buffer(4 << 20);
        rtp_socket_->start_receive([this](std::string_view d, const sockaddr*) { on_rtp(d); });
        rtcp_socket_->start_receive([this](std::string_view d, const sockaddr*) { on_rtcp(d); });
        return;
    }
    throw std::runtime_error("no free UDP port pair for RTP/RTCP");
}

void RtspStream::on_rtcp(std::string_view datagram) {
    if (!clock_) return;
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(datagram.data()), datagram.size());
    for (const SenderReport& report : parse_rtcp_sender_reports(bytes)) {
        clock_->on_sender_report(report);
        ++stats_.sender_reports;
    }
}

void RtspStream::on_rtp(std::string_view datagram) {
    if (state_ != State::Playing && state_ != State::Play) return;
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(datagram.data()), datagram.size());
    auto packet = parse_rtp(bytes);
    if (!packet || packet->payload_type != media_.payload_type) return;
    int64_t now = mono_ns();
    last_packet_mono_ns_ = now;
    if (reorder_.push(packet->sequence, std::string(datagram), now)) drain_reorder(false);
}

void RtspStream::drain_reorder(bool force_oldest) {
    reorder_.drain(mono_ns(), force_oldest, [this](std::string&& datagram, bool gap) {
        return state_ != State::Closed && deliver(datagram, gap);
    });
}

bool RtspStream::deliver(const std::string& datagram, bool gap_before) {
    auto bytes = std::span(reinterpret_cast<const uint8_t*>(datagram.data()), datagram.size());
    auto packet = parse_rtp(bytes);
    if (!packet) return true;
    ++stats_.packets;
    stats_.bytes += datagram.size();
    std::optional<int64_t> device_ns = clock_ ? clock_->to_unix_ns(packet->timestamp) : std::nullopt;
    if (!device_ns) ++stats_.untimed;
    if (callbacks_.packet) callbacks_.packet(*packet, device_ns, gap_before);
    return state_ != State::Closed;
}

RtspStats RtspStream::stats() const {
    RtspStats out = stats_;
    out.lost = reorder_.stats().lost;
    out.reordered = reorder_.stats().reordered;
    out.late = reorder_.stats().late;
    return out;
}

}  // namespace pilogger::neon
