"""report.py: the outputs of a sweep, written into its directory after every invocation of
launch/sweep.sh (also partway: an interrupted sweep reports what has finished).

  sweep.csv          one row per trial, ranked by validation NDCG@100 (finished trials first)
  sweep.md           the result (the winner's test figures), how it was chosen, the same table
  sweep.json         the same, for programs
  sweep.png          validation NDCG@100 against each swept key (needs matplotlib)
  winner.yaml        the base config with the fixed overrides and the winner's merged in

Test figures are in the tables for every trial but in columns named as not used for selection:
the winner is the trial with the best validation NDCG@100 (at its best epoch), and its test
figures are the sweep's result.
"""

import copy
import csv
import json
import math
import os
import sys

import yaml

from results import METRICS, ranked
from space import format_value, load_yaml_text

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "analysis"))
from pyplot_or_none import pyplot_or_none  # noqa: E402  (launch/analysis)

NOT_USED = "not used for selection"


def fmt(x, digits=4):
    return "" if x is None else "%.*f" % (digits, x)


def trial_row(rank, trial, result, status):
    row = {"rank": rank, "index": trial.index, "trial": trial.name, "status": status}
    for key, value in trial.overrides.items():
        row[key] = format_value(value)
    for m in METRICS:
        row["validation_" + m] = result.validation(m)
    row["best_epoch"] = result.final.get("best_epoch") if result.final else None
    row["epochs_trained"] = result.epochs_trained
    row["stopped_early"] = result.stopped_early
    row["seconds"] = round(result.seconds, 3)
    for m in METRICS:
        row["test_%s_%s" % (m, NOT_USED.replace(" ", "_"))] = result.test(m)
    return row


def set_nested(config, key, value):
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = value


