"""results.py: what a sweep's trial directories say: each trial's validation figures (the only
ones used to choose), its test figures (reported, never used to choose), the epochs it trained
and the trainer's seconds; the ranking; and the successive-halving rungs, recomputed from the
directories alone so that an interrupted sweep picks up where it stopped.
"""

import json
import math
import os

METRICS = ("ndcg@100", "recall@20", "recall@50")
SELECT_BY = "ndcg@100"  # of the validation users, at the trial's best epoch


def _number(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_metrics(path):
    """metrics.jsonl as {epoch: line}; a line repeated by a resume counts once (the last);
    unreadable lines are skipped."""
    lines = {}
    try:
        with open(path, encoding="utf-8") as f:
            for text in f:
                try:
                    line = json.loads(text)
                except ValueError:
                    continue
                if isinstance(line, dict) and isinstance(line.get("epoch"), int):
                    lines[line["epoch"]] = line
    except OSError:
        pass
    return lines


class Result:
    """One trial's run directory as it is now."""

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.final = read_json(os.path.join(run_dir, "final.json"))
        if not isinstance(self.final, dict) or _number(self.final.get(SELECT_BY)) is None:
            self.final = None
        self.lines = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
        self.has_checkpoint = os.path.exists(os.path.join(run_dir, "checkpoints", "latest"))

    @property
    def done(self):
        return self.final is not None

    @property
    def stopped_early(self):
        return bool(self.final and self.final.get("stopped_early"))

    @property
    def target_epochs(self):
        """train.epochs of the run that wrote final.json."""
        return self.final.get("epochs") if self.final else None

    @property
    def epochs_trained(self):
        """Epochs (EASE, SLIM: fits) in metrics.jsonl: what the trial cost."""
        return len(self.lines)

    @property
    def epochs_run(self):
        if not self.final:
            return self.epochs_trained
        return self.final.get("epochs_run", self.final.get("epochs"))

    @property
    def seconds(self):
        """The trainer's own seconds: every top-level *_seconds of every epoch line (train,
        evaluation, epoch start; EASE and SLIM: fit), summed over the run's sessions."""
        total = 0.0
        for line in self.lines.values():
            for key, value in line.items():
                if key.endswith("_seconds") and _number(value) is not None:
                    total += value
        return total

    def validation(self, metric=SELECT_BY):
        if not self.final:
            return None
        return _number((self.final.get("validation") or {}).get(metric))

    def test(self, metric):
        return _number(self.final.get(metric)) if self.final else None

    def reached(self, epochs):
        """Trained to `epochs` (or stopped early by train.patience before)."""
        if not self.final:
            return False
        if epochs is None or self.stopped_early:
            return True
        return isinstance(self.target_epochs, int) and self.target_epochs >= epochs

    def best_validation_up_to(self, epochs):
        """Best validation NDCG@100 over the epochs <= `epochs`: the trial's score at that rung."""
        best = None
        for epoch, line in self.lines.items():
            if epochs is not None and epoch > epochs:
                continue
            v = _number((line.get("validation") or {}).get(SELECT_BY))
            if v is not None and (best is None or v > best):
                best = v
        if best is None and self.final and (epochs is None or self.reached(epochs)):
            best = self.validation()
        return best


def ranked(trials, results):
    """Trials with a final.json, best validation NDCG@100 first (ties: the lower index)."""
    done = [t for t in trials if results[t.name].done]
    return sorted(done, key=lambda t: (-results[t.name].validation(), t.index))


def rung_epochs(min_epochs, max_epochs, eta):
    """min, min*eta, min*eta^2, ... below max, then max."""
    rungs, e = [], min_epochs
    while e < max_epochs:
        rungs.append(e)
        e *= eta
    rungs.append(max_epochs)
    return rungs


class Rung:
    def __init__(self, epochs, members):
        self.epochs = epochs
        self.members = members   # trials that take part in this rung
        self.scores = {}         # name -> best validation NDCG@100 up to self.epochs
        self.promoted = []       # trials going on to the next rung (empty at the last)
        self.complete = False


def halving_walk(trials, results, eta, rungs, failed):
    """Replays successive halving on what the directories hold. Returns (rungs walked, the trials
    that still have to train to the first incomplete rung's epochs). A failed trial (in `failed`)
    scores nothing and is never promoted; every rung keeps max(1, floor(n / eta)) trials."""
    walked = []
    members = list(trials)
    for i, epochs in enumerate(rungs):
        rung = Rung(epochs, members)
        walked.append(rung)
        todo = [t for t in members if t.name not in failed and not results[t.name].reached(epochs)]
        if todo:
            return walked, todo
        rung.complete = True
        for t in members:
            if t.name not in failed:
                rung.scores[t.name] = results[t.name].best_validation_up_to(epochs)
        if i == len(rungs) - 1:
            break
        scored = [t for t in members if rung.scores.get(t.name) is not None]
        scored.sort(key=lambda t: (-rung.scores[t.name], t.index))
        keep = max(1, len(members) // eta)
        rung.promoted = scored[:keep]
        members = rung.promoted
        if not members:
            break
    return walked, []
