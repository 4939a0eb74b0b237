"""KerasTuner's oracles set up for our search, and the committed summary of a finished search."""

from __future__ import annotations

from pathlib import Path

import keras_tuner as kt

SUMMARY_COLUMNS = ["trial_id", "status", "val_accuracy", "accuracy", "params", "macs", "seconds"]


def _search_oracle(oracle_class):
    """The oracle with two additions: its first trial is the space's default point (the
    hand-designed net), and a proposal over the parameter limit is swapped for a random point
    under it.

    The first is a warm start, as in Optuna's enqueue_trial: the hand-designed model is ranked among
    the oracle's own choices on the same proxy. The second keeps trials for points that can train:
    a Gaussian process fitted on completed trials knows nothing of the limit and would keep
    proposing oversized points, which build() refuses (FailedTrialError) without training.
    """
    running = kt.engine.trial.TrialStatus.RUNNING

    class SearchOracle(oracle_class):
        def __init__(self, *args, feasible=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.feasible = feasible

        def reload(self):
            super().reload()
            # A chief can save its state while a finished trial is still listed as ongoing, and
            # KerasTuner retries every ongoing trial on reload: retry only those left unfinished.
            self._retry_queue = [t for t in self._retry_queue if self.trials[t].status == running]

        def populate_space(self, trial_id):
            defaults = {hp.name: hp.default for hp in self.hyperparameters.space
                        if self.hyperparameters.is_active(hp)}
            if self.hyperparameters.space and not self.trials and not self._duplicate(defaults):
                return {"status": running, "values": defaults}
            response = super().populate_space(trial_id)
            if response["status"] != running or self.feasible is None or self.feasible(response["values"]):
                return response
            for _ in range(1000):
                values = self._random_values()
                if values is None:
                    break
                if self.feasible(values):
                    return {"status": running, "values": values}
            return response

    return SearchOracle


def _logged(tuner_class):
    """The tuner, plus one line per finished trial naming the worker that ran it."""

    class LoggedTuner(tuner_class):
        def on_trial_end(self, trial):
            super().on_trial_end(trial)
            score = trial.metrics.get_last_value("val_accuracy") if trial.metrics.exists("val_accuracy") else None
            print(f"[{self.tuner_id}] trial {trial.trial_id} {trial.status}"
                  + ("" if score is None else f" val_accuracy={score:.4f}"), flush=True)

    return LoggedTuner


def make_tuner(hypermodel, kind: str, max_trials: int, seed: int, directory: Path, project: str, feasible=None):
    """Bayesian optimisation (a Gaussian process over the space after 10 random points) or random
    search; either resumes from `directory/project` when the same command runs again.
    feasible(values) -> bool: whether a point is under the parameter limit."""
    oracles = {"bayesian": (kt.oracles.BayesianOptimizationOracle, {"num_initial_points": 10}),
               "random": (kt.oracles.RandomSearchOracle, {})}
    oracle_class, extra = oracles[kind]
    oracle = _search_oracle(oracle_class)(
        objective=kt.Objective("val_accuracy", direction="max"), max_trials=max_trials, seed=seed,
        # Oversized points fail in build(); tolerate runs of them instead of aborting the search.
        max_consecutive_failed_trials=25, feasible=feasible, **extra)
    return _logged(kt.Tuner)(oracle=oracle, hypermodel=hypermodel, directory=str(directory),
                             project_name=project, overwrite=False)


def trial_rows(oracle) -> list[dict]:
    rows = []
    for trial_id, trial in sorted(oracle.trials.items()):
        row = {"trial_id": trial_id, "status": str(trial.status)}
        for metric in SUMMARY_COLUMNS[2:]:
            value = trial.metrics.get_last_value(metric) if trial.metrics.exists(metric) else None
            if value is not None:
                value = int(value) if metric in ("params", "macs") else round(float(value), 5)
            row[metric] = value
        row.update({f"hp_{k}": v for k, v in trial.hyperparameters.values.items()})
        rows.append(row)
    return rows


def write_summary(rows: list[dict], tuning_dir: Path, proxy: dict, best_recipe=None) -> dict:
    """tuning_dir/summary.csv (one row a trial) and summary.json (the same, the proxy and the best).

    best_recipe(values) turns the best trial's values into a recipe for `train --recipe best`.
    """
    from trainer.artifacts import write_csv, write_json

    tuning_dir.mkdir(parents=True, exist_ok=True)
    done = [r for r in rows if r["status"] == "COMPLETED" and r["val_accuracy"] is not None]
    best = max(done, key=lambda r: r["val_accuracy"], default=None)
    columns = SUMMARY_COLUMNS + sorted({k for r in rows for k in r if k.startswith("hp_")})
    write_csv(tuning_dir / "summary.csv", rows, columns)
    summary = {"objective": "val_accuracy on a hold-out carved from the training split",
               "proxy_budget": proxy, "trials": rows,
               "best_trial_id": best["trial_id"] if best else None}
    if best and best_recipe:
        summary["best_recipe"] = best_recipe({k[3:]: v for k, v in best.items() if k.startswith("hp_")})
    write_json(tuning_dir / "summary.json", summary)
    return summary
