#include "csv_writer.hpp"
#include "helpers.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <functional>

using namespace pilogger;

namespace {
void close_writer(uv::Loop& loop, AsyncFileWriter& writer) {
    bool closed = false;
    writer.close([&] { closed = true; });
    REQUIRE(test::run_until(loop, [&] { return closed; }));
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t nl; (nl = text.find('\n', start)) != std::string::npos; start = nl + 1) out.push_back(text.substr(start, nl - start));
    return out;
}

// The writer's clock, moved by the test: its sync rule runs on this time instead of the wall's.
struct FakeClock {
    int64_t now_ns = 1'000'000'000;
    void advance_ms(int64_t ms) { now_ns += ms * 1'000'000; }
    std::function<int64_t()> function() {
        return [this] { return now_ns; };
    }
};
}  // namespace

TEST_CASE("rows land in order with the header first") {
    test::TempDir dir;
    uv::Loop loop;
    AsyncFileWriter writer(loop, dir.file("a.csv"), {"n", "text"});
    for (int i = 0; i < 10000; ++i) CHECK(writer.write_row(CsvRow().add(i).add("row")));
    close_writer(loop, writer);
    auto lines = lines_of(test::read_file(dir.file("a.csv")));
    REQUIRE(lines.size() == 10001);
    CHECK(lines[0] == "n,text");
    for (int i = 0; i < 10000; ++i) CHECK(lines[static_cast<size_t>(i) + 1] == std::to_string(i) + ",row");
    CHECK(writer.stats().rows_written == 10000);
    CHECK(writer.stats().rows_dropped == 0);
    CHECK(writer.stats().syncs >= 1);
}

TEST_CASE("rows reach the file within the flush interval, without close") {
    test::TempDir dir;
    uv::Loop loop;
    FakeClock clock;
    FileWriterOptions options;
    options.flush_interval_ms = 100;
    options.clock = clock.function();
    AsyncFileWriter writer(loop, dir.file("live.csv"), {"n"}, options);
    writer.write_row(CsvRow().add(42));
    // Well within the 250 ms promise, and through the timer, not an eager write. The one wall-clock
    // budget here: the real timer's first tick at 100 ms, with 1.5 ticks to spare for a loaded
    // machine (the loop has nothing else to do).
    CHECK(test::run_until(loop, [&] { return test::read_file(dir.file("live.csv")) == "n\n42\n"; }, 250));
    // A second after the write on the writer's clock, the timer's next tick fdatasyncs it.
    clock.advance_ms(1000);
    const bool synced = test::run_until(loop, [&] { return writer.stats().syncs >= 1; });
    CHECK(synced);  // fdatasync'd within a second of the write
    close_writer(loop, writer);
}

TEST_CASE("a file written all the time is fdatasync'd at least once a second") {
    test::TempDir dir;
    uv::Loop loop;
    FakeClock clock;
    FileWriterOptions options;  // the defaults: 200 ms flush, 1 s sync
    options.clock = clock.function();
    AsyncFileWriter writer(loop, dir.file("stream.csv"), {"n"}, options);
    std::vector<int64_t> sync_times;
    uint64_t syncs_seen = 0;
    // A row every 5 ms and a tick every 200 ms of the writer's clock; flush() does what the
    // timer's tick does. Each tick's writes finish before the clock moves on; a sync may take
    // longer, as a slow disk's does.
    for (int64_t n = 0; sync_times.size() < 5 && n < 2000; ++n) {
        clock.advance_ms(5);
        writer.write_row(CsvRow().add(n));
        if (n % 40 == 39) {
            bool written = false;
            writer.flush(false, [&](bool) { written = true; });
            REQUIRE(test::run_until(loop, [&] { return written; }));
        }
        if (writer.stats().syncs != syncs_seen) {
            syncs_seen = writer.stats().syncs;
            sync_times.push_back(writer.stats().last_sync_started_mono_ns);
        }
    }
    REQUIRE(sync_times.size() >= 5);
    for (size_t i = 1; i < sync_times.size(); ++i) {
        // Issued at most a second apart (plus a turn of the loop), however long each one takes.
        CHECK((sync_times[i] - sync_times[i - 1]) / 1'000'000 <= 1050);
    }
    close_writer(loop, writer);
}

TEST_CASE("a row written just after a sync waits less than a second for the next one") {
    test::TempDir dir;
    uv::Loop loop;
    FakeClock clock;
    FileWriterOptions options;  // the defaults: 200 ms flush, 1 s sync
    options.clock = clock.function();
    AsyncFileWriter writer(loop, dir.file("late.csv"), {"n"}, options);
    writer.write_row(CsvRow().add(1));
    int64_t written_at = 0;
    uint64_t syncs_then = 0;
    writer.flush(true, [&](bool ok) {
        CHECK(ok);
        // The sync just finished: this row is the oldest unsynced byte, written at once.
        syncs_then = writer.stats().syncs;
        written_at = clock.now_ns;
        writer.write_row(CsvRow().add(2));
        writer.flush();
    });
    REQUIRE(test::run_until(loop, [&] { return written_at != 0 && writer.stats().rows_written == 2; }));
    // Punctual 200 ms ticks of the writer's clock (flush() does what the timer's tick does) until
    // one issues the sync.
    for (int tick = 0; tick < 10 && writer.stats().last_sync_started_mono_ns <= written_at; ++tick) {
        clock.advance_ms(200);
        writer.flush();
    }
    REQUIRE(test::run_until(loop, [&] { return writer.stats().syncs > syncs_then; }));
    const int64_t waited_ms = (writer.stats().last_sync_started_mono_ns - written_at) / 1'000'000;
    // Counted from the write, with half a tick to spare: 700 to 900 ms on punctual 200 ms ticks
    // (counted from the previous sync, as before, it was 1000 ms).
    CHECK(waited_ms >= 600);
    CHECK(waited_ms <= 950);
    close_writer(loop, writer);
}

