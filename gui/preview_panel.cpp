#include "preview_panel.hpp"

#include "json_util.hpp"
#include "state_model.hpp"
#include "x11_frame_gate.hpp"

#include <QGridLayout>
#include <QLabel>
#include <QPainter>
#include <QToolButton>

#include <algorithm>
#include <cmath>
#include <vector>

namespace pilogger::gui {

namespace {
constexpr int kFirstIntervalMs = 100;    // until the writer's rate is known
constexpr int kFastestIntervalMs = 33;   // previews are for looking, not for measuring
constexpr int kSlowestIntervalMs = 1000;
constexpr int kMissingIntervalMs = 500;  // no preview object (yet)
constexpr qint64 kStalledMs = 2000;
}  // namespace

// ---- PreviewTile ----

PreviewTile::PreviewTile(QString module, std::unique_ptr<PreviewSource> source, bool can_snapshot, QWidget* parent)
    : QWidget(parent), module_(std::move(module)), source_(std::move(source)) {
    setObjectName(QStringLiteral("preview_") + module_);
    setAttribute(Qt::WA_OpaquePaintEvent);
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Expanding);
    timer_.setObjectName(QStringLiteral("previewPoll_") + module_);
    timer_.setInterval(kFirstIntervalMs);
    timer_.setTimerType(Qt::CoarseTimer);
    connect(&timer_, &QTimer::timeout, this, &PreviewTile::pollNow);
    if (can_snapshot) {
        snapshot_ = new QToolButton(this);
        snapshot_->setText(tr("Snapshot"));
        snapshot_->setToolTip(tr("Save a full-resolution still of %1 into the session").arg(module_));
        snapshot_->setMinimumSize(72, 32);
        connect(snapshot_, &QToolButton::clicked, this, [this] { Q_EMIT snapshotRequested(module_); });
    }
}

void PreviewTile::setSource(std::unique_ptr<PreviewSource> source) {
    source_ = std::move(source);
    have_frame_ = false;
    rate_hz_ = 0;
    timer_.setInterval(kFirstIntervalMs);
    update();
}

void PreviewTile::pollNow() {
    if (!source_) return;
    PreviewFrame next;
    switch (source_->poll(next)) {
        case PreviewSource::Poll::NewFrame:
            adaptInterval(next);
            frame_ = std::move(next);
            have_frame_ = true;
            problem_.clear();
            last_frame_clock_.start();
            ++frames_shown_;
            update();
            break;
        case PreviewSource::Poll::Unavailable: {
            timer_.setInterval(kMissingIntervalMs);
            auto* shm = dynamic_cast<ShmPreviewSource*>(source_.get());
            QString why = shm ? shm->problem() : tr("no preview from %1").arg(source_->describe());
            if (why != problem_ || have_frame_) {
                problem_ = why;
                have_frame_ = false;
                update();
            }
            break;
        }
        case PreviewSource::Poll::NoChange:
            // Say so once a frame is overdue; repaint only for that change.
            if (have_frame_ && last_frame_clock_.isValid() && last_frame_clock_.elapsed() > kStalledMs &&
                problem_.isEmpty()) {
                problem_ = tr("no new frame");
                update();
            }
            break;
    }
}

void PreviewTile::adaptInterval(const PreviewFrame& next) {
    // The writer's own rate, from its frame instants and how many frames it published between the
    // two we saw: polling faster than that would only find nothing new.
    if (have_frame_ && next.published > frame_.published && next.mono_ns > frame_.mono_ns) {
        const double period_s = static_cast<double>(next.mono_ns - frame_.mono_ns) / 1e9 /
                                static_cast<double>(next.published - frame_.published);
        if (period_s > 0) rate_hz_ = rate_hz_ == 0 ? 1 / period_s : 0.8 * rate_hz_ + 0.2 / period_s;
    }
    int interval = rate_hz_ > 0 ? static_cast<int>(std::lround(1000.0 / rate_hz_)) : kFirstIntervalMs;
    interval = std::clamp(interval, kFastestIntervalMs, kSlowestIntervalMs);
    if (interval != timer_.interval()) timer_.setInterval(interval);
}

