"""Data drift decisions: opsloop's drift detection vs Evidently 0.7.23's default DataDriftPreset.

A seeded generated suite: reference tables of 200 to 30,000 rows (so both of Evidently's test
families run: p-value tests up to 1,000 reference rows, distances above) with nine features —
continuous numeric (normal, log-normal, uniform, integer counts), few-valued numeric (four
values; 0/1), categorical (3 and 8 categories, binary) — and windows of 100 to 2,000 rows in
which features are left alone or perturbed: shifted means (numeric: by d standard deviations,
d log-uniform in [0.01, 0.5]; few-valued: probability mass d moved to the top value), widened
variances (spread times 1 + s, s log-uniform in [0.01, 1]), new categories (share r
log-uniform in [0.001, 0.2]) and shifted category frequencies (mass d moved to the rarest
category). Small magnitudes make many cases borderline on purpose.

Both run on identical DataFrames in one process: Evidently as its users run it
(``Report([DataDriftPreset()], include_tests=True).run(current, reference)``, decisions read
from the per-column drift tests), opsloop from the same reference DataFrame (profile built per
window, the same work) and, separately, as deployed (profile built once per reference, then
one ``detect_drift`` per window). Timing is wall clock around those calls only, after one
warm-up call of each; data generation is excluded.

Needs Evidently, which does not import under pandas 3 (the project venv's), so it runs in a
separate venv, made once::

    python3.11 -m venv .venv-bench
    .venv-bench/bin/pip install 'evidently==0.7.23' 'pandas<3'
    .venv-bench/bin/pip install --no-deps -e .
    .venv-bench/bin/python benchmarks/drift.py [--seed 7] [--windows 6]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "drift.md"
COMMAND = ".venv-bench/bin/python benchmarks/drift.py"

REF_SIZES = (200, 500, 1000, 1500, 3000, 10_000, 30_000)
WINDOW_SIZES = (100, 500, 2000)

CONTINUOUS = ("num_normal", "num_lognormal", "num_uniform", "num_count")
FEW_VALUED = {
    "num_level": ([0.0, 1.0, 2.0, 3.0], [0.4, 0.3, 0.2, 0.1]),
    "num_flag": ([0.0, 1.0], [0.8, 0.2]),
}
CATEGORICAL = {
    "cat_plan": (["basic", "pro", "team"], [0.5, 0.3, 0.2]),
    "cat_region": ([f"r{i}" for i in range(8)], [0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03]),
    "cat_flag": (["yes", "no"], [0.7, 0.3]),
}
FEATURES = (*CONTINUOUS, *FEW_VALUED, *CATEGORICAL)
APPLICABLE = {
    "mean_shift": (*CONTINUOUS, *FEW_VALUED),
    "variance": CONTINUOUS,
    "new_category": (*FEW_VALUED, *CATEGORICAL),
    "freq_shift": tuple(CATEGORICAL),
}
SCENARIOS = ("no_drift", "mean_shift", "variance", "new_category", "freq_shift", "mixed")
CASE_TYPES = ("no_drift", "mean_shift", "variance", "new_category", "freq_shift")

# true moments of the continuous generators (shifts are in units of the true sd)
MOMENTS = {
    "num_normal": (0.0, 1.0),
    "num_lognormal": (np.exp(0.18), np.sqrt((np.exp(0.36) - 1) * np.exp(0.36))),
    "num_uniform": (5.0, 10.0 / np.sqrt(12.0)),
    "num_count": (40.0, np.sqrt(40.0)),
}

EVIDENTLY_METHODS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
}


def _loguniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _continuous(rng, name, n):
    if name == "num_normal":
        return rng.normal(0.0, 1.0, n)
    if name == "num_lognormal":
        return rng.lognormal(0.0, 0.6, n)
    if name == "num_uniform":
        return rng.uniform(0.0, 10.0, n)
    return rng.poisson(40.0, n)


def _column(rng, name, n, case=None, size=0.0):
    import pandas as pd

    if name in CONTINUOUS:
        x = _continuous(rng, name, n)
        mean, sd = MOMENTS[name]
        if case == "mean_shift":
            x = x + size * sd
        elif case == "variance":
            x = mean + (x - mean) * (1.0 + size)
        if name == "num_count":
            return np.rint(x).astype(np.int64)
        return x.astype(np.float64)
    values, probs = FEW_VALUED.get(name) or CATEGORICAL[name]
    values, probs = list(values), np.array(probs, dtype=float)
    if case in ("mean_shift", "freq_shift"):
        target = np.zeros_like(probs)
        target[-1] = 1.0  # toward the top value (few-valued) or the rarest category
        probs = (1.0 - size) * probs + size * target
    elif case == "new_category":
        values.append(5.0 if name in FEW_VALUED else "new")
        probs = np.append(probs * (1.0 - size), size)
    out = rng.choice(np.array(values, dtype=object), n, p=probs / probs.sum())
    if name in FEW_VALUED:
        return out.astype(np.float64)
    return pd.Series(out, dtype=object)


def _magnitude(rng, case):
    if case == "mean_shift":
        return _loguniform(rng, 0.01, 0.5)
    if case == "variance":
        return _loguniform(rng, 0.01, 1.0)
    if case == "new_category":
        return _loguniform(rng, 0.001, 0.2)
    return _loguniform(rng, 0.01, 0.4)  # freq_shift


def make_suite(seed: int, windows: int) -> list[dict]:
    """Every (reference, window) pair with its per-feature case labels."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    suite = []
    for n_ref in REF_SIZES:
        for m in WINDOW_SIZES:
            ref = pd.DataFrame({f: _column(rng, f, n_ref) for f in FEATURES})
            for _ in range(windows):
                scenario = SCENARIOS[int(rng.integers(len(SCENARIOS)))]
                cases = dict.fromkeys(FEATURES, "no_drift")
                sizes = dict.fromkeys(FEATURES, 0.0)
                for f in FEATURES:
                    if scenario == "no_drift":
                        continue
                    options = [c for c in CASE_TYPES[1:] if f in APPLICABLE[c]]
                    if scenario != "mixed":
                        options = [scenario] if f in APPLICABLE[scenario] else []
                    if options and rng.random() < 0.6:
                        cases[f] = options[int(rng.integers(len(options)))]
                        sizes[f] = _magnitude(rng, cases[f])
                cur = pd.DataFrame({f: _column(rng, f, m, cases[f], sizes[f]) for f in FEATURES})
                suite.append(
                    {"ref": ref, "cur": cur, "n_ref": n_ref, "m": m, "cases": cases, "sizes": sizes}
                )
    return suite


