#include "settings_dialog.hpp"

#include "config.hpp"
#include "off_thread.hpp"

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
    save_->setEnabled(false);  // until the loader has accepted the text
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
    connect(editor_, &QPlainTextEdit::textChanged, this, [this] {
        ++generation_;  // an answer about the text before this edit is out of date
        check_timer_.start();
    });

    resize(720, 460);
    if (!path.isEmpty()) {
        load(path);
    } else {
        validate();
    }
}

void SettingsDialog::load(const QString& path) {
    // A config file is a few kilobytes, but the disk may be busy recording: read it off the GUI thread.
    struct Read {
        bool ok = false;
        QString text;
        QString error;
    };
    ++generation_;
    status_->setText(tr("Reading %1…").arg(path));
    status_->setStyleSheet(QString());
    editor_->setReadOnly(true);
    runOffThread(
        this,
        [path] {
            Read r;
            QFile f(path);
            if (!f.open(QIODevice::ReadOnly)) {
                r.error = f.errorString();
                return r;
            }
            r.text = QString::fromUtf8(f.readAll());
            r.ok = true;
            return r;
        },
        [this, path](const Read& r) {
            editor_->setReadOnly(false);
            if (!r.ok) {
                message_ = tr("Cannot read %1: %2").arg(path, r.error);
                valid_ = false;
                status_->setText(message_);
                status_->setStyleSheet(QStringLiteral("color: #c62828;"));
                Q_EMIT checked(false);
                return;
            }
            path_ = QFileInfo(path).absoluteFilePath();
            editor_->setPlainText(r.text);
            // Latin-1 titles only: another character costs an X server round trip (see MainWindow::updateTitle).
            setWindowTitle(tr("Settings - %1").arg(path_));
            validate();
        });
}

int SettingsDialog::lineOf(const QString& message) {
    static const QRegularExpression where(QStringLiteral(":(\\d+):(\\d+): "));
    auto m = where.match(message);
    return m.hasMatch() ? m.captured(1).toInt() : 0;
}

SettingsDialog::Check SettingsDialog::check(const std::string& text, const QString& path, const QString& running_config) {
    Check r;
    const std::string name = path.isEmpty() ? std::string("(unsaved)") : path.toStdString();
    try {
        Config c = load_config_text(text, name);
        int enabled = 0;
        for (const auto& m : c.modules) enabled += m.enabled ? 1 : 0;
        r.message = tr("Valid: %n module(s) enabled, sessions go to %1.", nullptr, enabled)
                        .arg(QString::fromStdString(c.data_dir));
        r.ok = true;
    } catch (const std::exception& e) {
        r.message = QString::fromStdString(e.what());
    }
    r.same_as_running = r.ok && !running_config.isEmpty() && QFileInfo(running_config) == QFileInfo(path);
    return r;
}

void SettingsDialog::validate() {
    check_timer_.stop();
    const quint64 generation = ++generation_;
    runOffThread(
        this,
        [text = editor_->toPlainText().toStdString(), path = path_, running = running_config_] {
            return check(text, path, running);
        },
        [this, generation](const Check& r) {
            if (generation != generation_) return;  // edited or checked again since
            showResult(r);
            Q_EMIT checked(r.ok);
        });
}

void SettingsDialog::showResult(const Check& r) {
    valid_ = r.ok;
    message_ = r.message;
    QString text = message_;
    if (r.same_as_running) {
        text += tr(" The running supervisor keeps the settings it started with until it is started again.");
    }
    status_->setText(text);
    status_->setStyleSheet(r.ok ? QStringLiteral("color: #2e7d32;") : QStringLiteral("color: #c62828;"));
    save_->setEnabled(r.ok && !path_.isEmpty());
    // Mark the line the loader points at.
    QList<QTextEdit::ExtraSelection> marks;
    if (const int line = r.ok ? 0 : lineOf(message_); line > 0) {
        QTextEdit::ExtraSelection mark;
        mark.format.setBackground(QColor(255, 205, 210));
        mark.format.setProperty(QTextFormat::FullWidthSelection, true);
        mark.cursor = QTextCursor(editor_->document()->findBlockByNumber(line - 1));
        marks.append(mark);
    }
    editor_->setExtraSelections(marks);
}

void SettingsDialog::save() {
    if (path_.isEmpty()) {
        Q_EMIT saveFinished(false);
        return;
    }
    check_timer_.stop();
    const quint64 generation = ++generation_;
    struct Saved {
        Check check;
        bool written = false;
    };
    const QString text = editor_->toPlainText();
    runOffThread(
        this,
        [text, path = path_, running = running_config_] {
            Saved r;
            // Never written unless the loader accepts it; written whole or not at all: a
            // half-written config would stop the next start.
            r.check = check(text.toStdString(), path, running);
            if (!r.check.ok) return r;
            QSaveFile f(path);
            if (!f.open(QIODevice::WriteOnly) || f.write(text.toUtf8()) < 0 || !f.commit()) {
                r.check.ok = false;
                r.check.same_as_running = false;
                r.check.message = tr("Cannot save %1: %2").arg(path, f.errorString());
                return r;
            }
            r.written = true;
            return r;
        },
        [this, generation, text, path = path_](const Saved& r) {
            if (generation == generation_) {
                showResult(r.check);
                Q_EMIT checked(r.check.ok);
            }
            if (r.written) {
                if (editor_->toPlainText() == text) editor_->document()->setModified(false);
                if (generation == generation_) status_->setText(tr("Saved %1. ").arg(path) + status_->text());
                Q_EMIT configSaved(path);
            }
            Q_EMIT saveFinished(r.written);
        });
}

void SettingsDialog::saveAs() {
    const QString path = QFileDialog::getSaveFileName(this, tr("Save the config as"), path_, tr("YAML (*.yaml *.yml)"));
    if (path.isEmpty()) return;
    path_ = QFileInfo(path).absoluteFilePath();
    setWindowTitle(tr("Settings - %1").arg(path_));
    save();
}

void SettingsDialog::openFile() {
    const QString path = QFileDialog::getOpenFileName(this, tr("Open a config"), path_, tr("YAML (*.yaml *.yml)"));
    if (!path.isEmpty()) load(path);
}

}  // namespace pilogger::gui
