// One row per module: enable checkbox, state, rate, drops, restarts, last error, Restart.
#pragma once

#include "ndjson.hpp"

#include <QSet>
#include <QString>
#include <QWidget>

class QTableWidget;
class QTableWidgetItem;

namespace pilogger::gui {

class StateModel;

class ModuleTable : public QWidget {
    Q_OBJECT
public:
    enum Column { Enabled, Name, State, Rate, Drops, Restarts, LastError, Action, ColumnCount };

    explicit ModuleTable(const StateModel& model, QWidget* parent = nullptr);
    void refresh();
    // While an enable/disable is on its way the checkbox shows what was asked for.
    void setPending(const QString& module, bool pending);
    QTableWidget* table() const { return table_; }

    // Words for the table cells, from a module's stats (module-specific fields).
    static QString rateText(const json& stats);
    static int64_t dropCount(const json& stats);

Q_SIGNALS:
    void enableRequested(const QString& module, bool enable);
    void restartRequested(const QString& module);

private:
    void rebuild(const QStringList& names);
    void setCell(int row, int column, const QString& text, const QString& tooltip = {});

    const StateModel& model_;
    QTableWidget* table_;
    QStringList names_;
    QSet<QString> pending_;
    bool updating_ = false;
};

}  // namespace pilogger::gui