def run_evidently(ref, cur) -> dict:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snap = Report([DataDriftPreset()], include_tests=True).run(cur, ref).dict()
    scores = {
        m["config"]["column"]: (m["config"]["method"], m["value"])
        for m in snap["metrics"]
        if m["config"]["type"].endswith("ValueDrift")
    }
    share = next(
        m["value"]["share"] for m in snap["metrics"] if "DriftedColumnsCount" in m["config"]["type"]
    )
    out = {}
    for t in snap["tests"]:
        if t["id"] == "drift":
            col = t["metric_config"]["params"]["column"]
            method, value = scores[col]
            out[col] = (t["status"] == "FAIL", EVIDENTLY_METHODS.get(method, method), float(value))
    return {"features": out, "share": float(share), "drifted": share >= 0.5}


def run_ours(ref, cur, profile=None):
    from opsloop.learn.monitoring.drift import detect_drift
    from opsloop.learn.monitoring.profile import ReferenceProfile

    prof = profile if profile is not None else ReferenceProfile.from_data(ref)
    return detect_drift(prof, cur)


def evaluate(suite: list[dict]) -> dict:
    from opsloop.learn.monitoring.profile import ReferenceProfile

    warnings.filterwarnings("ignore")  # scipy's divide-by-zero on new categories, plotly notes
    # warm-up (imports, caches), not timed
    run_evidently(suite[0]["ref"], suite[0]["cur"])
    run_ours(suite[0]["ref"], suite[0]["cur"])

    t_ev, ev_results = 0.0, []
    for case in suite:
        t0 = time.perf_counter()
        ev_results.append(run_evidently(case["ref"], case["cur"]))
        t_ev += time.perf_counter() - t0

    t_ours, our_results = 0.0, []
    for case in suite:
        t0 = time.perf_counter()
        our_results.append(run_ours(case["ref"], case["cur"]))
        t_ours += time.perf_counter() - t0

    # as deployed: one profile per reference table, one detect_drift per window
    t_profile = t_detect = 0.0
    profiles: dict[int, object] = {}
    for case in suite:
        key = id(case["ref"])
        if key not in profiles:
            t0 = time.perf_counter()
            profiles[key] = ReferenceProfile.from_data(case["ref"])
            t_profile += time.perf_counter() - t0
        t0 = time.perf_counter()
        run_ours(case["ref"], case["cur"], profiles[key])
        t_detect += time.perf_counter() - t0

    return {
        "evidently": ev_results,
        "ours": our_results,
        "t_evidently": t_ev,
        "t_ours": t_ours,
        "t_profile": t_profile,
        "t_detect": t_detect,
        "n_references": len(profiles),
    }


