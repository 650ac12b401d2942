#include "module_message.hpp"

#include <doctest/doctest.h>

using namespace pilogger;

TEST_CASE("a broken answer keeps its id, so its command fails at once") {
    ModuleLine l = read_module_line("{\"id\":12,\"ok\":\"yes\"}");
    CHECK(l.kind == ModuleLine::Kind::Invalid);
    REQUIRE(l.id);
    CHECK(*l.id == 12);
    CHECK(l.field == "ok");
    CHECK(l.problem.find("\"ok\" must be true or false") != std::string::npos);
    // An id on a line that is no answer at all answers nothing.
    CHECK(!read_module_line("{\"id\":12,\"event\":7}").id);
    CHECK(!read_module_line("{\"id\":12}").id);
    ModuleLine result = read_module_line("{\"id\":13,\"ok\":true,\"result\":5}");
    REQUIRE(result.id);
    CHECK(result.field == "result");
}

TEST_CASE("module lines of every wrong shape are values, never exceptions") {
    for (const char* line : {"{\"event\":\"warning\",\"message\":null}", "{\"event\":\"hello\",\"protocol\":1.0}",
                             "{\"id\":9223372036854775808,\"ok\":true}", "{\"event\":\"session\"}",
                             "{\"id\":1,\"ok\":false,\"error\":{\"code\":5}}", "[[[[1]]]]", "\"x\"", "{}"}) {
        std::string text = line;
        CAPTURE(text);
        CHECK(read_module_line(line).kind == ModuleLine::Kind::Invalid);
    }
    CHECK(read_module_line("{\"event\":\"stats\",\"fps\":\"fast\"}").kind == ModuleLine::Kind::Event);
}

TEST_CASE("an error answer keeps its code and message") {
    ModuleLine l = read_module_line("{\"id\":3,\"ok\":false,\"error\":{\"code\":\"bad_state\",\"message\":\"not now\"}}");
    REQUIRE(l.kind == ModuleLine::Kind::Reply);
    CHECK(l.reply.code == "bad_state");
    CHECK(l.reply.message == "not now");
    ModuleLine bare = read_module_line("{\"id\":3,\"ok\":false}");
    REQUIRE(bare.kind == ModuleLine::Kind::Reply);
    CHECK(bare.reply.code == "error");
    ModuleLine wrong = read_module_line("{\"id\":3,\"ok\":false,\"error\":{\"code\":\"c\",\"message\":[1]}}");
    CHECK(wrong.kind == ModuleLine::Kind::Invalid);
    CHECK(wrong.field == "error.message");
}
