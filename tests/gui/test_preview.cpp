// The GUI's preview: the seqlock reader against a fake writer, the tiles and the panel that makes them.
#include "units_support.hpp"

#include "preview_panel.hpp"
#include "preview_source.hpp"
#include "state_model.hpp"

#include <QTemporaryDir>
#include <QTest>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace pilogger;
using namespace pilogger::gui;
using namespace gui_test;

namespace {

// A preview object written the way the camera module writes it (seqlock, 80-byte header with gaze).
class FakePreviewWriter {
public:
    FakePreviewWriter(std::string name, uint32_t width, uint32_t height, bool with_gaze)
        : name_(std::move(name)), width_(width), height_(height), header_(with_gaze ? 80 : 64) {
        shm_unlink(name_.c_str());
        bytes_ = header_ + width * height * 3;
        int fd = shm_open(name_.c_str(), O_CREAT | O_RDWR, 0600);
        if (fd < 0 || ftruncate(fd, static_cast<off_t>(bytes_)) != 0) qFatal("cannot make %s", name_.c_str());
        map_ = static_cast<uint8_t*>(mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        ::close(fd);
        std::memcpy(map_, "PILOGPV", 8);
        put<uint32_t>(8, 1);
        put<uint32_t>(12, header_);
        put<uint32_t>(16, width);
        put<uint32_t>(20, height);
        put<uint32_t>(24, width * 3);
        put<uint32_t>(28, 1);
        put<uint32_t>(56, static_cast<uint32_t>(getpid()));
        put<uint32_t>(60, width * height * 3);
    }
    ~FakePreviewWriter() {
        munmap(map_, bytes_);
        shm_unlink(name_.c_str());
    }
    std::atomic_ref<uint64_t> sequence() { return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(map_ + 32)); }
    // Writes one frame of a single colour; gaze_x < 0: no gaze.
    void frame(uint8_t r, uint8_t g, uint8_t b, int64_t mono_ns, float gaze_x = -1, float gaze_y = -1) {
        uint64_t s = sequence().load();
        sequence().store(s + 1);
        uint8_t* px = map_ + header_;
        for (size_t i = 0; i < size_t{width_} * height_; ++i) {
            px[3 * i] = r;
            px[3 * i + 1] = g;
            px[3 * i + 2] = b;
        }
        put<int64_t>(40, mono_ns);
        put<uint64_t>(48, s / 2 + 1);
        if (header_ >= 80) {
            put<float>(64, gaze_x);
            put<float>(68, gaze_y);
            put<int64_t>(72, gaze_x < 0 ? 0 : mono_ns);
        }
        sequence().store(s + 2);
    }
    template <typename T>
    void put(size_t offset, T v) {
        std::memcpy(map_ + offset, &v, sizeof v);
    }

private:
    std::string name_;
    uint32_t width_, height_, header_;
    size_t bytes_;
    uint8_t* map_;
};

class SolidSource : public PreviewSource {
public:
    Poll poll(PreviewFrame& out) override {
        if (served_) return Poll::NoChange;
        served_ = true;
        out.image = QImage(100, 100, QImage::Format_RGB888);
        out.image.fill(QColor(0, 0, 255));
        out.mono_ns = 1;
        out.published = 1;
        out.gaze = QPointF(0.25, 0.75);
        return Poll::NewFrame;
    }
    QString describe() const override { return QStringLiteral("solid"); }
    bool served_ = false;
};

}  // namespace