def _pct(a: int, n: int) -> str:
    return f"{100.0 * a / n:.1f} %" if n else "—"


def summarise(suite: list[dict], res: dict) -> dict:
    by_case: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # agree, n, ev drift, ours
    by_method: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_family: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    method_agree = 0
    max_diff: dict[str, float] = defaultdict(float)
    disagreements = []
    ds_agree = 0
    for case, ev, ours in zip(suite, res["evidently"], res["ours"], strict=True):
        ds_agree += ev["drifted"] == ours.drifted
        for f in FEATURES:
            e_drift, e_method, e_value = ev["features"][f]
            o = ours.features[f]
            agree = e_drift == o.drifted
            ctype = case["cases"][f]
            row = by_case[ctype]
            row[0] += agree
            row[1] += 1
            row[2] += e_drift
            row[3] += o.drifted
            by_method[e_method][0] += agree
            by_method[e_method][1] += 1
            family = (
                "reference <= 1000 (p-values)"
                if case["n_ref"] <= 1000
                else "reference > 1000 (distances)"
            )
            by_family[family][0] += agree
            by_family[family][1] += 1
            method_agree += e_method == o.method
            if e_method == o.method:
                max_diff[e_method] = max(max_diff[e_method], abs(e_value - o.statistic))
            if not agree:
                disagreements.append(
                    (f, ctype, case["n_ref"], case["m"], e_method, e_value, o.statistic)
                )
    n_cases = sum(r[1] for r in by_case.values())
    agree_all = sum(r[0] for r in by_case.values())
    return {
        "by_case": dict(by_case),
        "by_method": dict(by_method),
        "by_family": dict(by_family),
        "method_agree": method_agree,
        "max_diff": dict(max_diff),
        "disagreements": disagreements,
        "n_cases": n_cases,
        "agree": agree_all,
        "n_windows": len(suite),
        "dataset_agree": ds_agree,
    }


