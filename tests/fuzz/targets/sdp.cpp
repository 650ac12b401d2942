// SDP from RTSP DESCRIBE answers (modules/eyetracker/sdp.hpp): parse_sdp on the input, and for
// every medium what the client derives from it: the H.264 parameter sets (base64 in
// sprop-parameter-sets), the control URL resolved against a base, parsed as a URL again. Also
// base64 on its own: decode(encode(x)) == x for the input, and encode(decode(t)) decodes to the
// same bytes whenever t decodes.
//
// Input: the SDP text.
#include "fuzz_util.hpp"
#include "http_message.hpp"
#include "sdp.hpp"

#include <string>

using namespace pilogger::neon;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    std::string_view text = in.rest_text();
    Sdp sdp = parse_sdp(text);
    for (const SdpMedia& m : sdp.media) {
        FUZZ_CHECK(m.payload_type >= -1 && m.payload_type <= 127);
        if (m.payload_type < 0) FUZZ_CHECK(m.encoding.empty() && m.clock_rate == 0 && m.fmtp.empty());
        std::string sets = sprop_parameter_sets_annexb(m.fmtp);
        if (!sets.empty()) FUZZ_CHECK(sets.compare(0, 4, std::string_view("\0\0\0\1", 4)) == 0);
        for (const std::string& base : {std::string("rtsp://192.168.1.20:8086/?camera=world"), sdp.session_control}) {
            std::string url = resolve_control_url(base, m.control);
            if (m.control.empty() || m.control == "*") FUZZ_CHECK(url == base);
            (void)parse_url(url);
        }
    }

    std::string encoded = base64_encode(text);
    FUZZ_CHECK(encoded.size() % 4 == 0);
    FUZZ_CHECK(base64_decode(encoded) == text);
    std::string decoded = base64_decode(text);
    if (!decoded.empty()) FUZZ_CHECK(base64_decode(base64_encode(decoded)) == decoded);
    return 0;
}
