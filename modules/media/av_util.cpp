#include "av_util.hpp"

#include "output_queue.hpp"

namespace pilogger {

std::string av_error_text(int code) {
    char text[AV_ERROR_MAX_STRING_SIZE] = {};
    av_strerror(code, text, sizeof text);
    return std::string(text) + " (" + std::to_string(code) + ")";
}

void route_ffmpeg_log(int level) {
    av_log_set_level(level);
    av_log_set_callback([](void* avcl, int line_level, const char* fmt, va_list args) {
        if (line_level > av_log_get_level()) return;
        char line[1024];
        int print_prefix = 1;
        av_log_format_line2(avcl, line_level, fmt, args, line, sizeof line, &print_prefix);
        stderr_queue().write(line);
    });
}

}  // namespace pilogger