def report(args, suite, res, s) -> str:
    import evidently
    import pandas as pd
    import scipy

    n = s["n_windows"]
    ratio = res["t_evidently"] / res["t_ours"]
    ratio_deployed = res["t_evidently"] / (res["t_profile"] + res["t_detect"])
    lines = [
        "# Data drift decisions: opsloop vs Evidently's default DataDriftPreset",
        "",
        f"Command: `{COMMAND} --seed {args.seed} --windows {args.windows}`",
        "",
        f"Evidently {evidently.__version__}, pandas {pd.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, Python {platform.python_version()}, on the project's 2-core "
        "box (shared with other jobs while measuring). Both sides ran in this one process, on the "
        "same DataFrames.",
        "",
        "Suite (seeded, see the docstring of `benchmarks/drift.py`): reference sizes "
        f"{', '.join(str(r) for r in REF_SIZES)} rows by windows of "
        f"{', '.join(str(w) for w in WINDOW_SIZES)} rows, {args.windows} windows per pair: "
        f"**{n} windows x {len(FEATURES)} features = "
        f"{s['n_cases']} feature-window cases**. Features: {', '.join(FEATURES)}.",
        "",
        "## Agreement of the per-feature drift decision",
        "",
        f"**{_pct(s['agree'], s['n_cases'])} overall** ({s['agree']} of {s['n_cases']}); the same "
        f"test was chosen in {_pct(s['method_agree'], s['n_cases'])} of cases; dataset drift "
        f"(share ≥ 0.5) agreed on {_pct(s['dataset_agree'], n)} of the {n} windows.",
        "",
        "| case type | cases | agreement | drift rate (Evidently) | drift rate (opsloop) |",
        "|---|---:|---:|---:|---:|",
    ]
    for ctype in CASE_TYPES:
        a, k, e, o = s["by_case"].get(ctype, [0, 0, 0, 0])
        lines.append(f"| {ctype} | {k} | {_pct(a, k)} | {_pct(e, k)} | {_pct(o, k)} |")
    lines += [
        "",
        "| Evidently's test | cases | agreement | max abs score difference |",
        "|---|---:|---:|---:|",
    ]
    for method, (a, k) in sorted(s["by_method"].items()):
        lines.append(f"| {method} | {k} | {_pct(a, k)} | {s['max_diff'].get(method, 0.0):.2e} |")
    lines += ["", "| reference size | cases | agreement |", "|---|---:|---:|"]
    for fam, (a, k) in sorted(s["by_family"].items()):
        lines.append(f"| {fam} | {k} | {_pct(a, k)} |")
    if s["disagreements"]:
        lines += [
            "",
            "Disagreements (feature, case, reference rows, window rows, test, Evidently's score, "
            "ours):",
            "",
        ]
        for f, ctype, n_ref, m, method, ev, ours in s["disagreements"][:20]:
            lines.append(f"- {f}, {ctype}, {n_ref}, {m}, {method}: {ev:.6f} vs {ours:.6f}")
    lines += [
        "",
        "## Speed (same work, wall clock, data generation excluded)",
        "",
        "| | total s | ms per window | speed-up vs Evidently |",
        "|---|---:|---:|---:|",
        f"| Evidently `Report([DataDriftPreset()]).run(cur, ref)` | {res['t_evidently']:.2f} | "
        f"{1000 * res['t_evidently'] / n:.1f} | 1 |",
        f"| **opsloop, profile of the reference built for every window** | {res['t_ours']:.2f} | "
        f"{1000 * res['t_ours'] / n:.2f} | **{ratio:.0f}x** |",
        f"| opsloop as deployed: {res['n_references']} profiles once + {n} `detect_drift` | "
        f"{res['t_profile'] + res['t_detect']:.2f} | "
        f"{1000 * res['t_detect'] / n:.2f} (detect only) | {ratio_deployed:.0f}x |",
        "",
        "Where the two can differ: above 5,000 reference rows the profile keeps the means of 5,000 "
        "equal-mass bins instead of every value, so the normed Wasserstein distance moves a little "
        "(the max difference above); a case that close to the 0.1 threshold can flip. Column "
        "types: opsloop fixes them from the reference with Evidently's inference rules, Evidently "
        "infers them from each current window; they coincide on this suite (same test chosen).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--windows", type=int, default=6, help="windows per (reference, window size)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    try:
        import evidently  # noqa: F401
    except ImportError as exc:
        print(
            f"Evidently is needed for this benchmark ({exc}); see the docstring.", file=sys.stderr
        )
        return 2
    suite = make_suite(args.seed, args.windows)
    res = evaluate(suite)
    s = summarise(suite, res)
    text = report(args, suite, res, s)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    ratio = res["t_evidently"] / res["t_ours"]
    print(
        f"{s['n_cases']} feature-window cases: agreement {_pct(s['agree'], s['n_cases'])}; "
        f"Evidently {res['t_evidently']:.2f} s, opsloop {res['t_ours']:.2f} s ({ratio:.0f}x); "
        f"as deployed {res['t_profile'] + res['t_detect']:.2f} s"
    )
    for ctype in CASE_TYPES:
        a, k, _, _ = s["by_case"].get(ctype, [0, 0, 0, 0])
        print(f"  {ctype:13s} {k:5d} cases  agreement {_pct(a, k)}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
