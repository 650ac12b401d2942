#include "session_bar.hpp"

#include "clock.hpp"
#include "format.hpp"
#include "json_util.hpp"
#include "state_model.hpp"

#include <QDir>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>

namespace pilogger::gui {

namespace {
QString homeShort(const QString& path) {
    const QString home = QDir::homePath();
    return path.startsWith(home + QLatin1Char('/')) ? QStringLiteral("~") + path.mid(home.size()) : path;
}

// Long paths must never make the window wider than a small screen: the label gives way.
QLabel* shrinkingLabel(QWidget* parent) {
    auto* l = new QLabel(parent);
    l->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);
    l->setTextInteractionFlags(Qt::TextSelectableByMouse);
    return l;
}

// Style sheets re-polish the widget: set one only when it changes (refresh runs 4 times a second).
void applyStyle(QWidget* w, const QString& style) {
    if (w->styleSheet() != style) w->setStyleSheet(style);
}
}  // namespace

SessionBar::SessionBar(const StateModel& model, QWidget* parent) : QWidget(parent), model_(model) {
    auto* grid = new QGridLayout(this);
    grid->setContentsMargins(4, 4, 4, 2);
    grid->setHorizontalSpacing(6);
    grid->setVerticalSpacing(4);

    // Row 0: where things are.
    auto* where = new QHBoxLayout;
    where->setSpacing(16);  // the three facts must not run into each other when they are cut
    config_ = shrinkingLabel(this);
    choose_ = new QPushButton(tr("Config…"), this);
    choose_->setToolTip(tr("Choose the config file a supervisor is started with"));
    start_ = new QPushButton(tr("Start supervisor"), this);
    start_->setObjectName(QStringLiteral("startSupervisorButton"));
    data_ = shrinkingLabel(this);
    disk_ = shrinkingLabel(this);
    where->addWidget(config_, 3);
    where->addWidget(choose_);
    where->addWidget(start_);
    where->addWidget(data_, 3);
    where->addWidget(disk_, 4);
    grid->addLayout(where, 0, 0, 1, 5);

    // Row 1: the controls, large enough for a finger.
    session_label_ = new QLineEdit(this);
    session_label_->setObjectName(QStringLiteral("sessionLabel"));
    session_label_->setPlaceholderText(tr("session label"));
    session_label_->setMinimumWidth(90);
    session_button_ = new QPushButton(tr("Start session"), this);
    session_button_->setObjectName(QStringLiteral("sessionButton"));
    trial_label_ = new QLineEdit(this);
    trial_label_->setObjectName(QStringLiteral("trialLabel"));
    trial_label_->setPlaceholderText(tr("trial label"));
    trial_label_->setMinimumWidth(90);
    record_ = new QPushButton(tr("Record"), this);
    record_->setObjectName(QStringLiteral("recordButton"));
    record_->setToolTip(tr("Start or stop a trial (Ctrl+R)"));
    clock_ = shrinkingLabel(this);
    clock_->setObjectName(QStringLiteral("trialState"));
    QFont big = clock_->font();
    big.setBold(true);
    clock_->setFont(big);
    for (auto* b : {session_button_, record_}) b->setMinimumSize(110, 40);
    for (auto* e : {session_label_, trial_label_}) e->setMinimumHeight(36);
    grid->addWidget(session_label_, 1, 0);
    grid->addWidget(session_button_, 1, 1);
    grid->addWidget(trial_label_, 1, 2);
    grid->addWidget(record_, 1, 3);
    grid->addWidget(clock_, 1, 4);
    grid->setColumnStretch(0, 2);
    grid->setColumnStretch(2, 2);
    grid->setColumnStretch(4, 4);

    connect(choose_, &QPushButton::clicked, this, &SessionBar::chooseConfigClicked);
    connect(start_, &QPushButton::clicked, this, &SessionBar::startSupervisorClicked);
    connect(session_button_, &QPushButton::clicked, this, &SessionBar::sessionToggleClicked);
    connect(record_, &QPushButton::clicked, this, &SessionBar::recordToggleClicked);
    connect(trial_label_, &QLineEdit::returnPressed, this, [this] {
        if (!model_.recording()) Q_EMIT recordToggleClicked();
    });
    refresh();
}

