// Numbers in words for the panels: durations, sizes, rates, times of day.
#pragma once

#include <QString>

#include <cstdint>

namespace pilogger::gui {

// "0:07", "12:34", "1:02:03"
QString formatDuration(double seconds);
// "512 B", "1.5 KB", "12.3 MB", "4.0 GB" (powers of 1000, as disk tools show them)
QString formatBytes(double bytes);
// "about 3 h 20 min", "about 12 min", "under a minute"
QString formatTimeLeft(double seconds);
// The local time of day of a CLOCK_MONOTONIC instant on this host: "14:03:07".
QString formatMonoAsLocalTime(int64_t mono_ns);

}  // namespace pilogger::gui
