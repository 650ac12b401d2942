// The Pico W serial link (logger_core/pico/psync.hpp): the byte stream cut into fuzzer-chosen chunks
// through psync::LineSplitter as PicoSession::on_data does, psync::parse_line on every line, and
// what PicoSession::handle_line does with a parsed line that needs no device: the seq tracker, the
// PING/PONG exchanges into the clock fit (SyncExchange, ClockFit, as PicoClockSync::finish_burst
// keeps the quickest of each burst), LED times mapped to host time, heartbeat LED masks, the rows
// of pico/sync.csv and pico/led.csv, and the trial-code instants sent back. PicoLink itself needs a
// serial port and a loop, so its private glue is mirrored here, its arithmetic is the real one.
//
// Input: byte 0 picks the chunking and the LED channel (bits 5-7); the rest is the serial stream.
#include "clock_fit.hpp"
#include "csv_writer.hpp"
#include "fuzz_util.hpp"
#include "pico_config.hpp"
#include "psync.hpp"

#include <cmath>
#include <optional>
#include <string>
#include <vector>

using namespace pilogger;

namespace {

constexpr size_t kBurst = 4;  // PONGs per simulated burst

class Link {
public:
    explicit Link(int led_channel)
        : channel_(led_channel), fit_(ClockFitOptions{PicoConfig{}.fit_window_s * 1'000'000'000, 400, 2'000'000'000}) {}

    void line(std::string_view text) {
        FUZZ_CHECK(!text.empty());
        FUZZ_CHECK(text.size() <= psync::kMaxLineBytes);
        FUZZ_CHECK(text.find_first_of("\r\n") == std::string_view::npos);
        host_ns_ += 1'000'000;  // one line per ms on our (trusted) clock

        std::optional<psync::Line> parsed = psync::parse_line(text);
        if (!parsed) return;
        const psync::Line& l = *parsed;
        FUZZ_CHECK(!l.word.empty());
        if (l.kind == psync::Kind::Hello) {
            FUZZ_CHECK(!l.boot.empty() && l.proto >= 1);
            if (l.boot != boot_) {  // a new boot: a new clock segment
                boot_ = l.boot;
                fit_.reset();
                seq_.reset();
                pongs_.clear();
            }
            ready_ = true;
            return;
        }
        if (!ready_) return;
        if (l.has_seq) {
            uint64_t lost = 0;
            if (seq_.add(l.seq, &lost) == psync::SeqTracker::Result::Back) return;  // ignored, as the link does
            FUZZ_CHECK(lost <= psync::kSeqMax);
        }
        switch (l.kind) {
            case psync::Kind::Pong: pong(l); break;
            case psync::Kind::Led: led(l); break;
            case psync::Kind::Heartbeat: {
                bool on = ((l.led_mask >> channel_) & 1u) != 0;
                (void)on;
                break;
            }
            case psync::Kind::Err:
                FUZZ_CHECK(l.code >= 0 && l.code <= 1000);
                (void)("cmd_id=" + l.cmd_id + " code=" + std::to_string(l.code) + " " + l.err_word);
                break;
            case psync::Kind::Log: (void)(l.text.rfind("late", 0) == 0); break;
            default: break;
        }
    }

private:
    void pong(const psync::Line& l) {
        FUZZ_CHECK(!l.nonce.empty() && l.nonce.size() <= psync::kMaxIdChars);
        SyncExchange x;
        x.host_t1_ns = host_ns_ - 700'000;
        x.pico_rx_us = l.t_rx_us;
        x.pico_tx_us = l.t_tx_us;
        x.host_t4_ns = host_ns_;
        pongs_.push_back(x);
        if (pongs_.size() == kBurst) finish_burst();
    }

    // PicoClockSync::finish_burst: the quickest plausible exchange goes into the fit; every exchange
    // makes a sync.csv row.
    void finish_burst() {
        int best = -1;
        double best_rtt = 0;
        for (size_t i = 0; i < pongs_.size(); ++i) {
            double rtt = pongs_[i].rtt_us();
            if (rtt < -10) continue;
            if (best < 0 || rtt < best_rtt) {
                best = static_cast<int>(i);
                best_rtt = rtt;
            }
        }
        if (best >= 0) {
            const SyncExchange& x = pongs_[static_cast<size_t>(best)];
            bool keep = true;
            if (fit_.points() >= 3) {
                double jump = x.offset_us() - fit_.offset_us_at(x.host_mid_ns());
                keep = std::fabs(jump) <= 50'000 || ++implausible_ >= 3;
                if (implausible_ >= 3) {
                    fit_.reset();
                    implausible_ = 0;
                }
            }
            if (keep) fit_.add(x.host_mid_ns(), x.offset_us(), best_rtt);
        }
        for (const SyncExchange& x : pongs_) {
            CsvRow row;
            row.add(x.host_t1_ns).add(x.pico_rx_us).add(x.pico_tx_us).add(x.host_t4_ns).add(x.rtt_us(), 3);
            if (fit_.valid()) {
                row.add(fit_.offset_us_at(x.host_t4_ns), 3).add(fit_.drift_ppm(), 4).add(fit_.residual_us(), 3);
            }
            FUZZ_CHECK(row.line().back() == '\n');
        }
        pongs_.clear();
        if (fit_.valid()) {
            // The trial code's start instant in Pico time (PicoLed::send_trial_code).
            double p = fit_.pico_us_at(host_ns_ + 200'000'000);
            if (p > 0) (void)psync::code("t1code", channel_, psync::trial_code_hex(1), 50, static_cast<uint64_t>(std::llround(p)));
        }
    }

    void led(const psync::Line& l) {
        FUZZ_CHECK(l.channel >= 0 && l.channel <= 255 && l.level >= 0 && l.level <= 65535);
        CsvRow row;
        row.add(static_cast<uint64_t>(l.seq)).add(l.t_us);
        if (fit_.valid()) {
            row.add(fit_.host_ns_at(l.t_us));
        } else {
            row.empty();
        }
        row.add(l.channel).add(l.level).add(l.cmd_id);
        FUZZ_CHECK(row.fields() == 6);
    }

    int channel_;
    ClockFit fit_;
    psync::SeqTracker seq_;
    std::vector<SyncExchange> pongs_;
    std::string boot_;
    bool ready_ = false;
    int implausible_ = 0;
    int64_t host_ns_ = 5'000'000'000'000;  // CLOCK_MONOTONIC of a host up for 5000 s
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Input in(data, size);
    const uint8_t plan = in.u8();
    Link link(plan >> 5);
    psync::LineSplitter splitter;
    fuzz::for_each_chunk(in.rest_text(), plan, [&](std::string_view chunk) {
        splitter.feed(chunk, [&](std::string_view line) { link.line(line); });
        if (splitter.prompt_pending()) splitter.reset();  // PicoSession::recover_from_prompt
    });
    return 0;
}
