#include "clock_fit.hpp"

#include "checked_math.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace pilogger {

double SyncExchange::rtt_us() const {
    int64_t host_ns = host_t4_ns - host_t1_ns;
    int64_t pico_us = static_cast<int64_t>(pico_tx_us) - static_cast<int64_t>(pico_rx_us);
    return static_cast<double>(host_ns) / 1e3 - static_cast<double>(pico_us);
}

double SyncExchange::offset_us() const {
    // ((t_rx - t1) + (t_tx - t4)) / 2 in ns; every term is below 2^63 for centuries of uptime.
    int64_t a = static_cast<int64_t>(pico_rx_us) * 1000 - host_t1_ns;
    int64_t b = static_cast<int64_t>(pico_tx_us) * 1000 - host_t4_ns;
    return (static_cast<double>(a) + static_cast<double>(b)) / 2e3;
}

namespace {

// Median of v (reorders it). v must not be empty.
double median(std::vector<double>& v) {
    size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
    double hi = v[mid];
    if (v.size() % 2 == 1) return hi;
    double lo = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
    return (lo + hi) / 2;
}

}  // namespace

void ClockFit::add(int64_t host_ns, double offset_us, double rtt_us) {
    points_.push_back(Point{host_ns, offset_us, rtt_us});
    while (!points_.empty() && (host_ns - points_.front().host_ns > options_.window_ns ||
                                points_.size() > options_.max_points)) {
        points_.pop_front();
    }
    refit();
}

void ClockFit::reset() {
    points_.clear();
    ref_ns_ = 0;
    offset_c_us_ = 0;
    drift_ppm_ = 0;
    residual_us_ = 0;
}

void ClockFit::refit() {
    const size_t n = points_.size();
    if (n == 0) return;
    ref_ns_ = points_.back().host_ns;
    // x in seconds before the newest point, y the offset in us: the slope is then in ppm.
    std::vector<double> x(n);
    std::vector<double> y(n);
    for (size_t i = 0; i < n; ++i) {
        x[i] = static_cast<double>(points_[i].host_ns - ref_ns_) / 1e9;
        y[i] = points_[i].offset_us;
    }
    std::vector<double> scratch;
    scratch.reserve(n * (n - 1) / 2);

    double slope = 0;
    bool fit_drift = n >= 3 && span_ns() >= options_.min_drift_span_ns;
    if (fit_drift) {
        // Theil-Sen: the median of all pairwise slopes ignores up to ~29 % outliers.
        for (size_t i = 0; i < n; ++i) {
            for (size_t j = i + 1; j < n; ++j) {
                double dx = x[j] - x[i];
                if (dx > 0) scratch.push_back((y[j] - y[i]) / dx);
            }
        }
        if (!scratch.empty()) slope = median(scratch);
    }
    scratch.assign(n, 0);
    for (size_t i = 0; i < n; ++i) scratch[i] = y[i] - slope * x[i];
    double intercept = median(scratch);

    auto spread = [&](double c, double s) {
        for (size_t i = 0; i < n; ++i) scratch[i] = std::fabs(y[i] - c - s * x[i]);
        return 1.4826 * median(scratch);
    };
    double sigma = spread(intercept, slope);

    // Weighted least squares over the inliers recovers the efficiency Theil-Sen gives up and
    // leans on the exchanges with the shortest round trips, which have the least room for a
    // lopsided delay; outliers beyond 3 sigma stay out.
    if (fit_drift) {
        double limit = std::max(3 * sigma, 1.0);
        double rtt_min = points_.front().rtt_us;
        for (const Point& p : points_) rtt_min = std::min(rtt_min, p.rtt_us);
        double floor2 = options_.rtt_floor_us * options_.rtt_floor_us;
        double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
        size_t m = 0;
        for (size_t i = 0; i < n; ++i) {
            if (std::fabs(y[i] - intercept - slope * x[i]) > limit) continue;
            double excess = (points_[i].rtt_us - rtt_min) / 2;
            double w = 1 / (floor2 + excess * excess);
            sw += w;
            sx += w * x[i];
            sy += w * y[i];
            sxx += w * x[i] * x[i];
            sxy += w * x[i] * y[i];
            ++m;
        }
        double det = sw * sxx - sx * sx;
        if (m >= 3 && det > 1e-9 * sw * sw) {
            slope = (sw * sxy - sx * sy) / det;
            intercept = (sy - slope * sx) / sw;
            sigma = spread(intercept, slope);
        }
    }
    offset_c_us_ = intercept;
    drift_ppm_ = slope;
    residual_us_ = sigma;
}

double ClockFit::offset_us_at(int64_t host_ns) const {
    // A time from a device's word may be anywhere in int64: its distance is then taken in doubles.
    std::optional<int64_t> since_ref = checked_sub(host_ns, ref_ns_);
    const double since_ref_ns = since_ref ? static_cast<double>(*since_ref) : static_cast<double>(host_ns) - static_cast<double>(ref_ns_);
    return offset_c_us_ + drift_ppm_ * since_ref_ns / 1e9;
}

double ClockFit::pico_us_at(int64_t host_ns) const {
    // Whole microseconds kept exact in the integer part.
    double host_us = static_cast<double>(host_ns / 1000) + static_cast<double>(host_ns % 1000) / 1e3;
    return host_us + offset_us_at(host_ns);
}

int64_t ClockFit::host_ns_at(uint64_t pico_us) const {
    // pico = ref/1e3 + c + d * (1 + e) / 1e3 with d = host - ref in ns.
    double q = static_cast<double>(static_cast<int64_t>(pico_us) - ref_ns_ / 1000) -
               static_cast<double>(ref_ns_ % 1000) / 1e3 - offset_c_us_;
    double d = q * 1e3 / (1.0 + drift_ppm_ * 1e-6);
    return ref_ns_ + std::llround(d);
}

}  // namespace pilogger
