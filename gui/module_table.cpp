#include "module_table.hpp"

#include "json_util.hpp"
#include "state_model.hpp"

#include <QHeaderView>
#include <QPushButton>
#include <QTableWidget>
#include <QVBoxLayout>

namespace pilogger::gui {

namespace {
QColor stateColor(const std::string& state) {
    if (state == "recording") return {46, 125, 50};
    if (state == "ready") return {21, 101, 192};
    if (state == "error") return {198, 40, 40};
    if (state == "restarting" || state == "exited") return {230, 120, 0};
    return {110, 110, 110};  // starting, configuring, stopping, disabled
}

}  // namespace

ModuleTable::ModuleTable(const StateModel& model, QWidget* parent) : QWidget(parent), model_(model) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    table_ = new QTableWidget(0, ColumnCount, this);
    table_->setObjectName(QStringLiteral("moduleTable"));
    table_->setHorizontalHeaderLabels({tr("On"), tr("Module"), tr("State"), tr("Rate"), tr("Drops"), tr("Restarts"),
                                       tr("Last error"), QString()});
    table_->verticalHeader()->setVisible(false);
    table_->verticalHeader()->setDefaultSectionSize(40);  // a finger's height
    table_->setSelectionMode(QAbstractItemView::NoSelection);
    table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    table_->setWordWrap(false);
    auto* header = table_->horizontalHeader();
    header->setSectionResizeMode(QHeaderView::ResizeToContents);
    header->setSectionResizeMode(LastError, QHeaderView::Stretch);
    header->setMinimumSectionSize(36);
    layout->addWidget(table_);

    connect(table_, &QTableWidget::itemChanged, this, [this](QTableWidgetItem* item) {
        if (updating_ || item->column() != Enabled) return;
        const QString name = names_.value(item->row());
        if (!name.isEmpty()) Q_EMIT enableRequested(name, item->checkState() == Qt::Checked);
    });
}

QString ModuleTable::rateText(const json& stats) {
    if (!stats.is_object()) return {};
    if (field(stats, "fps").is_number()) return tr("%1 fps").arg(real(stats, "fps"), 0, 'f', 1);
    if (field(stats, "rate_hz").is_number()) return tr("%1 Hz").arg(real(stats, "rate_hz"), 0, 'f', 0);
    if (field(stats, "notes").is_number()) return tr("%n note(s)", nullptr, static_cast<int>(integer(stats, "notes")));
    return {};
}

int64_t ModuleTable::dropCount(const json& stats) {
    if (!stats.is_object()) return 0;
    // Cameras count frames as "dropped", writers count rows as "drops"; both are losses.
    return integer(stats, "dropped") + integer(stats, "drops") + integer(stats, "csv_rows_dropped");
}

void ModuleTable::setPending(const QString& module, bool pending) {
    if (pending) {
        pending_.insert(module);
    } else {
        pending_.remove(module);
        refresh();
    }
}

void ModuleTable::rebuild(const QStringList& names) {
    names_ = names;
    table_->setRowCount(static_cast<int>(names.size()));
    for (int row = 0; row < names.size(); ++row) {
        auto* check = new QTableWidgetItem;
        check->setFlags(Qt::ItemIsUserCheckable | Qt::ItemIsEnabled);
        table_->setItem(row, Enabled, check);
        for (int c = Name; c < Action; ++c) table_->setItem(row, c, new QTableWidgetItem);
        auto* restart = new QPushButton(tr("Restart"), table_);
        restart->setObjectName(QStringLiteral("restart_") + names[row]);
        const QString name = names[row];
        connect(restart, &QPushButton::clicked, this, [this, name] { Q_EMIT restartRequested(name); });
        table_->setCellWidget(row, Action, restart);
    }
}

void ModuleTable::setCell(int row, int column, const QString& text, const QString& tooltip) {
    QTableWidgetItem* item = table_->item(row, column);
    if (item->text() != text) item->setText(text);
    if (item->toolTip() != tooltip) item->setToolTip(tooltip);
}

void ModuleTable::refresh() {
    QStringList names;
    for (const auto& m : model_.modules()) names << qstr(m, "name");
    updating_ = true;
    if (names != names_) rebuild(names);
    for (int row = 0; row < names_.size(); ++row) {
        const json* m = model_.module(names_[row].toStdString());
        if (m == nullptr) continue;
        const json& stats = field(*m, "stats");
        const std::string state = str(*m, "state");
        if (!pending_.contains(names_[row])) {
            const Qt::CheckState check = flag(*m, "enabled", true) ? Qt::Checked : Qt::Unchecked;
            if (table_->item(row, Enabled)->checkState() != check) table_->item(row, Enabled)->setCheckState(check);
        }
        const QString type = qstr(*m, "type");
        setCell(row, Name, names_[row], type == names_[row] ? type : tr("%1 (%2)").arg(names_[row], type));
        setCell(row, State, QString::fromStdString(state));
        QTableWidgetItem* state_item = table_->item(row, State);
        if (state_item->foreground().color() != stateColor(state)) state_item->setForeground(stateColor(state));
        setCell(row, Rate, rateText(stats));
        setCell(row, Drops, QString::number(dropCount(stats)));
        setCell(row, Restarts, QString::number(integer(*m, "restarts")));
        const QString error = qstr(*m, "last_error");
        setCell(row, LastError, error, error);
        table_->cellWidget(row, Action)->setEnabled(model_.connected() && flag(*m, "enabled", true));
    }
    updating_ = false;
}

}  // namespace pilogger::gui
