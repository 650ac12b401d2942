#include "format.hpp"

#include "clock.hpp"

#include <QDateTime>

#include <cmath>

namespace pilogger::gui {

QString formatDuration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
    const auto total = static_cast<int64_t>(seconds);
    const int64_t h = total / 3600;
    const int64_t m = (total / 60) % 60;
    const int64_t s = total % 60;
    if (h > 0) return QStringLiteral("%1:%2:%3").arg(h).arg(m, 2, 10, QLatin1Char('0')).arg(s, 2, 10, QLatin1Char('0'));
    return QStringLiteral("%1:%2").arg(m).arg(s, 2, 10, QLatin1Char('0'));
}

QString formatBytes(double bytes) {
    if (bytes < 1000) return QStringLiteral("%1 B").arg(static_cast<int64_t>(bytes));
    const char* units[] = {"KB", "MB", "GB", "TB"};
    double v = bytes / 1000;
    int i = 0;
    while (v >= 1000 && i < 3) {
        v /= 1000;
        ++i;
    }
    return QStringLiteral("%1 %2").arg(v, 0, 'f', v < 10 ? 1 : 0).arg(QLatin1String(units[i]));
}

QString formatTimeLeft(double seconds) {
    if (seconds < 60) return QStringLiteral("under a minute");
    const auto minutes = static_cast<int64_t>(seconds / 60);
    if (minutes < 60) return QStringLiteral("about %1 min").arg(minutes);
    if (minutes >= 48 * 60) return QStringLiteral("about %1 days").arg(minutes / (24 * 60));
    return QStringLiteral("about %1 h %2 min").arg(minutes / 60).arg(minutes % 60);
}

QString formatMonoAsLocalTime(int64_t mono_ns) {
    const int64_t ago_ms = (pilogger::mono_ns() - mono_ns) / 1'000'000;
    return QDateTime::currentDateTime().addMSecs(-ago_ms).toString(QStringLiteral("HH:mm:ss"));
}

}  // namespace pilogger::gui