TEST_CASE("a full queue drops and counts rows instead of growing") {
    test::TempDir dir;
    uv::Loop loop;
    FileWriterOptions options;
    options.max_queued_bytes = 1000;
    options.eager_write_bytes = 1 << 30;  // nothing leaves the queue before the loop runs
    AsyncFileWriter writer(loop, dir.file("small.csv"), {"x"}, options);
    int accepted = 0;
    for (int i = 0; i < 1000; ++i) accepted += writer.write_row(CsvRow().add("0123456789")) ? 1 : 0;
    CHECK(accepted < 100);
    CHECK(writer.stats().rows_dropped == static_cast<uint64_t>(1000 - accepted));
    close_writer(loop, writer);
    CHECK(lines_of(test::read_file(dir.file("small.csv"))).size() == static_cast<size_t>(accepted) + 1);
}

TEST_CASE("never overwrites: create-new refuses an existing file") {
    test::TempDir dir;
    { std::ofstream(dir.file("taken.csv")) << "precious\n"; }
    uv::Loop loop;
    std::string error;
    AsyncFileWriter writer(loop, dir.file("taken.csv"), {"x"}, {}, [&](const std::string& m) { error = m; });
    writer.write_row(CsvRow().add(1));
    close_writer(loop, writer);
    CHECK(error.find("taken.csv") != std::string::npos);
    CHECK(writer.failed());
    CHECK(test::read_file(dir.file("taken.csv")) == "precious\n");
}

TEST_CASE("append mode continues a file without a second header") {
    test::TempDir dir;
    FileWriterOptions options;
    options.mode = FileWriterOptions::Mode::Append;
    for (int round = 0; round < 2; ++round) {
        uv::Loop loop;
        AsyncFileWriter writer(loop, dir.file("notes.csv"), {"n"}, options);
        writer.write_row(CsvRow().add(round));
        close_writer(loop, writer);
    }
    CHECK(test::read_file(dir.file("notes.csv")) == "n\n0\n1\n");
}

TEST_CASE("append mode leaves a torn file alone and continues in a part file") {
    test::TempDir dir;
    { std::ofstream(dir.file("notes.csv")) << "n,text\n1,\"half a ro"; }
    { std::ofstream(dir.file("notes_p2.csv")) << "n,text\n"; }  // an earlier part exists too
    FileWriterOptions options;
    options.mode = FileWriterOptions::Mode::Append;
    uv::Loop loop;
    AsyncFileWriter writer(loop, dir.file("notes.csv"), {"n", "text"}, options);
    writer.write_row(CsvRow().add(2).add("after the power cut"));
    close_writer(loop, writer);
    CHECK(test::read_file(dir.file("notes.csv")) == "n,text\n1,\"half a ro");
    CHECK(writer.path() == dir.file("notes_p3.csv"));
    CHECK(test::read_file(dir.file("notes_p3.csv")) == "n,text\n2,after the power cut\n");
}

TEST_CASE("a writer destroyed without close still writes everything") {
    test::TempDir dir;
    uv::Loop loop;
    {
        AsyncFileWriter writer(loop, dir.file("orphan.csv"), {"n"});
        writer.write_row(CsvRow().add(7));
    }
    loop.run();
    CHECK(test::read_file(dir.file("orphan.csv")) == "n\n7\n");
}

TEST_CASE("an unwritable folder is reported with the path") {
    uv::Loop loop;
    std::string error;
    AsyncFileWriter writer(loop, "/nonexistent-folder/x.csv", {"n"}, {}, [&](const std::string& m) { error = m; });
    CHECK(test::run_until(loop, [&] { return !error.empty(); }));
    CHECK(error.find("/nonexistent-folder/x.csv") != std::string::npos);
    CHECK_FALSE(writer.write_row(CsvRow().add(1)));
    close_writer(loop, writer);
}

TEST_CASE("flush with a callback answers only once the rows are written and synced") {
    test::TempDir dir;
    uv::Loop loop;
    AsyncFileWriter writer(loop, dir.file("durable.csv"), {"n"});
    writer.write_row(CsvRow().add(1));
    bool done = false;
    bool ok = false;
    writer.flush(true, [&](bool result) {
        done = true;
        ok = result;
        // At this instant the row is in the file (and fdatasync'd).
        CHECK(test::read_file(dir.file("durable.csv")) == "n\n1\n");
        CHECK(writer.stats().syncs >= 1);
    });
    CHECK_FALSE(done);
    REQUIRE(test::run_until(loop, [&] { return done; }));
    CHECK(ok);
    close_writer(loop, writer);
}