// Nearest-neighbour scaling straight into the backing store's pixel format (RGB32): Qt's own
// scaled drawImage of an RGB888 frame goes through its span blender, which splits anything over
// 96 rows across Qt's thread pool and waits for it, so every preview frame made the GUI thread
// wait for other threads (up to 90 ms when the CPUs were busy). The look is the same as
// drawImage without smooth scaling.
static QImage scaledForScreen(const QImage& src, const QSize& size) {
    QImage out(size, QImage::Format_RGB32);
    if (out.isNull() || src.isNull()) return out;
    const int sw = src.width(), sh = src.height(), dw = size.width(), dh = size.height();
    std::vector<int> column(static_cast<size_t>(dw));
    for (int x = 0; x < dw; ++x) column[static_cast<size_t>(x)] = static_cast<int>(static_cast<qint64>(x) * sw / dw);
    const bool gray = src.format() == QImage::Format_Grayscale8;
    const bool rgb888 = src.format() == QImage::Format_RGB888;
    const QImage any = gray || rgb888 ? QImage() : src.convertToFormat(QImage::Format_RGB32);
    for (int y = 0; y < dh; ++y) {
        const int sy = static_cast<int>(static_cast<qint64>(y) * sh / dh);
        auto* line = reinterpret_cast<QRgb*>(out.scanLine(y));
        if (gray) {
            const uchar* in = src.constScanLine(sy);
            for (int x = 0; x < dw; ++x) {
                const uchar v = in[column[static_cast<size_t>(x)]];
                line[x] = qRgb(v, v, v);
            }
        } else if (rgb888) {
            const uchar* in = src.constScanLine(sy);
            for (int x = 0; x < dw; ++x) {
                const uchar* px = in + 3 * column[static_cast<size_t>(x)];
                line[x] = qRgb(px[0], px[1], px[2]);
            }
        } else {
            const auto* in = reinterpret_cast<const QRgb*>(any.constScanLine(sy));
            for (int x = 0; x < dw; ++x) line[x] = in[column[static_cast<size_t>(x)]];
        }
    }
    return out;
}

void PreviewTile::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), QColor(24, 24, 24));
    QRectF target;
    if (have_frame_ && !frame_.image.isNull()) {
        // Whole pixels: the copy below is then a plain blit.
        const QSize fitted = frame_.image.size().scaled(size(), Qt::KeepAspectRatio);
        target = QRectF(QRect(QPoint((width() - fitted.width()) / 2, (height() - fitted.height()) / 2), fitted));
        // Scaled once per frame (and per size), in device pixels, then copied 1:1.
        const qreal dpr = devicePixelRatioF();
        const QSize pixels = (target.size() * dpr).toSize();
        if (scaled_frame_ != frames_shown_ || scaled_.size() != pixels) {
            scaled_ = scaledForScreen(frame_.image, pixels);
            scaled_.setDevicePixelRatio(dpr);
            scaled_frame_ = frames_shown_;
        }
        p.drawImage(target.topLeft(), scaled_);
        if (frame_.gaze) {
            const QPointF at(target.left() + frame_.gaze->x() * target.width(),
                             target.top() + frame_.gaze->y() * target.height());
            p.setRenderHint(QPainter::Antialiasing);
            p.setPen(QPen(Qt::white, 3));
            p.setBrush(Qt::NoBrush);
            p.drawEllipse(at, 12, 12);
            p.setPen(QPen(QColor(255, 40, 40), 2));
            p.setBrush(QColor(255, 40, 40, 110));
            p.drawEllipse(at, 11, 11);
        }
    }
    // Caption: which module, how fast, and what is wrong if anything.
    QString caption = module_;
    if (have_frame_ && rate_hz_ > 0) caption += QStringLiteral("  %1 fps").arg(rate_hz_, 0, 'f', 1);
    if (frame_.gaze) caption += tr("  gaze");
    const QFontMetrics fm(font());
    const QRect bar(0, 0, width(), fm.height() + 8);
    p.fillRect(bar, QColor(0, 0, 0, 150));
    p.setPen(Qt::white);
    p.drawText(bar.adjusted(6, 0, -6, 0), Qt::AlignVCenter | Qt::AlignLeft, caption);
    if (!problem_.isEmpty()) {
        p.setPen(QColor(255, 200, 80));
        p.drawText(rect().adjusted(8, bar.height(), -8, -8), Qt::AlignCenter | Qt::TextWordWrap, problem_);
    }
}

void PreviewTile::showEvent(QShowEvent*) {
    // The first look comes in a turn of its own (mapping the preview and copying a frame), not
    // inside whatever showed the tile.
    timer_.start();
    QTimer::singleShot(0, this, &PreviewTile::pollNow);
}

// Nobody looks at a hidden tile: no polling, no copying.
void PreviewTile::hideEvent(QHideEvent*) { timer_.stop(); }

void PreviewTile::resizeEvent(QResizeEvent*) {
    if (snapshot_) {
        const QSize s = snapshot_->sizeHint().expandedTo(snapshot_->minimumSize());
        snapshot_->setGeometry(width() - s.width() - 4, height() - s.height() - 4, s.width(), s.height());
    }
}