QString SessionBar::sessionLabel() const { return session_label_->text().trimmed(); }
QString SessionBar::trialLabel() const { return trial_label_->text().trimmed(); }
void SessionBar::setSessionLabel(const QString& label) { session_label_->setText(label); }
void SessionBar::setTrialLabel(const QString& label) { trial_label_->setText(label); }

void SessionBar::setChosenConfig(const QString& path) {
    chosen_config_ = path;
    refresh();
}

void SessionBar::setBusy(bool busy) {
    busy_ = busy;
    refresh();
}

void SessionBar::setStarting(bool starting) {
    starting_ = starting;
    refresh();
}

void SessionBar::refresh() {
    const bool connected = model_.connected();
    const json& sup = model_.supervisor();
    const QString config = connected ? qstr(sup, "config_file") : chosen_config_;
    config_->setText(tr("Config: %1").arg(config.isEmpty() ? tr("none chosen") : QFileInfo(config).fileName()));
    config_->setToolTip(config);
    choose_->setVisible(!connected);
    start_->setVisible(!connected);
    start_->setEnabled(!starting_ && !config.isEmpty());
    start_->setText(starting_ ? tr("Starting…") : tr("Start supervisor"));

    const QString data_dir = connected ? qstr(sup, "data_dir") : QString();
    data_->setText(data_dir.isEmpty() ? QString() : tr("Data: %1").arg(homeShort(data_dir)));
    data_->setToolTip(data_dir);

    // Disk: free space, and how long the current data rate can go on.
    const json& disk = model_.disk();
    QString disk_text;
    if (connected && integer(disk, "free_bytes", -1) >= 0) {
        const int64_t free_bytes = integer(disk, "free_bytes");
        const int64_t reserve = integer(disk, "reserve_bytes");
        disk_text = tr("Disk: %1 free").arg(formatBytes(static_cast<double>(free_bytes)));
        auto rate = model_.dataRate().bytesPerSecond();
        auto left = model_.dataRate().secondsLeft(free_bytes, reserve);
        if (rate && left) {
            disk_text += tr(" · %1 left at %2/s").arg(formatTimeLeft(*left), formatBytes(*rate));
        }
        applyStyle(disk_, free_bytes < reserve ? QStringLiteral("color: #c00000;") : QString());
    }
    disk_->setText(disk_text);

    const json& session = model_.session();
    const json& trial = model_.trial();
    const bool open = session.is_object();
    const bool recording = trial.is_object();
    session_button_->setText(open ? tr("Stop session") : tr("Start session"));
    session_button_->setEnabled(connected && !busy_);
    session_label_->setEnabled(connected && !open);
    // While a session or trial runs, its box shows the label it runs with.
    if (open && session_label_->text() != qstr(session, "label")) session_label_->setText(qstr(session, "label"));
    if (recording && trial_label_->text() != qstr(trial, "label")) trial_label_->setText(qstr(trial, "label"));
    record_->setText(recording ? tr("Stop trial") : tr("Record"));
    applyStyle(record_, recording ? QStringLiteral("QPushButton { background: #c62828; color: white; font-weight: bold; }")
                                     : QString());
    record_->setEnabled(connected && !busy_);
    trial_label_->setEnabled(connected && !recording);

    // Two short lines (session, then trial) fit the last column of a small screen.
    QString text;
    const int64_t now = mono_ns();
    if (!connected) {
        text = tr("Not connected");
    } else if (!open) {
        text = tr("No session");
    } else {
        const int64_t start = integer(session, "start_mono_ns");
        const int64_t trials = integer(session, "trials");
        text = start > 0 ? tr("Session %1").arg(formatDuration(static_cast<double>(now - start) / 1e9)) : tr("Session");
        text += QLatin1Char('\n');
        if (recording) {
            const int64_t at = integer(trial, "start_at_mono_ns");
            const QString label = qstr(trial, "label");
            text += tr("Trial %1%2 · ").arg(integer(trial, "number")).arg(label.isEmpty() ? QString() : QStringLiteral(" (%1)").arg(label));
            text += now < at ? tr("starting") : tr("recording %1").arg(formatDuration(static_cast<double>(now - at) / 1e9));
        } else {
            text += trials == 1 ? tr("1 trial, none recording") : tr("%1 trials, none recording").arg(trials);
        }
    }
    if (clock_->text() != text) {
        clock_->setText(text);
        clock_->setToolTip(text);
    }
    applyStyle(clock_, recording ? QStringLiteral("color: #c62828;") : QString());
}

}  // namespace pilogger::gui
