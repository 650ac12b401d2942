#include "settings_dialog.hpp"

#include "config.hpp"

#include <QDialogButtonBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFontDatabase>
#include <QHBoxLayout>
#include <QLabel>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QSaveFile>
#include <QTextBlock>
#include <QVBoxLayout>

namespace pilogger::gui {

SettingsDialog::SettingsDialog(const QString& path, const QString& running_config, QWidget* parent)
    : QDialog(parent), running_config_(running_config) {
    setObjectName(QStringLiteral("settingsDialog"));
    setWindowTitle(tr("Settings"));
    auto* layout = new QVBoxLayout(this);
    editor_ = new QPlainTextEdit(this);
    editor_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
    editor_->setLineWrapMode(QPlainTextEdit::NoWrap);
    layout->addWidget(editor_, 1);
    status_ = new QLabel(this);
    status_->setWordWrap(true);
    status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(status_);

    auto* buttons = new QDialogButtonBox(this);
    auto* open_button = buttons->addButton(tr("Open…"), QDialogButtonBox::ActionRole);
    auto* save_as = buttons->addButton(tr("Save as…"), QDialogButtonBox::ActionRole);
    save_ = buttons->addButton(QDialogButtonBox::Save);
    buttons->addButton(QDialogButtonBox::Close);
    for (auto* b : buttons->buttons()) b->setMinimumHeight(40);
    layout->addWidget(buttons);
    connect(open_button, &QPushButton::clicked, this, &SettingsDialog::openFile);
    connect(save_as, &QPushButton::clicked, this, &SettingsDialog::saveAs);
    connect(save_, &QPushButton::clicked, this, &SettingsDialog::save);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);

    // Check a moment after typing stops, not on every key.
    check_timer_.setSingleShot(true);
    check_timer_.setInterval(300);
    connect(&check_timer_, &QTimer::timeout, this, &SettingsDialog::validate);
    connect(editor_, &QPlainTextEdit::textChanged, this, [this] { check_timer_.start(); });

    resize(720, 460);
    if (!path.isEmpty()) load(path);
    validate();
}

bool SettingsDialog::load(const QString& path) {
    // A config file is a few kilobytes on the local disk.
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) {
        message_ = tr("Cannot read %1: %2").arg(path, f.errorString());
        status_->setText(message_);
        return false;
    }
    path_ = QFileInfo(path).absoluteFilePath();
    editor_->setPlainText(QString::fromUtf8(f.readAll()));
    setWindowTitle(tr("Settings — %1").arg(path_));
    return true;
}

int SettingsDialog::lineOf(const QString& message) {
    static const QRegularExpression where(QStringLiteral(":(\\d+):(\\d+): "));
    auto m = where.match(message);
    return m.hasMatch() ? m.captured(1).toInt() : 0;
}

bool SettingsDialog::validate() {
    check_timer_.stop();
    const std::string name = path_.isEmpty() ? std::string("(unsaved)") : path_.toStdString();
    bool ok = false;
    try {
        Config c = load_config_text(editor_->toPlainText().toStdString(), name);
        int enabled = 0;
        for (const auto& m : c.modules) enabled += m.enabled ? 1 : 0;
        message_ = tr("Valid: %n module(s) enabled, sessions go to %1.", nullptr, enabled)
                       .arg(QString::fromStdString(c.data_dir));
        ok = true;
    } catch (const std::exception& e) {
        message_ = QString::fromStdString(e.what());
    }
    showResult(ok);
    return ok;
}

void SettingsDialog::showResult(bool ok) {
    QString text = message_;
    if (ok && !running_config_.isEmpty() && QFileInfo(running_config_) == QFileInfo(path_)) {
        text += tr(" The running supervisor keeps the settings it started with until it is started again.");
    }
    status_->setText(text);
    status_->setStyleSheet(ok ? QStringLiteral("color: #2e7d32;") : QStringLiteral("color: #c62828;"));
    save_->setEnabled(ok && !path_.isEmpty());
    // Mark the line the loader points at.
    QList<QTextEdit::ExtraSelection> marks;
    if (const int line = ok ? 0 : lineOf(message_); line > 0) {
        QTextEdit::ExtraSelection mark;
        mark.format.setBackground(QColor(255, 205, 210));
        mark.format.setProperty(QTextFormat::FullWidthSelection, true);
        mark.cursor = QTextCursor(editor_->document()->findBlockByNumber(line - 1));
        marks.append(mark);
    }
    editor_->setExtraSelections(marks);
}

bool SettingsDialog::save() {
    if (path_.isEmpty() || !validate()) return false;
    // Written whole or not at all: a half-written config would stop the next start.
    QSaveFile f(path_);
    if (!f.open(QIODevice::WriteOnly) || f.write(editor_->toPlainText().toUtf8()) < 0 || !f.commit()) {
        message_ = tr("Cannot save %1: %2").arg(path_, f.errorString());
        showResult(false);
        return false;
    }
    editor_->document()->setModified(false);
    status_->setText(tr("Saved %1. ").arg(path_) + status_->text());
    Q_EMIT configSaved(path_);
    return true;
}

void SettingsDialog::saveAs() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Save the config as"), path_, tr("YAML (*.yaml *.yml)"));
    if (path.isEmpty()) return;
    path_ = QFileInfo(path).absoluteFilePath();
    setWindowTitle(tr("Settings — %1").arg(path_));
    save();
}

void SettingsDialog::openFile() {
    const QString path = QFileDialog::getOpenFileName(this, tr("Open a config"), path_, tr("YAML (*.yaml *.yml)"));
    if (!path.isEmpty() && load(path)) validate();
}

}  // namespace pilogger::gui