// ---- PreviewPanel ----

PreviewPanel::PreviewPanel(const StateModel& model, QWidget* parent) : QWidget(parent), model_(model) {
    grid_ = new QGridLayout(this);
    grid_->setContentsMargins(0, 0, 0, 0);
    grid_->setSpacing(4);
    empty_ = new QLabel(tr("No previews: no module in this session publishes one."), this);
    empty_->setAlignment(Qt::AlignCenter);
    empty_->setWordWrap(true);
    grid_->addWidget(empty_, 0, 0);
    factory_ = [](const json& module) -> std::unique_ptr<PreviewSource> {
        return std::make_unique<ShmPreviewSource>(previewName(module));
    };
    create_timer_.setObjectName(QStringLiteral("previewCreate"));
    create_timer_.setSingleShot(true);
    create_timer_.setInterval(0);
    connect(&create_timer_, &QTimer::timeout, this, [this] {
        if (gate_ != nullptr && !gate_->ready()) {
            waiting_for_gate_ = true;  // idle() starts the timer again
            return;
        }
        if (createNext()) create_timer_.start();  // and the next one in the next turn
    });
}

void PreviewPanel::setFrameGate(X11FrameGate* gate) {
    gate_ = gate;
    connect(gate_, &X11FrameGate::idle, this, [this] {
        if (!waiting_for_gate_) return;
        waiting_for_gate_ = false;
        create_timer_.start();
    });
}

bool PreviewPanel::hasPreview(const json& module) {
    const json& caps = field(module, "capabilities");
    if (caps.is_array()) {
        for (const auto& c : caps) {
            if (c == "preview") return true;
        }
    }
    // A module that names its preview in its stats has one, whatever it declared.
    return !str(field(module, "stats"), "preview_shm").empty();
}

std::string PreviewPanel::previewName(const json& module) {
    const std::string name = str(field(module, "stats"), "preview_shm");
    return name.empty() ? ShmPreviewSource::defaultName(str(module, "name")) : name;
}

PreviewTile* PreviewPanel::tile(const QString& module) const {
    auto it = tiles_.find(module);
    return it == tiles_.end() ? nullptr : it->second;
}

void PreviewPanel::sync() {
    std::map<QString, const json*> wanted;
    for (const auto& m : model_.modules()) {
        if (hasPreview(m) && flag(m, "enabled", true)) wanted[qstr(m, "name")] = &m;
    }
    bool changed = false;
    for (auto it = tiles_.begin(); it != tiles_.end();) {
        if (wanted.count(it->first)) {
            // The module may name its preview only once its stats arrive.
            const QString name = QString::fromStdString(previewName(*wanted[it->first]));
            if (it->second->source() == nullptr || it->second->source()->describe() != name) {
                it->second->setSource(factory_(*wanted[it->first]));
            }
            ++it;
            continue;
        }
        it->second->deleteLater();
        it = tiles_.erase(it);
        changed = true;
    }
    for (const auto& [name, module] : wanted) {
        if (!tiles_.count(name) && !create_timer_.isActive()) create_timer_.start();
    }
    if (changed) {
        relayout();
        Q_EMIT tilesChanged(tileCount());
    }
}

bool PreviewPanel::createNext() {
    // From the model as it is now: a module may have gone since sync() asked.
    for (const auto& m : model_.modules()) {
        if (!hasPreview(m) || !flag(m, "enabled", true)) continue;
        const QString name = qstr(m, "name");
        if (tiles_.count(name)) continue;
        bool snapshot = false;
        const json& caps = field(m, "capabilities");
        if (caps.is_array()) snapshot = std::find(caps.begin(), caps.end(), json("snapshot")) != caps.end();
        auto* tile = new PreviewTile(name, factory_(m), snapshot, this);
        connect(tile, &PreviewTile::snapshotRequested, this, &PreviewPanel::snapshotRequested);
        tiles_[name] = tile;
        relayout();
        Q_EMIT tilesChanged(tileCount());
        return true;
    }
    return false;
}

void PreviewPanel::relayout() {
    while (grid_->count() > 0) delete grid_->takeAt(0);  // the layout items, not the widgets
    empty_->setVisible(tiles_.empty());
    if (tiles_.empty()) {
        grid_->addWidget(empty_, 0, 0);
        return;
    }
    // Two columns from two tiles on: three previews fit an 800x480 screen as 2 + 1.
    const int columns = tiles_.size() == 1 ? 1 : 2;
    int i = 0;
    for (auto& [name, tile] : tiles_) {
        grid_->addWidget(tile, i / columns, i % columns);
        tile->show();
        ++i;
    }
}

}  // namespace pilogger::gui
