#include "csv_writer.hpp"
#include "helpers.hpp"
#include "ndjson.hpp"

#include <doctest/doctest.h>

#include <cstdio>

using namespace pilogger;

TEST_CASE("fields are quoted only when they need it") {
    CHECK(csv_quote("plain") == "plain");
    CHECK(csv_quote("a,b") == "\"a,b\"");
    CHECK(csv_quote("say \"hi\"") == "\"say \"\"hi\"\"\"");
    CHECK(csv_quote("two\nlines") == "\"two\nlines\"");
    CHECK(csv_quote("cr\r") == "\"cr\r\"");
    CHECK(csv_quote("") == "");
}

TEST_CASE("numbers are written in full") {
    CsvRow row;
    row.add(int64_t{1795423975355324058}).add(uint64_t{18446744073709551615ULL}).add(0.1234567, 3).empty().add(-5);
    CHECK(row.line() == "1795423975355324058,18446744073709551615,0.123,,-5\n");
}

TEST_CASE("awkward text round-trips through python3's csv module") {
    const std::vector<std::string> texts = {
        "plain",
        "comma, inside",
        "\"quoted\" and \"\"doubled\"\"",
        "line one\nline two\r\nline three",
        "trailing newline\n",
        "ünïcödé ✓ 日本語 🙂",
        "",
        " leading and trailing spaces ",
        "tab\there",
        ",\",\n,\"",
    };
    test::TempDir dir;
    std::string path = dir.file("round.csv");
    {
        uv::Loop loop;
        AsyncFileWriter writer(loop, path, {"index", "text"});
        for (size_t i = 0; i < texts.size(); ++i) writer.write_row(CsvRow().add(static_cast<int64_t>(i)).add(texts[i]));
        bool closed = false;
        writer.close([&] { closed = true; });
        REQUIRE(test::run_until(loop, [&] { return closed; }));
    }
    std::string out_path = dir.file("round.json");
    std::string command = std::string(PYTHON3) +
                          " -c \"import csv,json,sys; rows=list(csv.reader(open(sys.argv[1], newline='', encoding='utf-8')));"
                          " json.dump(rows, open(sys.argv[2], 'w'))\" " +
                          path + " " + out_path;
    REQUIRE(std::system(command.c_str()) == 0);
    json rows = json::parse(test::read_file(out_path));
    REQUIRE(rows.size() == texts.size() + 1);
    CHECK(rows[0] == json{"index", "text"});
    for (size_t i = 0; i < texts.size(); ++i) {
        CHECK(rows[i + 1][0] == std::to_string(i));
        CHECK(rows[i + 1][1] == texts[i]);
    }
}