class GuiPreview : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QVERIFY(isolate(runtime_)); }

    void shmPreviewReadsSeqlock() {
        const std::string name = "/pilogger-guitest-" + std::to_string(getpid());
        {
            ShmPreviewSource source(name);
            PreviewFrame f;
            QCOMPARE(source.poll(f), PreviewSource::Poll::Unavailable);  // not there yet
        }
        FakePreviewWriter writer(name, 64, 48, true);
        ShmPreviewSource source(name);
        PreviewFrame f;
        QCOMPARE(source.poll(f), PreviewSource::Poll::NoChange);  // made, no frame yet
        writer.frame(10, 20, 30, 1'000'000'000, 0.5f, 0.25f);
        QCOMPARE(source.poll(f), PreviewSource::Poll::NewFrame);
        QCOMPARE(f.image.size(), QSize(64, 48));
        QCOMPARE(f.image.pixelColor(5, 5), QColor(10, 20, 30));
        QCOMPARE(f.mono_ns, int64_t{1'000'000'000});
        QVERIFY(f.gaze);
        QCOMPARE(*f.gaze, QPointF(0.5, 0.25));
        QCOMPARE(source.poll(f), PreviewSource::Poll::NoChange);  // the same frame is not copied twice

        // A frame being written (odd sequence) is never shown.
        const uint64_t s = writer.sequence().load();
        writer.sequence().store(s + 1);
        QCOMPARE(source.poll(f), PreviewSource::Poll::NoChange);
        writer.sequence().store(s);
        writer.frame(200, 0, 0, 1'100'000'000);  // no gaze for this one
        QCOMPARE(source.poll(f), PreviewSource::Poll::NewFrame);
        QCOMPARE(f.image.pixelColor(0, 0), QColor(200, 0, 0));
        QVERIFY(!f.gaze);
        QCOMPARE(f.published, uint64_t{2});

        // A restarted module takes the object over (another writer_pid): read afresh.
        writer.put<uint32_t>(56, 4242);
        writer.frame(0, 200, 0, 1'200'000'000);
        bool got = false;  // QTRY evaluates its condition once more after it holds: poll only until then
        QTRY_VERIFY(got || (got = source.poll(f) == PreviewSource::Poll::NewFrame));
        QCOMPARE(f.image.pixelColor(0, 0), QColor(0, 200, 0));
    }

    void shmPreviewFollowsANewObject() {
        // A restarted module makes a new object under the same name; the reader finds it.
        const std::string name = "/pilogger-guitest-new-" + std::to_string(getpid());
        auto writer = std::make_unique<FakePreviewWriter>(name, 32, 32, false);
        writer->frame(1, 2, 3, 5);
        ShmPreviewSource source(name);
        PreviewFrame f;
        QCOMPARE(source.poll(f), PreviewSource::Poll::NewFrame);
        writer.reset();
        writer = std::make_unique<FakePreviewWriter>(name, 16, 16, false);
        writer->frame(9, 9, 9, 6);
        bool got = false;  // QTRY evaluates its condition once more after it holds: poll only until then
        QTRY_VERIFY_WITH_TIMEOUT(got || (got = source.poll(f) == PreviewSource::Poll::NewFrame), 5000);
        QCOMPARE(f.image.size(), QSize(16, 16));
    }

    void previewTileDrawsGaze() {
        PreviewTile tile(QStringLiteral("eyetracker"), std::make_unique<SolidSource>(), false);
        tile.resize(200, 200);
        tile.show();
        QVERIFY(QTest::qWaitForWindowExposed(&tile));
        tile.pollNow();
        QVERIFY(tile.gaze());
        const QImage shot = tile.grab().toImage();
        // The frame fills the square tile; the gaze ring is at (0.25, 0.75) of it.
        const QColor centre = shot.pixelColor(50, 150);
        QVERIFY2(centre.red() > 80 && centre.blue() < 250, qPrintable(centre.name()));
        const QColor elsewhere = shot.pixelColor(150, 100);
        QCOMPARE(elsewhere, QColor(0, 0, 255));
    }

    void previewPanelMakesTilesForPreviewModules() {
        StateModel m;
        m.applyStatus(sampleStatus(""));
        PreviewPanel panel(m);
        std::vector<std::string> asked;
        panel.setSourceFactory([&](const json& module) -> std::unique_ptr<PreviewSource> {
            asked.push_back(PreviewPanel::previewName(module));
            return std::make_unique<SolidSource>();
        });
        panel.sync();
        QCOMPARE(panel.tileCount(), 0);  // made in the turns that follow, one per turn
        QVERIFY(panel.creating());
        QTRY_VERIFY(!panel.creating());
        QCOMPARE(panel.tileCount(), 1);  // cam0; notes has no preview
        QVERIFY(panel.tile(QStringLiteral("cam0")));
        QCOMPARE(asked.front(), ShmPreviewSource::defaultName("cam0"));
        // Once the module's stats name its preview, the tile reads that one.
        m.applyEvent(json{{"event", "stats"}, {"module", "cam0"}, {"preview_shm", "/elsewhere"}}, 1);
        panel.sync();
        QCOMPARE(asked.back(), std::string("/elsewhere"));
    }

private:
    QTemporaryDir runtime_;
};

QTEST_MAIN(GuiPreview)
#include "test_preview.moc"