class Report:
    """Everything the outputs need; `statuses` maps a trial name to a word for the ones that did
    not finish (failed ..., interrupted, not run)."""

    def __init__(self, plan, results, statuses, halving=None):
        self.plan = plan            # sweep.py's Plan: sweep, trials, base, out, fixed, cli_sets
        self.results = results
        self.statuses = statuses
        self.halving = halving      # None, or {"eta", "rungs": [Rung], "epochs_full"}
        self.order = ranked(plan.trials, results)
        self.winner = self.order[0] if self.order else None

    # --- rows ------------------------------------------------------------------------------------
    def rows(self):
        rows = []
        for rank, t in enumerate(self.order, start=1):
            rows.append(trial_row(rank, t, self.results[t.name], self.statuses.get(t.name, "done")))
        for t in self.plan.trials:
            if not self.results[t.name].done:
                rows.append(trial_row("", t, self.results[t.name], self.statuses.get(t.name, "not run")))
        return rows

    def epochs_trained(self):
        return sum(self.results[t.name].epochs_trained for t in self.plan.trials)

    def seconds(self):
        return sum(self.results[t.name].seconds for t in self.plan.trials)

    # --- files -----------------------------------------------------------------------------------
    def write_all(self, wall_seconds):
        """wall_seconds: (this invocation, every invocation that ran trials, this one included)."""
        rows = self.rows()
        self.write_png()
        self.write_csv(rows)
        self.write_json(rows, wall_seconds)
        self.write_md(rows, wall_seconds)
        if self.winner is not None:
            self.write_winner_yaml()

    def path(self, name):
        return os.path.join(self.plan.out, name)

    def write_csv(self, rows):
        columns = list(rows[0].keys()) if rows else []
        with open(self.path("sweep.csv"), "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(columns)
            for row in rows:
                w.writerow(["" if row[c] is None else (("%.10g" % row[c]) if isinstance(row[c], float)
                                                        else row[c]) for c in columns])

    def summary(self):
        """The result as a dict (sweep.json's "winner")."""
        if self.winner is None:
            return None
        r = self.results[self.winner.name]
        return {"trial": self.winner.name, "index": self.winner.index,
                "overrides": {k: v for k, v in self.winner.overrides.items()},
                "run_dir": r.run_dir, "best_epoch": r.final.get("best_epoch"),
                "at_edge": self.winner_edges(),
                "epochs": r.target_epochs,
                "validation": {m: r.validation(m) for m in METRICS},
                "test": {m: r.test(m) for m in METRICS},
                "winner_yaml": self.path("winner.yaml")}

    def winner_edges(self):
        """{key: where} for the winner's values at an end of their space (Param.edge)."""
        edges = {}
        for key, value in self.winner.overrides.items():
            where = self.plan.sweep.param(key).edge(value)
            if where:
                edges[key] = where
        return edges

    def halving_dict(self):
        if not self.halving:
            return None
        return {"eta": self.halving["eta"],
                "rungs": [{"epochs": g.epochs, "trials": [t.name for t in g.members],
                           "complete": g.complete, "promoted": [t.name for t in g.promoted],
                           "scores": g.scores} for g in self.halving["rungs"]],
                "epochs_trained": self.epochs_trained(),
                "epochs_full_sweep": self.halving["epochs_full"]}

    def write_json(self, rows, wall_seconds):
        doc = {"sweep_file": self.plan.sweep_file, "base": self.plan.base, "model": self.plan.model,
               "search": self.plan.sweep.method, "seed": self.plan.sweep.seed,
               "trials_planned": len(self.plan.trials), "trials_done": len(self.order),
               "selected_by": "validation ndcg@100 (best epoch of each trial)",
               "winner": self.summary(), "halving": self.halving_dict(),
               "epochs_trained": self.epochs_trained(), "trainer_seconds": round(self.seconds(), 3),
               "wall_seconds_this_invocation": round(wall_seconds[0], 1),
               "wall_seconds_all_invocations": round(wall_seconds[1], 1), "trials": rows}
        with open(self.path("sweep.json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")

    def write_md(self, rows, wall_seconds):
        p, keys = self.plan, self.plan.sweep.keys
        out = ["# Sweep: %s" % os.path.basename(p.sweep_file), ""]
        if p.sweep.description:
            out += [str(p.sweep.description).strip(), ""]
        search = ("grid of %d points" % len(p.trials) if p.sweep.method == "grid" else
                  "random search, %d trials, seed %d" % (len(p.trials), p.sweep.seed))
        out += ["- sweep file `%s`, base config `%s` (model `%s`)" % (p.sweep_file, p.base, p.model),
                "- %s over %s" % (search, ", ".join("`%s`" % k for k in keys)),
                "- every trial: %s" % (", ".join("`%s=%s`" % (k, format_value(v)) for k, v in p.common_overrides())
                                       or "the base config")]
        if self.halving:
            out[-1] += "; `train.epochs` set per rung (successive halving)"
        out += ["- trials finished: %d of %d; epochs trained: %d; trainer seconds: %.1f; the runner's wall "
                "seconds: %.1f (this invocation), %.1f (all invocations)" % (
                    len(self.order), len(p.trials), self.epochs_trained(), self.seconds(),
                    wall_seconds[0], wall_seconds[1]), ""]
        out += ["## Result", ""]
        if self.winner is None:
            out += ["No trial has finished yet.", ""]
        else:
            w = self.summary()
            out += ["Chosen by **validation** NDCG@100 (each trial at its best epoch); the test users "
                    "played no part in the choice.", "",
                    "- winner: trial %d `%s` (%s), best epoch %s of %s" % (
                        w["index"], w["trial"], ", ".join("`%s=%s`" % (k, format_value(v))
                                                          for k, v in w["overrides"].items()),
                        w["best_epoch"], w["epochs"]),
                    "- validation: NDCG@100 %s, Recall@20 %s, Recall@50 %s" % tuple(
                        fmt(w["validation"][m]) for m in METRICS),
                    "- **result (test): NDCG@100 %s, Recall@20 %s, Recall@50 %s**" % tuple(
                        fmt(w["test"][m]) for m in METRICS),
                    "- config: `%s` (`recvae_dist %s` trains it again)" % (w["winner_yaml"], w["winner_yaml"])]
            for key, where in w["at_edge"].items():
                out.append("- **at the edge of the space:** `%s=%s` is %s; the optimum may lie beyond it, "
                           "so widen the space there before trusting the result" % (
                               key, format_value(w["overrides"][key]), where))
            out.append("")
        if self.halving:
            h = self.halving_dict()
            full = h["epochs_full_sweep"]
            out += ["## Successive halving (eta %d)" % h["eta"], ""]
            out += ["| rung | epochs | trials | promoted |", "|---:|---:|---:|---|"]
            for i, g in enumerate(h["rungs"]):
                out.append("| %d | %d | %d | %s |" % (i, g["epochs"], len(g["trials"]),
                                                      ", ".join("`%s`" % n for n in g["promoted"]) or
                                                      ("(last rung)" if g["complete"] else "(not finished)")))
            out += ["", "Epochs trained: %d, against %d for every trial at %d epochs (%.0f%%)." % (
                h["epochs_trained"], full, self.halving["max_epochs"],
                100.0 * h["epochs_trained"] / full if full else 0), ""]
        out += ["## Trials", "",
                "Ranked by validation NDCG@100. The test columns (marked †) are shown for every trial "
                "but were **not used for selection**; only the winner's is the result.", ""]
        head = (["rank", "#"] + ["`%s`" % k for k in keys] +
                ["val NDCG@100", "val Recall@20", "val Recall@50", "best epoch", "epochs", "seconds",
                 "status", "test NDCG@100 †", "test Recall@20 †", "test Recall@50 †"])
        out += ["| " + " | ".join(head) + " |", "|" + "|".join("---" if h == "status" else "---:" for h in head) + "|"]
        for row in rows:
            cells = [str(row["rank"]), str(row["index"])] + [row[k] for k in keys]
            cells += [fmt(row["validation_" + m]) for m in METRICS]
            cells += [str(row["best_epoch"] or ""), str(row["epochs_trained"]) +
                      (" (patience)" if row["stopped_early"] else ""), "%.1f" % row["seconds"], row["status"]]
            cells += [fmt(row["test_%s_%s" % (m, NOT_USED.replace(" ", "_"))]) for m in METRICS]
            if self.winner is not None and row["trial"] == self.winner.name:
                cells[0] = "**1**"
            out.append("| " + " | ".join(cells) + " |")
        out += ["", "† test figures, not used for selection. Trial directories: `%s/trials/<trial>` "
                "(the names above are their overrides); logs: `%s/logs/`." % (p.out, p.out), ""]
        if os.path.exists(self.path("sweep.png")):
            out += ["![validation NDCG@100 against each swept key](sweep.png)", ""]
        with open(self.path("sweep.md"), "w", encoding="utf-8") as f:
            f.write("\n".join(out))

    def winner_config(self):
        """Base config + every trial's overrides + the winner's, as a nested dict."""
        with open(self.plan.base_path, encoding="utf-8") as f:
            config = load_yaml_text(f.read()) or {}
        config = copy.deepcopy(config)
        for key, value in self.plan.common_overrides():
            set_nested(config, key, value)
        for key, value in self.winner.overrides.items():
            set_nested(config, key, value)
        epochs = self.results[self.winner.name].target_epochs
        if self.halving and isinstance(epochs, int):
            set_nested(config, "train.epochs", epochs)
        set_nested(config, "output.dir", os.path.join(self.plan.out, "winner"))
        return config

    def write_winner_yaml(self):
        w = self.summary()
        head = ["# Winner of the sweep %s (written by launch/sweep.sh): trial %d %s" % (
                    self.plan.sweep_file, w["index"], w["trial"]),
                "# = %s + the sweep's fixed overrides + the winner's: %s" % (
                    self.plan.base, " ".join("%s=%s" % (k, format_value(v)) for k, v in w["overrides"].items())),
                "# chosen by validation ndcg@100 %s (best epoch %s); its test ndcg@100 %s, recall@20 %s, "
                "recall@50 %s" % (fmt(w["validation"]["ndcg@100"]), w["best_epoch"],
                                  fmt(w["test"]["ndcg@100"]), fmt(w["test"]["recall@20"]),
                                  fmt(w["test"]["recall@50"])),
                "# the trial's own run directory: %s" % w["run_dir"],
                "# train it again: build/recvae_dist %s" % self.path("winner.yaml"), ""]
        with open(self.path("winner.yaml"), "w", encoding="utf-8") as f:
            f.write("\n".join(head))
            yaml.safe_dump(self.winner_config(), f, sort_keys=False, default_flow_style=False)

    # --- the PNG ---------------------------------------------------------------------------------
    def write_png(self):
        if self.winner is None:
            return
        plt = pyplot_or_none("sweep.sh", "sweep.png not drawn")
        if plt is None:
            return
        keys = self.plan.sweep.keys
        cols = 2 if len(keys) == 4 else min(3, len(keys))
        nrows = int(math.ceil(len(keys) / cols))
        fig, axes = plt.subplots(nrows, cols, figsize=(4.6 * cols, 3.6 * nrows), squeeze=False)
        done = self.order
        epochs = sorted({self.results[t.name].epochs_trained for t in done})
        colours = plt.get_cmap("viridis")
        for ax, key in zip(axes.flat, keys):
            param = self.plan.sweep.param(key)
            values = [t.overrides[key] for t in done]
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            if numeric:
                xs = [float(v) for v in values]
                positive = all(x > 0 for x in xs)
                if param.log_scale or (positive and xs and max(xs) / min(xs) >= 20):
                    ax.set_xscale("log")
            else:
                labels = []
                for v in param.extremes() if param.values is not None else values:
                    if format_value(v) not in labels:
                        labels.append(format_value(v))
                xs = [labels.index(format_value(v)) for v in values]
                ax.set_xticks(range(len(labels)))
                ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
            ys = [self.results[t.name].validation() for t in done]
            for x, y, t in zip(xs, ys, done):
                e = self.results[t.name].epochs_trained
                c = colours(epochs.index(e) / max(1, len(epochs) - 1)) if self.halving else "tab:blue"
                ax.scatter([x], [y], color=c, s=22, zorder=2)
            wx = xs[0]
            ax.scatter([wx], [ys[0]], marker="*", s=180, color="tab:red", zorder=3, label="winner")
            ax.set_xlabel(key)
            ax.set_ylabel("validation NDCG@100")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        axes.flat[0].legend(loc="lower right", fontsize=8)
        title = "%s: %d trials (%s)" % (os.path.basename(self.plan.sweep_file), len(done), self.plan.model)
        if self.halving:
            title += ", successive halving: colour = epochs trained (%s)" % ", ".join(map(str, epochs))
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        fig.savefig(self.path("sweep.png"), dpi=100)
        plt.close(fig)
