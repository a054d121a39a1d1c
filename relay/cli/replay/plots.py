"""PNG charts of a replay's summary (matplotlib, from the test extras; labels in ASCII so any font draws them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLOURS = {"P0": "#b71c1c", "P1": "#bf360c", "P2": "#1565c0", "P3": "#616161"}


def write(summary: dict[str, Any], out: Path) -> list[Path]:
    """The charts, written into `out`; none (and no error) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in (("notifications_per_hour.png", _per_hour), ("notifications_per_staff_day.png", _staff_days),
                       ("group_chat_vs_relay.png", _chat_vs_relay), ("workload.png", _workload)):
        figure = plt.figure(figsize=(10, 5.5), dpi=100)
        draw(figure, summary)
        figure.tight_layout()
        path = out / name
        figure.savefig(path)
        plt.close(figure)
        written.append(path)
    return written


def _per_hour(figure: Any, summary: dict[str, Any]) -> None:
    axes = figure.add_subplot(1, 1, 1)
    hours = list(range(24))
    bottom = [0] * 24
    per_hour = summary["notifications"]["per_hour_by_urgency"]
    for urgency, colour in COLOURS.items():
        counts = per_hour.get(urgency, [0] * 24)
        axes.bar(hours, counts, width=0.9, align="edge", bottom=bottom, color=colour,
                 label=f"Relay notifications to staff, {urgency}")
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    axes.plot([h + 0.45 for h in hours], summary["group_chat"]["per_hour"], color="black", marker="o", linewidth=1.5,
              label="the same messages in class group chats")
    spans = [d["hours"] for d in summary["window"]["calendar"] if d.get("hours")]
    if spans:
        opening, closing = (int(t[:2]) + int(t[3:]) / 60 for t in spans[0].split("-"))
        axes.axvspan(opening, closing, color="#e8f5e9", zorder=0, label=f"school hours ({spans[0]})")
    axes.set_xticks(hours)
    axes.set_xlabel("hour of day")
    axes.set_ylabel("count over the week")
    axes.set_title("When phones buzz: Relay alerts to staff vs the same messages in class group chats")
    axes.legend(fontsize=8)


def _days(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """Every day with its label: the window's, then the days after it that still saw notifications."""
    window = summary["window"]
    return ([(d["date"], d["date"][5:] + ("" if d["school_day"] else " off")) for d in window["calendar"]]
            + [(d["date"], d["date"][5:] + " (after)") for d in window.get("after", [])])


def _staff_days(figure: Any, summary: dict[str, Any]) -> None:
    per_staff = summary["notifications"]["per_staff_per_day"]
    days = _days(summary)
    staff = sorted(per_staff, key=lambda s: -sum(per_staff[s].values()))[:20]
    grid = [[per_staff[s].get(d, 0) for d, _ in days] for s in staff]
    axes = figure.add_subplot(1, 1, 1)
    if not staff:
        axes.text(0.5, 0.5, "no notifications", ha="center")
        return
    image = axes.imshow(grid, cmap="Blues", aspect="auto")
    top = max(map(max, grid))
    for row, counts in enumerate(grid):
        for column, count in enumerate(counts):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8,
                      color="white" if count > top / 2 else "black")
    axes.set_xticks(range(len(days)), [label for _, label in days], fontsize=8)
    axes.set_yticks(range(len(staff)), staff, fontsize=8)
    axes.set_title("Notifications per staff member per day (the 20 busiest)")
    figure.colorbar(image, ax=axes)


def _chat_vs_relay(figure: Any, summary: dict[str, Any]) -> None:
    days = [d["date"] for d in summary["window"]["calendar"]]
    chat = summary["group_chat"]
    classes = max(1, chat["classes"])
    homeroom = summary["notifications"]["to_homeroom"]
    series = (
        ("class group chat: messages per class", [chat["by_day"].get(d, 0) / classes for d in days], "#424242"),
        ("Relay: notifications per homeroom teacher", [homeroom["by_day"].get(d, 0) / classes for d in days],
         "#43a047"),
        ("class group chat: messages after 20:00", [chat["after_20_by_day"].get(d, 0) / classes for d in days],
         "#9e9e9e"),
        ("Relay: notifications after 20:00", [homeroom["after_20_by_day"].get(d, 0) / classes for d in days],
         "#a5d6a7"),
    )
    axes = figure.add_subplot(1, 1, 1)
    width = 0.2
    for n, (label, values, colour) in enumerate(series):
        axes.bar([x + (n - 1.5) * width for x in range(len(days))], values, width, color=colour, label=label)
    axes.set_xticks(range(len(days)), [d[5:] for d in days])
    axes.set_ylabel("per class (per homeroom teacher), per day")
    axes.set_title("A homeroom teacher's phone: the class group chat vs Relay")
    axes.legend(fontsize=8)


def _workload(figure: Any, summary: dict[str, Any]) -> None:
    end_of_day = summary["workload"]["end_of_day"]
    days = sorted(end_of_day)
    teachers = list(summary["workload"]["owned"])
    axes = figure.add_subplot(1, 1, 1)
    width = 0.8 / max(1, len(teachers))
    for n, teacher in enumerate(teachers):
        xs = [i + n * width for i in range(len(days))]
        axes.bar(xs, [end_of_day[d].get(teacher, {}).get("open", 0) for d in days], width,
                 label=f"{teacher} open ({summary['workload']['owned'][teacher]} owned in all)")
        axes.bar(xs, [end_of_day[d].get(teacher, {}).get("overdue", 0) for d in days], width, color="#b71c1c",
                 label="overdue" if n == 0 else None)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(days))], [d[5:] for d in days])
    axes.set_ylabel("requests at the end of the day")
    axes.set_title("Open and overdue requests per academic-affairs teacher")
    axes.legend(fontsize=8)
