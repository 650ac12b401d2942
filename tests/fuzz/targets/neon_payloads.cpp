// The Neon's sensor payloads and its clock (modules/eyetracker/neon_payloads.hpp, net_clients.hpp,
// neon_device.hpp): the gaze, eye event and IMU decoders on RTP payloads, each checked against
// its encoder, and Time Echo replies made into bursts, their estimate and the NeonClock that
// maps every decoded sample's device time (the packet's, the IMU's own tsNs, an eye event's start
// and end) to CLOCK_MONOTONIC as NeonDevice and the module do.
//
// Input: records of one type byte (bits 0-1: 0 gaze, 1 eye event, 2 IMU, 3 a Time Echo burst)
// and a length-prefixed body (u16 big-endian). A burst body is samples of 17 bytes: the round
// trip in ms, then the 16-byte reply (our t1 echoed, the phone's unix ms, both u64 big-endian);
// t1 of the n-th sample overall is 1'700'000'000'000 + 10 n.
#include "fuzz_util.hpp"
#include "neon_device.hpp"
#include "neon_payloads.hpp"
#include "net_clients.hpp"

#include <string>
#include <vector>

using namespace pilogger::neon;

namespace {

constexpr int64_t kFirstHostMs = 1'700'000'000'000;

std::string_view text(std::span<const uint8_t> b) { return fuzz::Input::as_text(b); }
std::span<const uint8_t> bytes(const std::string& s) { return {reinterpret_cast<const uint8_t*>(s.data()), s.size()}; }

struct State {
    NeonClock clock{10};
    int64_t mono_ns = 5'000'000'000'000;       // our clock, 5000 s after boot
    int64_t device_ns = 1'700'000'000'000'000'000;  // the packets' time from the RTP clock
    int64_t next_host_ms = kFirstHostMs;

    void map(int64_t device) {
        std::optional<int64_t> mono = clock.to_mono_ns(device);
        if (mono) FUZZ_CHECK(clock.device_minus_mono_ns().has_value());
    }

    void gaze(std::span<const uint8_t> payload) {
        auto sample = parse_gaze(payload);
        if (!sample) return;
        FUZZ_CHECK(static_cast<size_t>(sample->layout_bytes) == payload.size());
        std::string encoded = encode_gaze(*sample, sample->layout_bytes);
        FUZZ_CHECK(encoded.size() == payload.size());
        auto again = parse_gaze(bytes(encoded));
        FUZZ_CHECK(again && encode_gaze(*again, again->layout_bytes) == encoded);
        map(device_ns);
    }

    void eye_event(std::span<const uint8_t> payload) {
        auto event = parse_eye_event(payload);
        if (!event) return;
        FUZZ_CHECK(std::string_view(to_string(event->type)) != "unknown");
        std::string encoded = encode_eye_event(*event);
        // Every field is kept as sent: the encoder gives back the bytes the type needs.
        FUZZ_CHECK(encoded.size() <= payload.size());
        FUZZ_CHECK(encoded == text(payload.first(encoded.size())));
        if (event->type == EyeEventType::KeepAlive) return;
        map(device_ns);
        map(event->start_ns);
        if (event->end_ns != 0) map(event->end_ns);
    }

    void imu(std::span<const uint8_t> payload) {
        auto sample = parse_imu(payload);
        if (!sample) return;
        std::string encoded = encode_imu(*sample);
        auto again = parse_imu(bytes(encoded));
        FUZZ_CHECK(again && encode_imu(*again) == encoded);
        map(sample->timestamp_ns != 0 ? static_cast<int64_t>(sample->timestamp_ns) : device_ns);
    }

    void time_echo(fuzz::Input body) {
        std::vector<TimeEchoSample> samples;
        while (body.remaining() >= 17) {
            TimeEchoSample s;
            const int64_t rtt_ms = body.u8();
            s.host_unix_ms = next_host_ms;
            next_host_ms += 10;
            s.send_mono_ns = mono_ns;
            s.receive_mono_ns = mono_ns + rtt_ms * 1'000'000;
            mono_ns = s.receive_mono_ns + 1'000'000;
            std::optional<int64_t> phone_ms = time_echo_phone_ms(body.text(16), s.host_unix_ms);
            if (!phone_ms) break;  // TimeEchoClient gives up on a wrong echo
            s.phone_unix_ms = *phone_ms;
            (void)s.offset_ms();
            samples.push_back(s);
        }
        std::optional<int64_t> estimate = estimate_device_minus_mono_ns(samples);
        FUZZ_CHECK(estimate.has_value() == !samples.empty());
        if (estimate) clock.add_burst(samples, *estimate);
        (void)clock.to_device_ns(mono_ns);
        mono_ns += 10'000'000'000;  // the next burst comes 10 s later
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    State state;
    while (!in.empty()) {
        const uint8_t type = in.u8() & 3;
        std::span<const uint8_t> body = in.record();
        state.mono_ns += 5'000'000;
        state.device_ns += 5'000'000;
        switch (type) {
            case 0: state.gaze(body); break;
            case 1: state.eye_event(body); break;
            case 2: state.imu(body); break;
            default: state.time_echo(fuzz::Input(body.data(), body.size())); break;
        }
    }
    return 0;
}
