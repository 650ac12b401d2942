// The parts of an SDP (RFC 4566) an RTSP client needs: one entry per m= section with its
// payload type, rtpmap encoding and clock rate, fmtp parameters and control URL.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace pilogger::neon {

struct SdpMedia {
    std::string media;              // "video", "application", "audio", ...
    int payload_type = -1;          // first format of the m= line
    std::string encoding;           // rtpmap encoding name, e.g. "H264", "com.pupillabs.gaze1"
    uint32_t clock_rate = 0;        // rtpmap clock rate (0 when absent)
    std::map<std::string, std::string> fmtp;  // a=fmtp key=value pairs for payload_type
    std::string control;            // a=control value (may be relative, "*" or absolute)
};

struct Sdp {
    std::string session_control;    // session-level a=control
    std::vector<SdpMedia> media;
};

// Lenient: unknown lines are ignored; CRLF or LF line ends.
Sdp parse_sdp(std::string_view text);

// The URL to SETUP a track: an absolute control as is, otherwise joined to the base
// (Content-Base or the request URL) with exactly one '/'.
std::string resolve_control_url(const std::string& base_url, const std::string& control);

// RFC 4648 base64 (padding optional, whitespace ignored); empty on invalid input.
std::string base64_decode(std::string_view text);
std::string base64_encode(std::string_view bytes);

// H.264 parameter sets from fmtp sprop-parameter-sets ("base64,base64"): each NAL prefixed with
// an Annex B start code 00 00 00 01. Empty when absent or undecodable.
std::string sprop_parameter_sets_annexb(const std::map<std::string, std::string>& fmtp);

}  // namespace pilogger::neon
