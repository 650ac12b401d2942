#include "pico_panel.hpp"

#include "json_util.hpp"
#include "state_model.hpp"

#include <QFormLayout>
#include <QLabel>
#include <QVBoxLayout>

#include <cmath>

namespace pilogger::gui {

PicoPanel::PicoPanel(const StateModel& model, QWidget* parent) : QWidget(parent), model_(model) {
    auto* layout = new QVBoxLayout(this);
    absent_ = new QLabel(this);
    absent_->setWordWrap(true);
    layout->addWidget(absent_);
    details_ = new QWidget(this);
    form_ = new QFormLayout(details_);
    form_->setContentsMargins(0, 0, 0, 0);
    row(QStringLiteral("link"), tr("Link"));
    row(QStringLiteral("device"), tr("Device"));
    row(QStringLiteral("firmware"), tr("Firmware"));
    row(QStringLiteral("offset"), tr("Clock offset"));
    row(QStringLiteral("drift"), tr("Drift"));
    row(QStringLiteral("residual"), tr("Fit residual"));
    row(QStringLiteral("led"), tr("Sync LED"));
    row(QStringLiteral("lost"), tr("Lost lines"));
    row(QStringLiteral("error"), tr("Last problem"));
    layout->addWidget(details_);
    layout->addStretch(1);
    refresh();
}

QLabel* PicoPanel::row(const QString& key, const QString& title) {
    auto* value = new QLabel(details_);
    value->setWordWrap(true);
    value->setTextInteractionFlags(Qt::TextSelectableByMouse);
    form_->addRow(title + QLatin1Char(':'), value);
    rows_.append({key, value});
    return value;
}

QString PicoPanel::rowText(const QString& key) const {
    for (const auto& [k, label] : rows_) {
        if (k == key) return label->text();
    }
    return {};
}

void PicoPanel::refresh() {
    const json& pico = model_.pico();
    if (!model_.connected() || !pico.is_object()) {
        absent_->setText(model_.connected()
                             ? tr("No Pico W in this configuration (add a pico: section to use the sync LED).")
                             : tr("Not connected to the supervisor."));
        absent_->show();
        details_->hide();
        return;
    }
    absent_->hide();
    details_->show();
    auto set = [this](const char* key, const QString& text) {
        for (auto& [k, label] : rows_) {
            if (k == QLatin1String(key) && label->text() != text) label->setText(text);
        }
    };
    const QString state = qstr(pico, "state", tr("unknown"));
    QString link = state;
    if (state == QLatin1String("connected")) link = tr("connected");
    else if (state == QLatin1String("unhealthy")) link = tr("connected, but not answering in time");
    else if (state == QLatin1String("absent")) link = tr("not found");
    set("link", link);
    const QString path = qstr(pico, "path");
    set("device", path.isEmpty() ? qstr(pico, "device") : tr("%1 (%2)").arg(qstr(pico, "device"), path));
    QString firmware = qstr(pico, "firmware");
    const QString board = qstr(pico, "board");
    if (!board.isEmpty()) firmware += tr(" on %1").arg(board);
    set("firmware", firmware.isEmpty() ? tr("unknown") : firmware);

    const json& fit = field(pico, "fit");
    if (fit.is_object()) {
        // The Pico's clock starts at its boot: the offset is usually seconds, the fit microseconds.
        const double offset_us = real(fit, "offset_us");
        set("offset", std::abs(offset_us) >= 1e6 ? tr("%1 s").arg(offset_us / 1e6, 0, 'f', 6) : tr("%1 µs").arg(offset_us, 0, 'f', 1));
        set("drift", tr("%1 ppm").arg(real(fit, "drift_ppm"), 0, 'f', 2));
        set("residual", tr("%1 µs over %2 samples").arg(real(fit, "residual_us"), 0, 'f', 1).arg(integer(fit, "points")));
    } else {
        const QString none = tr("no clock fit yet");
        set("offset", none);
        set("drift", none);
        set("residual", none);
    }
    const QString led = qstr(pico, "led");
    set("led", led.isEmpty() ? tr("unknown") : led);
    set("lost", QString::number(integer(pico, "lines_lost")));
    const QString error = qstr(pico, "last_error");
    set("error", error.isEmpty() ? tr("none") : error);
}

}  // namespace pilogger::gui
