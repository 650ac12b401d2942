// Live previews: one tile per module that publishes one (cameras, the eye tracker's scene).
//
// Each tile polls its PreviewSource on its own timer, never faster than frames arrive (the
// interval follows the writer's measured rate) and only while it is visible; it repaints only
// when a new frame came. Reading a preview never touches the recording path: the module writes
// it into shared memory without waiting for anyone.
#pragma once

#include "ndjson.hpp"
#include "preview_source.hpp"

#include <QElapsedTimer>
#include <QImage>
#include <QTimer>
#include <QWidget>

#include <functional>
#include <map>
#include <memory>
#include <optional>

class QGridLayout;
class QLabel;
class QToolButton;

namespace pilogger::gui {

class StateModel;
class X11FrameGate;

class PreviewTile : public QWidget {
    Q_OBJECT
public:
    PreviewTile(QString module, std::unique_ptr<PreviewSource> source, bool can_snapshot, QWidget* parent = nullptr);

    const QString& module() const { return module_; }
    const PreviewSource* source() const { return source_.get(); }
    void setSource(std::unique_ptr<PreviewSource> source);
    // Polls once now (the timer does this by itself; tests and the panel may ask too).
    void pollNow();
    int pollIntervalMs() const { return timer_.interval(); }
    uint64_t framesShown() const { return frames_shown_; }
    const std::optional<QPointF>& gaze() const { return frame_.gaze; }

    QSize sizeHint() const override { return {320, 240}; }
    QSize minimumSizeHint() const override { return {120, 90}; }

Q_SIGNALS:
    void snapshotRequested(const QString& module);

protected:
    void paintEvent(QPaintEvent* event) override;
    void showEvent(QShowEvent* event) override;
    void hideEvent(QHideEvent* event) override;
    void resizeEvent(QResizeEvent* event) override;

private:
    void adaptInterval(const PreviewFrame& next);

    QString module_;
    std::unique_ptr<PreviewSource> source_;
    QTimer timer_;
    PreviewFrame frame_;
    bool have_frame_ = false;
    QImage scaled_;  // frame_ at the size it is shown, in the screen's format
    uint64_t scaled_frame_ = UINT64_MAX;
    QString problem_;
    QElapsedTimer last_frame_clock_;
    double rate_hz_ = 0;
    uint64_t frames_shown_ = 0;
    QToolButton* snapshot_ = nullptr;
};

class PreviewPanel : public QWidget {
    Q_OBJECT
public:
    // Makes the source of a module's preview from its status (name, type, stats.preview_shm).
    using SourceFactory = std::function<std::unique_ptr<PreviewSource>(const json& module)>;

    explicit PreviewPanel(const StateModel& model, QWidget* parent = nullptr);
    void setSourceFactory(SourceFactory factory) { factory_ = std::move(factory); }
    // New tiles wait until the X server has taken the last frame (see X11FrameGate).
    void setFrameGate(X11FrameGate* gate);
    // Tiles for the modules that publish previews now; the rest go at once. New tiles come one
    // per event-loop turn (each changes the layout and maps its preview), starting with the next.
    void sync();
    int tileCount() const { return static_cast<int>(tiles_.size()); }
    // Tiles still to be made.
    bool creating() const { return create_timer_.isActive() || waiting_for_gate_; }
    PreviewTile* tile(const QString& module) const;

    // True for a module whose status says it publishes a preview.
    static bool hasPreview(const json& module);
    // The shared-memory name of its preview: stats.preview_shm, else the default name.
    static std::string previewName(const json& module);

Q_SIGNALS:
    void snapshotRequested(const QString& module);
    void tilesChanged(int count);

private:
    void relayout();
    // Makes one missing tile; true when one was made.
    bool createNext();

    const StateModel& model_;
    SourceFactory factory_;
    std::map<QString, PreviewTile*> tiles_;
    QGridLayout* grid_;
    QLabel* empty_;
    QTimer create_timer_;
    X11FrameGate* gate_ = nullptr;
    bool waiting_for_gate_ = false;
};

}  // namespace pilogger::gui
