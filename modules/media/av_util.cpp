#include "av_util.hpp"

namespace pilogger {

std::string av_error_text(int code) {
    char text[AV_ERROR_MAX_STRING_SIZE] = {};
    av_strerror(code, text, sizeof text);
    return std::string(text) + " (" + std::to_string(code) + ")";
}

}  // namespace pilogger
