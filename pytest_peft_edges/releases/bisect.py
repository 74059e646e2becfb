"""``peft-edges bisect``: where does a case's outcome change across the peft releases?

The outcome of a case on a release is what it does, whatever its recorded ranges say: ``fixed`` (the
fixed behaviour holds), the id of the known bug whose recorded failure it shows, ``failing`` (the fixed
behaviour does not hold, no recorded failure matches), ``error`` or ``n/a`` (``requires`` excludes the
release). Bisection runs the two ends of the window and both sides of every recorded range boundary,
then halves every interval whose ends differ until each change sits between two neighbouring releases.
Releases between two runs with the same outcome are taken to share it (``--all`` runs every release).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any, Callable, Sequence

#: outcome label of a case on one release, and the report entry (or a detail dict) behind it
Observation = tuple[str, dict[str, Any]]
Observer = Callable[[str], Observation]


def outcome(entry: dict[str, Any] | None) -> str:
    """The release-independent outcome of a report entry (see the module docstring)."""
    if entry is None:
        return "missing"
    verdict = entry["verdict"]
    if verdict in ("fixed", "range-wrong"):
        return "fixed"
    if verdict in ("reproduced", "regressed"):
        return entry.get("bug") or "failing"
    if verdict == "skipped":
        return "n/a"
    return "error"


@dataclasses.dataclass
class Segment:
    outcome: str
    releases: list[str]   # consecutive releases of the window with this outcome
    run: list[str]        # those of them actually run

    @property
    def span(self) -> str:
        first, last = self.releases[0], self.releases[-1]
        return first if first == last else f"{first} ... {last}"


@dataclasses.dataclass
class BugFinding:
    bug: str
    recorded: str                # the recorded range label
    recorded_releases: list[str]  # releases of the window inside the recorded range
    found_releases: list[str]     # releases of the window showing the bug
    found: str                    # the found range(s) as PEP 440 specifiers
    first_affected: str | None
    first_fixed: str | None
    regression: str | None        # the release where the bug comes back after a fix, if any

    @property
    def agrees(self) -> bool:
        return self.recorded_releases == self.found_releases


@dataclasses.dataclass
class BisectResult:
    case_id: str
    window: list[str]
    observations: dict[str, Observation]
    segments: list[Segment]
    findings: list[BugFinding]

    @property
    def runs(self) -> int:
        return len(self.observations)

    @property
    def ok(self) -> bool:
        return all(f.agrees for f in self.findings) and not self.unexplained

    @property
    def unexplained(self) -> list[Segment]:
        return [s for s in self.segments if s.outcome in ("error", "failing", "missing")]


def probes(window: Sequence[str], in_range: Sequence[Callable[[str], bool]]) -> list[int]:
    """The first probes: both ends, and both sides of every recorded range boundary."""
    points = {0, len(window) - 1}
    for affects in in_range:
        inside = [affects(release) for release in window]
        for i in range(1, len(window)):
            if inside[i] != inside[i - 1]:
                points.update((i - 1, i))
    return sorted(points)


def bisect(case_id: str, window: Sequence[str], observe: Observer, bugs: Sequence[Any], *,
           stack: dict[str, str | None] | None = None, jobs: int = 2, every: bool = False) -> BisectResult:
    """Bisect ``case_id`` over ``window`` (releases, oldest first). ``bugs``: the case's known bugs
    (objects with ``id``, ``range_label()`` and ``affects(stack)``) to probe and to check; ``stack``:
    the other versions of the runs (transformers, torch) for the recorded ranges."""
    window = list(window)
    base = dict(stack or {})

    def affects(bug: Any) -> Callable[[str], bool]:
        return lambda release: bool(bug.affects({**base, "peft": release}))

    seen: dict[int, Observation] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs))

    def run(points: Sequence[int]) -> None:
        todo = [p for p in dict.fromkeys(points) if p not in seen]
        for point, result in zip(todo, pool.map(lambda p: observe(window[p]), todo)):
            seen[point] = result

    try:
        run(range(len(window)) if every else probes(window, [affects(b) for b in bugs]))
        while True:
            done = sorted(seen)
            open_intervals = [(a, b) for a, b in zip(done, done[1:]) if b > a + 1 and seen[a][0] != seen[b][0]]
            if not open_intervals:
                break
            # Split each open interval in (jobs // intervals + 1) parts: both cores stay busy.
            parts = max(2, jobs // len(open_intervals) + 1)
            run([a + (b - a) * k // parts for a, b in open_intervals for k in range(1, parts)
                 if a < a + (b - a) * k // parts < b])
    finally:
        pool.shutdown(wait=True)

    # Every release takes the outcome of the run at or before it (equal ends: the same outcome inside).
    done = sorted(seen)
    labels = []
    for i in range(len(window)):
        last_run = max(p for p in done if p <= i)
        labels.append(seen[last_run][0])
    segments: list[Segment] = []
    for i, label in enumerate(labels):
        if segments and segments[-1].outcome == label:
            segments[-1].releases.append(window[i])
        else:
            segments.append(Segment(label, [window[i]], []))
        if i in seen:
            segments[-1].run.append(window[i])
    findings = [finding(bug, window, labels, affects(bug)) for bug in bugs]
    return BisectResult(case_id, window, {window[p]: seen[p] for p in done}, segments, findings)


def finding(bug: Any, window: list[str], labels: list[str], affects: Callable[[str], bool]) -> BugFinding:
    found = [release for release, label in zip(window, labels) if label == bug.id]
    spans: list[tuple[int, int]] = []
    for i, label in enumerate(labels):
        if label == bug.id:
            if spans and spans[-1][1] == i - 1:
                spans[-1] = (spans[-1][0], i)
            else:
                spans.append((i, i))
    specs = []
    for lo, hi in spans:
        parts = ([f">={window[lo]}"] if lo > 0 else []) + ([f"<{window[hi + 1]}"] if hi + 1 < len(window) else [])
        specs.append(",".join(parts) or "every release of the window")
    return BugFinding(
        bug=bug.id, recorded=bug.range_label(), recorded_releases=[r for r in window if affects(r)],
        found_releases=found, found=" or ".join(specs) if specs else "not seen",
        first_affected=window[spans[0][0]] if spans else None,
        first_fixed=window[spans[0][1] + 1] if spans and spans[0][1] + 1 < len(window) else None,
        regression=window[spans[1][0]] if len(spans) > 1 else None)


def render(result: BisectResult, context: str = "") -> str:
    """The human report: the outcome segments, then each known bug found vs recorded."""
    window = result.window
    lines = [f"bisect {result.case_id}: peft {window[0]} ... {window[-1]}{context} — "
             f"{result.runs} of {len(window)} releases run"]
    width = max(len(s.span) for s in result.segments) + 6
    outcome_width = max(len(s.outcome) for s in result.segments) + 3
    for segment in result.segments:
        lines.append(f"  {('peft ' + segment.span).ljust(width)}{segment.outcome.ljust(outcome_width)}"
                     f"(run on {', '.join(segment.run)})")
        if segment.outcome in ("error", "failing", "missing"):
            detail = result.observations[segment.run[0]][1]
            lines.append(f"      {detail.get('message', '')}")
    for f in result.findings:
        lines.append(f"known bug {f.bug}:")
        lines.append(f"  found:    {f.found}" + (f" (first affected {f.first_affected}" if f.first_affected else "")
                     + (f", first fixed {f.first_fixed})" if f.first_fixed else ")" if f.first_affected else ""))
        if f.regression:
            lines.append(f"  REGRESSION: comes back in {f.regression} after being fixed")
        lines.append(f"  recorded: {f.recorded}")
        if f.agrees:
            lines.append("  the recorded range is right on every release of the window")
        else:
            extra = [r for r in f.recorded_releases if r not in f.found_releases]
            missing = [r for r in f.found_releases if r not in f.recorded_releases]
            lines.append("  the recorded range is WRONG: " + "; ".join(
                part for part in (f"it includes {_releases(extra)}, where the case does not show the bug" if extra else "",
                                  f"it leaves out {_releases(missing)}, where the bug shows" if missing else "")
                if part))
    if result.unexplained:
        lines.append("outcomes no recorded bug explains: "
                     + ", ".join(f"{s.outcome} on {s.span}" for s in result.unexplained))
    return "\n".join(lines)


def _releases(releases: list[str]) -> str:
    return releases[0] if len(releases) == 1 else f"{len(releases)} releases ({', '.join(releases)})"
