// One RTSP session for one Neon sensor URL (rtsp://<ip>:8086/?camera=gaze, ...): OPTIONS,
// DESCRIBE, SETUP of its track with RTP/RTCP over UDP, PLAY, keep-alives before the session
// timeout, TEARDOWN. Packets come back in sequence order through a small reorder buffer (a late
// packet waits at most reorder_wait_ms), each with the sender's wall-clock time from the RTCP
// sender reports (nullopt before the first report).
//
// FFmpeg's RTSP demuxer is not used: it is blocking, drops payload types it has no depacketizer
// for (gaze, IMU, eye events) and hides the per-packet sender-report mapping this needs.
#pragma once

#include "http_message.hpp"
#include "rtp.hpp"
#include "sdp.hpp"
#include "uv.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace pilogger::neon {

struct RtspStats {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    uint64_t lost = 0;           // sequence numbers never seen
    uint64_t reordered = 0;      // arrived out of order and put back in place
    uint64_t late = 0;           // arrived after their place was given up (dropped)
    uint64_t untimed = 0;        // before the first sender report
    uint64_t sender_reports = 0;
};

// The parts of RTSP answers a session acts on (RFC 2326); pure, for RtspStream, the tests and the
// fuzz targets.
// CSeq of an answer; nullopt when absent or not a number.
std::optional<int> rtsp_cseq(const Response& response);
struct RtspTrack {
    SdpMedia media;
    std::string control_url;  // where SETUP goes
};
// From a DESCRIBE answer: the first video or application medium (else the first), with its clock
// rate, and its control URL resolved against Content-Base, Content-Location or the request URL.
// nullopt with *error set when the SDP gives no usable medium.
std::optional<RtspTrack> rtsp_describe_track(const Response& response, const std::string& request_url, std::string* error);
struct RtspSession {
    std::string id;
    int timeout_s = 60;  // the server's, at least 2 s, at most a day
};
// A SETUP answer's Session header ("id[;timeout=N]"); nullopt when there is no id or it holds
// bytes a header may not carry back (spaces, controls, non-ASCII).
std::optional<RtspSession> rtsp_session(std::string_view header);

class RtspStream {
public:
    struct Callbacks {
        // The track was described and set up (media, SPS/PPS for video); PLAY follows.
        std::function<void(const SdpMedia& media)> described;
        // In sequence order. device_unix_ns is the phone's clock for the packet's timestamp.
        std::function<void(const RtpPacket& packet, std::optional<int64_t> device_unix_ns, bool gap_before)> packet;
        // The session ended without close(): refused, timed out, connection lost. Once.
        std::function<void(const std::string& why)> failed;
    };
    struct Options {
        int request_timeout_ms = 5000;
        int reorder_depth = 32;
        int reorder_wait_ms = 50;
        std::string bind_address = "0.0.0.0";
    };

    RtspStream(uv::Loop& loop, std::string name, Callbacks callbacks, Options options);
    RtspStream(uv::Loop& loop, std::string name, Callbacks callbacks)
        : RtspStream(loop, std::move(name), std::move(callbacks), Options()) {}
    ~RtspStream();
    RtspStream(const RtspStream&) = delete;
    RtspStream& operator=(const RtspStream&) = delete;

    // address: numeric; url: rtsp://host:port/?params (its host is kept in the requests).
    void open(const std::string& address, const std::string& url);
    // Sends TEARDOWN (best effort, not awaited) and closes everything; no callbacks after this.
    void close();

    const std::string& name() const { return name_; }
    bool playing() const { return state_ == State::Playing; }
    const SdpMedia& media() const { return media_; }
    RtspStats stats() const;
    int64_t last_packet_mono_ns() const { return last_packet_mono_ns_; }

private:
    enum class State { Idle, Connecting, Options, Describe, Setup, Play, Playing, Closed };
    void send_request(const std::string& method, const std::string& target,
                      std::map<std::string, std::string> headers);
    void on_response(const Response& response);
    void fail(const std::string& why);
    void bind_udp();
    void on_rtp(std::string_view datagram);
    void on_rtcp(std::string_view datagram);
    void drain_reorder(bool force_oldest);
    bool deliver(const std::string& datagram, bool gap_before);
    void start_keepalive();

    uv::Loop& loop_;
    std::string name_;
    Callbacks callbacks_;
    Options options_;
    State state_ = State::Idle;
    std::string url_;
    std::string control_url_;
    std::string session_;
    int session_timeout_s_ = 60;
    bool keepalive_with_options_ = false;
    int cseq_ = 0;
    std::string pending_method_;
    ResponseParser parser_{1u << 20};
    SdpMedia media_;
    std::unique_ptr<RtpClock> clock_;
    std::unique_ptr<uv::Tcp> tcp_;
    std::unique_ptr<uv::Udp> rtp_socket_;
    std::unique_ptr<uv::Udp> rtcp_socket_;
    std::unique_ptr<uv::Timer> request_timer_;
    std::unique_ptr<uv::Timer> keepalive_timer_;
    std::unique_ptr<uv::Timer> reorder_timer_;
    RtpReorderBuffer reorder_;
    int64_t last_packet_mono_ns_ = 0;
    RtspStats stats_;
};

}  // namespace pilogger::neon
