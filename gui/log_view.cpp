#include "log_view.hpp"

#include "format.hpp"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace pilogger::gui {

namespace {
constexpr int kMaxRows = 1000;
}

LogView::LogView(const StateModel& model, QWidget* parent) : QWidget(parent), model_(model) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    auto* bar = new QHBoxLayout;
    bar->addWidget(new QLabel(tr("Module:"), this));
    filter_ = new QComboBox(this);
    filter_->setObjectName(QStringLiteral("logFilter"));
    filter_->addItem(tr("All"), QString());
    filter_->setMinimumHeight(36);
    filter_->setSizeAdjustPolicy(QComboBox::AdjustToContents);
    bar->addWidget(filter_);
    events_ = new QCheckBox(tr("Show events"), this);
    events_->setToolTip(tr("Also show module starts, trials and other events that are not problems"));
    bar->addWidget(events_);
    bar->addStretch(1);
    layout->addLayout(bar);

    list_ = new QTreeWidget(this);
    list_->setObjectName(QStringLiteral("logList"));
    list_->setColumnCount(4);
    list_->setHeaderLabels({tr("Time"), tr("Level"), tr("Module"), tr("Message")});
    list_->setRootIsDecorated(false);
    list_->setUniformRowHeights(true);
    list_->setSelectionMode(QAbstractItemView::NoSelection);
    list_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    list_->header()->setStretchLastSection(true);
    layout->addWidget(list_, 1);

    connect(filter_, &QComboBox::currentIndexChanged, this, &LogView::reload);
    connect(events_, &QCheckBox::toggled, this, &LogView::reload);
}

bool LogView::passes(const LogEntry& e) const {
    if (!events_->isChecked() && e.level == QLatin1String("info")) return false;
    const QString module = filter_->currentData().toString();
    return module.isEmpty() || e.module == module;
}

void LogView::noteModule(const QString& module) {
    if (module.isEmpty() || filter_->findData(module) >= 0) return;
    filter_->addItem(module, module);
}

void LogView::addEntry(const LogEntry& e) {
    noteModule(e.module);
    if (!passes(e)) return;
    auto* item = new QTreeWidgetItem;
    item->setText(0, formatMonoAsLocalTime(e.mono_ns));
    item->setText(1, e.level);
    item->setText(2, e.module.isEmpty() ? tr("supervisor") : e.module);
    item->setText(3, e.text);
    item->setToolTip(3, e.text);
    if (e.level == QLatin1String("error")) {
        item->setForeground(1, QColor(198, 40, 40));
    } else if (e.level == QLatin1String("warning")) {
        item->setForeground(1, QColor(200, 110, 0));
    }
    list_->insertTopLevelItem(0, item);  // newest first
    while (list_->topLevelItemCount() > kMaxRows) delete list_->takeTopLevelItem(list_->topLevelItemCount() - 1);
}

void LogView::reload() {
    list_->clear();
    for (const auto& e : model_.log()) addEntry(e);
}

int LogView::visibleCount() const { return list_->topLevelItemCount(); }

}  // namespace pilogger::gui
