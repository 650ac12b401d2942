// SDP parsing, control URLs and base64 (sdp.hpp).
#include "sdp.hpp"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>

using namespace pilogger::neon;

namespace {
// A DESCRIBE answer like the Neon's for ?camera=world&audioenable=on (CRLF line ends).
constexpr std::string_view kWorldSdp =
    "v=0\r\n"
    "o=- 1700000000 1 IN IP4 192.168.1.50\r\n"
    "s=Neon scene camera\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "t=0 0\r\n"
    "a=tool:libavformat\r\n"
    "a=control:*\r\n"
    "a=range:npt=0-\r\n"
    "m=video 0 RTP/AVP 96\r\n"
    "b=AS:8000\r\n"
    "a=rtpmap:96 H264/90000\r\n"
    "a=fmtp:96 packetization-mode=1; profile-level-id=640028; "
    "sprop-parameter-sets=Z2QAKKzZQGQCTYA=,aOvjyyI=\r\n"
    "a=framerate:30\r\n"
    "a=control:trackID=0\r\n"
    "m=audio 0 RTP/AVP 97\r\n"
    "a=rtpmap:97 MPEG4-GENERIC/48000/1\r\n"
    "a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;"
    "config=1188\r\n"
    "a=control:trackID=1\r\n";

// ?camera=gaze: one application track (LF line ends, an absolute control URL).
constexpr std::string_view kGazeSdp =
    "v=0\n"
    "o=- 0 0 IN IP4 192.168.1.50\n"
    "s=Neon gaze\n"
    "t=0 0\n"
    "m=application 0 RTP/AVP 99\n"
    "a=rtpmap:99 com.pupillabs.gaze1/90000\n"
    "a=control:rtsp://192.168.1.50:8086/?camera=gaze/trackID=0\n";
}  // namespace

TEST_CASE("sdp: a Neon-like scene camera answer") {
    Sdp sdp = parse_sdp(kWorldSdp);
    CHECK(sdp.session_control == "*");
    REQUIRE(sdp.media.size() == 2);

    const SdpMedia& video = sdp.media[0];
    CHECK(video.media == "video");
    CHECK(video.payload_type == 96);
    CHECK(video.encoding == "H264");
    CHECK(video.clock_rate == 90000);
    CHECK(video.control == "trackID=0");
    CHECK(video.fmtp.at("packetization-mode") == "1");
    CHECK(video.fmtp.at("profile-level-id") == "640028");
    CHECK(video.fmtp.at("sprop-parameter-sets") == "Z2QAKKzZQGQCTYA=,aOvjyyI=");

    const std::string start_code("\x00\x00\x00\x01", 4);
    const std::string sps("\x67\x64\x00\x28\xAC\xD9\x40\x64\x02\x4D\x80", 11);
    const std::string pps("\x68\xEB\xE3\xCB\x22", 5);
    CHECK(sprop_parameter_sets_annexb(video.fmtp) == start_code + sps + start_code + pps);

    const SdpMedia& audio = sdp.media[1];
    CHECK(audio.media == "audio");
    CHECK(audio.payload_type == 97);
    CHECK(audio.encoding == "MPEG4-GENERIC");
    CHECK(audio.clock_rate == 48000);
    CHECK(audio.fmtp.at("config") == "1188");
    CHECK(audio.control == "trackID=1");
}

