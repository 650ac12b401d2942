// Warnings and errors from every module and the supervisor, newest first, filterable by module;
// "Show events" adds the supervisor's other events (starts, restarts, trials ...).
#pragma once

#include "state_model.hpp"

#include <QWidget>

class QCheckBox;
class QComboBox;
class QTreeWidget;

namespace pilogger::gui {

class LogView : public QWidget {
    Q_OBJECT
public:
    explicit LogView(const StateModel& model, QWidget* parent = nullptr);
    void addEntry(const LogEntry& entry);
    // Rebuilds the list for the current filter.
    void reload();
    QTreeWidget* list() const { return list_; }
    QComboBox* moduleFilter() const { return filter_; }
    int visibleCount() const;

private:
    bool passes(const LogEntry& entry) const;
    void noteModule(const QString& module);

    const StateModel& model_;
    QComboBox* filter_;
    QCheckBox* events_;
    QTreeWidget* list_;
};

}  // namespace pilogger::gui