TEST_CASE("sdp: the gaze track and lenient parsing") {
    Sdp sdp = parse_sdp(kGazeSdp);
    CHECK(sdp.session_control.empty());
    REQUIRE(sdp.media.size() == 1);
    CHECK(sdp.media[0].media == "application");
    CHECK(sdp.media[0].payload_type == 99);
    CHECK(sdp.media[0].encoding == "com.pupillabs.gaze1");
    CHECK(sdp.media[0].clock_rate == 90000);
    CHECK(sdp.media[0].fmtp.empty());
    CHECK(resolve_control_url("rtsp://192.168.1.50:8086/?camera=gaze", sdp.media[0].control) ==
          "rtsp://192.168.1.50:8086/?camera=gaze/trackID=0");

    // Garbage lines, an rtpmap for another payload type, no clock rate: nothing breaks.
    Sdp odd = parse_sdp(
        "garbage\nx\n=\na=control:rtsp://host/\nm=video 0 RTP/AVP 96 97\n"
        "a=rtpmap:97 VP8/90000\na=rtpmap:96 H264\na=fmtp:96 Packetization-Mode=1;;flag\n"
        "m=application 9 RTP/AVP notanumber\n");
    CHECK(odd.session_control == "rtsp://host/");
    REQUIRE(odd.media.size() == 2);
    CHECK(odd.media[0].payload_type == 96);
    CHECK(odd.media[0].encoding == "H264");
    CHECK(odd.media[0].clock_rate == 0);
    CHECK(odd.media[0].fmtp.at("packetization-mode") == "1");  // names are case-insensitive
    CHECK(odd.media[0].fmtp.at("flag").empty());
    CHECK(odd.media[1].payload_type == -1);
    CHECK(odd.media[1].encoding.empty());
    CHECK(parse_sdp("").media.empty());
}

TEST_CASE("sdp: control URLs are resolved against the base") {
    const std::string base = "rtsp://192.168.1.50:8086/?camera=world";
    CHECK(resolve_control_url(base, "trackID=0") == base + "/trackID=0");
    CHECK(resolve_control_url(base + "/", "trackID=0") == base + "/trackID=0");
    CHECK(resolve_control_url(base + "/", "/trackID=0") == base + "/trackID=0");
    CHECK(resolve_control_url(base, "*") == base);
    CHECK(resolve_control_url(base, "") == base);
    CHECK(resolve_control_url(base, "rtsp://10.0.0.2:8086/stream/track1") == "rtsp://10.0.0.2:8086/stream/track1");
    CHECK(resolve_control_url(base, "rtsps://h/t") == "rtsps://h/t");
}

TEST_CASE("sdp: base64 per RFC 4648") {
    const std::pair<std::string_view, std::string_view> vectors[] = {
        {"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (auto [plain, encoded] : vectors) {
        CAPTURE(plain);
        CHECK(base64_encode(plain) == encoded);
        CHECK(base64_decode(encoded) == plain);
        std::string unpadded(encoded);
        while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
        CHECK(base64_decode(unpadded) == plain);
    }
    CHECK(base64_decode(" Zm9v\r\nYmFy\t") == "foobar");
    CHECK(base64_decode("Zm9v!mFy").empty());  // not in the alphabet
    CHECK(base64_decode("Zg==Zg==").empty());  // data after padding
    CHECK(base64_decode("Zm9vY").empty());     // a lone symbol carries no whole byte
    CHECK(base64_decode("Zg=").empty());       // incomplete padding
    CHECK(base64_decode("Zm8==").empty());     // too much padding
    CHECK(base64_decode("Zm9v-_").empty());    // the URL-safe alphabet is another encoding

    std::string all_bytes;
    for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
    CHECK(base64_decode(base64_encode(all_bytes)) == all_bytes);
}

TEST_CASE("sdp: sprop-parameter-sets absent or undecodable gives nothing") {
    CHECK(sprop_parameter_sets_annexb({}).empty());
    CHECK(sprop_parameter_sets_annexb({{"packetization-mode", "1"}}).empty());
    CHECK(sprop_parameter_sets_annexb({{"sprop-parameter-sets", "Z2QAKA==,!!!"}}).empty());
    CHECK(sprop_parameter_sets_annexb({{"sprop-parameter-sets", "Z2QAKA=="}}) ==
          std::string("\x00\x00\x00\x01\x67\x64\x00\x28", 8));
}

TEST_CASE("sdp: a payload type outside 0..127 is none") {
    Sdp sdp = parse_sdp("m=video 0 RTP/AVP -4\r\na=rtpmap:-4 H264/90000\r\nm=video 0 RTP/AVP 128\r\n"
                        "a=rtpmap:128 H264/90000\r\na=fmtp:128 a=b\r\n");
    REQUIRE(sdp.media.size() == 2);
    for (const auto& m : sdp.media) {
        CHECK(m.payload_type == -1);
        CHECK(m.encoding.empty());
        CHECK(m.clock_rate == 0);
        CHECK(m.fmtp.empty());
    }
}
