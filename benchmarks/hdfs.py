"""HDFS block-session benchmark: opsloop's session model next to the published peers.

    # thin driver (the future ``opsloop bench hdfs`` calls run_hdfs with the same signature)
    .venv/bin/python benchmarks/hdfs.py --train TRAIN.csv --test TEST.csv --out PRED.csv

    # reproducible held-out split (sha256 of BlockId) + side-by-side comparison in one run
    .venv/bin/python benchmarks/hdfs.py --split [--data /work/shared/data/hdfs/hdfs_sessions.csv]

Training reads only ``BlockId`` and ``EventSequence`` of the train file (never ``Label``); every
threshold comes from the training data. Test labels are read only to print precision, recall and
F1, and (``--split``) to compute the oracle ceiling, an upper bound for *any* detector that sees
only the event sequence (analysis, never used to decide anything).

Peers, implemented faithfully after loglizer (He et al., "Experience report: system log analysis
for anomaly detection", ISSRE 2016; github.com/logpai/loglizer), with its default settings:

* PCA (Xu et al., SOSP 2009): tf-idf weighting + zero mean, components for 95 % of the variance,
  SPE > Q-statistic threshold at c_alpha = 3.2905 (alpha = 0.001).
* Invariants Mining (Lou et al., USENIX ATC 2010): raw counts, invariant space from the SVD
  (epsilon = 0.5), Apriori-style search of sparse integer invariants holding on >= 98 % of the
  training sessions (scales 1, 2, 3); a session violating any invariant is anomalous.

Both use loglizer's feature extractor default ``oov=False``: events unseen in training are dropped.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from opsloop.detect.logs import TransitionModel
from opsloop.detect.logs.hdfs_format import (
    is_test_block,
    labels_from_rows,
    precision_recall_f1,
    score_sessions,
    sessions_from_rows,
    train_count_rules,
)

DATA = Path("/work/shared/data/hdfs/hdfs_sessions.csv")


def _read(path: str | Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _read_unlabelled(path: str | Path) -> list[tuple[str, list[str]]]:
    """Training input: BlockId and EventSequence only; the Label column is never read."""
    with open(path, newline="") as f:
        return sessions_from_rows(
            {"BlockId": r["BlockId"], "EventSequence": r["EventSequence"]}
            for r in csv.DictReader(f)
        )


def run_hdfs(train_csv: str | Path, test_csv: str | Path, out_csv: str | Path) -> dict:
    """Train on ``train_csv`` (unlabelled), score every session of ``test_csv``, write
    ``BlockId,Score,Predicted`` (1 = anomalous) to ``out_csv``; P/R/F1 when test has labels."""
    t0 = time.perf_counter()
    train = _read_unlabelled(train_csv)
    model = train_count_rules(train)
    model.rules()  # mine now, so that the timings separate training and scoring
    t1 = time.perf_counter()
    test_rows = _read(test_csv)
    results = score_sessions(model, sessions_from_rows(test_rows))
    t2 = time.perf_counter()
    with open(out_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["BlockId", "Score", "Predicted"])
        w.writerows((k, f"{s:.6g}", p) for k, s, p in results)
    summary: dict = {
        "model": "CountRuleModel (default)",
        "train_sessions": len(train),
        "test_sessions": len(results),
        "predicted_anomalous": sum(p for _, _, p in results),
        "rules": len(model.rules()),
        "train_seconds": t1 - t0,
        "score_seconds": t2 - t1,
    }
    labels = labels_from_rows(test_rows)
    if labels is not None:
        p, r, f1 = precision_recall_f1([labels[k] for k, _, _ in results], [x for *_, x in results])
        summary.update(precision=p, recall=r, f1=f1, test_anomalous=sum(labels.values()))
        print(f"precision={p:.4f} recall={r:.4f} f1={f1:.4f}")
    return summary


def split(
    data_csv: str | Path,
    out_dir: str | Path,
    test_fraction: float = 0.5,
    salt: str = "opsloop-hdfs",
) -> tuple[Path, Path]:
    """Write ``train.csv`` / ``test.csv`` into ``out_dir``, split by a salted hash of BlockId."""
    rows = _read(data_csv)
    out = Path(out_dir)
    paths = out / "train.csv", out / "test.csv"
    files = [open(p, "w", newline="") for p in paths]  # noqa: SIM115
    try:
        writers = [csv.DictWriter(f, fieldnames=list(rows[0])) for f in files]
        for w in writers:
            w.writeheader()
        for r in rows:
            writers[int(is_test_block(r["BlockId"], test_fraction, salt))].writerow(r)
    finally:
        for f in files:
            f.close()
    return paths


# -- peers (loglizer-faithful) -----------------------------------------------------------------
def count_matrix(seqs: Sequence[Sequence[str]], vocab: list[str]) -> np.ndarray:
    """Event-count matrix over ``vocab``; other events are dropped (loglizer ``oov=False``)."""
    index = {e: i for i, e in enumerate(vocab)}
    x = np.zeros((len(seqs), len(vocab)))
    for r, seq in enumerate(seqs):
        for e, c in Counter(seq).items():
            if e in index:
                x[r, index[e]] = c
    return x


def pca_xu(train: np.ndarray, test: np.ndarray, var: float = 0.95, c_alpha: float = 3.2905):
    """Xu et al. PCA as in loglizer: tf-idf, zero-mean, SPE against the Q-statistic."""
    n = train.shape[0]
    idf = np.log(n / (np.sum(train > 0, axis=0) + 1e-8))
    xtr = train * idf
    mean = xtr.mean(axis=0)
    xtr = xtr - mean
    xte = test * idf - mean
    u, sigma, _ = np.linalg.svd(xtr.T @ xtr / n)
    total, acc, k = sigma.sum(), 0.0, len(sigma)
    for i in range(len(sigma)):
        acc += sigma[i]
        if acc / total >= var:
            k = i + 1
            break
    p = u[:, :k]
    c = np.eye(len(sigma)) - p @ p.T
    phi = np.array([np.sum(sigma[k:] ** (i + 1)) for i in range(3)])
    if phi[0] <= 0 or phi[1] <= 0:
        threshold = 1e-12  # residual space empty: any residual is anomalous
    else:
        h0 = 1.0 - 2 * phi[0] * phi[2] / (3.0 * phi[1] * phi[1])
        threshold = phi[0] * np.power(
            c_alpha * np.sqrt(2 * phi[1] * h0 * h0) / phi[0]
            + 1.0
            + phi[1] * h0 * (h0 - 1.0) / (phi[0] * phi[0]),
            1.0 / h0,
        )
    spe = np.sum((xte @ c.T) ** 2, axis=1)
    return spe, (spe > threshold).astype(int)


class InvariantsMiner:
    """Lou et al. invariants mining, following loglizer's ``InvariantsMiner`` step by step."""

    def __init__(self, percentage: float = 0.98, epsilon: float = 0.5, scales=(1, 2, 3)):
        self.percentage, self.epsilon, self.scales = percentage, epsilon, scales
        self.invariants: dict[tuple[int, ...], list[float]] = {}

    def fit(self, x: np.ndarray) -> InvariantsMiner:
        r = self._invariant_space(x)
        self._search(x, r)
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.zeros(x.shape[0])
        for cols, theta in self.invariants.items():
            y += np.fabs(x[:, list(cols)] @ np.array(theta))
        return y, (y > 1e-6).astype(int)

    def _invariant_space(self, x: np.ndarray) -> int:
        u, _, _ = np.linalg.svd(x.T @ x)
        n, m = x.shape
        r = 0
        for i in range(m - 1, -1, -1):
            if np.sum(np.abs(x @ u[:, i]) < self.epsilon) / n < self.percentage:
                break
            r += 1
        return r

    def _theta(self, sub: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(sub.T @ sub)
        return v[:, np.argmin(w)]

    def _valid(self, x: np.ndarray, cols: list[int]) -> tuple[bool, np.ndarray]:
        sub = x[:, cols]
        theta = self._theta(sub)
        scaled = theta
        for s in self.scales:
            j = int(np.argmin(np.fabs(theta)))
            if theta[j] == 0:
                continue
            scaled = np.round(theta * (s / theta[j]))
            scaled[j] = s
            if np.any(scaled == 0):
                continue
            if np.sum(np.fabs(sub @ scaled) < 1e-8) >= x.shape[0] * self.percentage:
                return True, scaled
        return False, scaled

    def _search(self, x: np.ndarray, r: int) -> None:
        m = x.shape[1]
        space: list[list[int]] = [[i] for i in range(m)]
        items = [[i] for i in range(m)]
        for col in [[i] for i in range(m)]:
            if np.count_nonzero(x[:, col]) == 0:
                self.invariants[tuple(col)] = [1.0]
                space.remove(col)
                items.remove(col)
        length = 2
        while items and len(self.invariants) < r:
            joined = self._join(items, length)
            for it in joined:
                if self._subsets_in(it, length, space):
                    space.append(it)
            items = []
            for it in joined:
                if tuple(it) in self.invariants or it not in space:
                    continue
                if length > 2 and not self._subsets_in(it, length, space):
                    space.remove(it)
                    continue
                ok, theta = self._valid(x, it)
                if ok:
                    self._prune(set(it), space)
                    self.invariants[tuple(it)] = theta.tolist()
                    if it in space:  # _prune may already have removed it
                        space.remove(it)
                else:
                    items.append(it)
                if len(self.invariants) >= r:
                    break
            length += 1

    @staticmethod
    def _join(items: list[list[int]], length: int) -> list[list[int]]:
        out: list[list[int]] = []
        for a, b in itertools.combinations(items, 2):
            u = sorted(set(a) | set(b))
            if len(u) == length and u not in out:
                out.append(u)
        return sorted(out)

    @staticmethod
    def _subsets_in(item: list[int], length: int, space: list[list[int]]) -> bool:
        return all(sorted(s) in space for s in itertools.combinations(item, length - 1))

    def _prune(self, target: set[int], space: list[list[int]]) -> None:
        for se in self.invariants:
            if not set(se) & target:
                continue
            union = set(se) | target
            for it in itertools.combinations(union, len(union) - 1):
                it_l = sorted(it)
                if it_l in space:
                    space.remove(it_l)


def oracle_ceiling(seqs: Sequence[Sequence[str]], labels: Sequence[int], by: str = "sequence"):
    """Best F1 of any deterministic function of the sequence (or count vector), using labels.

    Analysis only: sessions with identical inputs must get identical predictions, so when
    labelled-normal and labelled-anomalous sessions share a sequence no detector can separate them.
    """
    groups: dict[object, list[int]] = defaultdict(lambda: [0, 0])
    for s, y in zip(seqs, labels, strict=True):
        key = tuple(s) if by == "sequence" else tuple(sorted(Counter(s).items()))
        groups[key][y] += 1
    positives = sum(labels)
    best, tp, fp = 0.0, 0, 0
    for neg, pos in sorted(groups.values(), key=lambda g: -g[1] / (g[0] + g[1])):
        tp, fp = tp + pos, fp + neg
        if tp:
            p, r = tp / (tp + fp), tp / positives
            best = max(best, 2 * p * r / (p + r))
    return best


def compare(train_csv: Path, test_csv: Path, out_csv: Path) -> list[tuple]:
    """All detectors on the same split, same run."""
    ours = run_hdfs(train_csv, test_csv, out_csv)
    train = _read_unlabelled(train_csv)
    test_rows = _read(test_csv)
    test = sessions_from_rows(test_rows)
    labels = labels_from_rows(test_rows)
    assert labels is not None, "--split needs a labelled data file"
    y = [labels[k] for k, _ in test]
    rows = [
        (
            "opsloop CountRuleModel (default)",
            ours["precision"],
            ours["recall"],
            ours["f1"],
            ours["train_seconds"] + ours["score_seconds"],
        )
    ]

    t0 = time.perf_counter()
    tm = TransitionModel()
    for _, ev in train:
        tm.learn_one(ev)
    tm.fit_threshold(ev for _, ev in train)
    pred = [p for *_, p in score_sessions(tm, test)]
    rows.append(
        (
            "opsloop TransitionModel (bigram, q=0.99)",
            *precision_recall_f1(y, pred),
            time.perf_counter() - t0,
        )
    )

    vocab = sorted({e for _, ev in train for e in ev})
    xtr = count_matrix([ev for _, ev in train], vocab)
    xte = count_matrix([ev for _, ev in test], vocab)
    t0 = time.perf_counter()
    _, pred = pca_xu(xtr, xte)
    rows.append(
        (
            "peer: PCA (Xu et al., loglizer defaults)",
            *precision_recall_f1(y, list(pred)),
            time.perf_counter() - t0,
        )
    )
    t0 = time.perf_counter()
    im = InvariantsMiner().fit(xtr)
    _, pred = im.predict(xte)
    rows.append(
        (
            "peer: Invariants Mining (Lou et al., loglizer defaults)",
            *precision_recall_f1(y, list(pred)),
            time.perf_counter() - t0,
        )
    )
    seqs = [ev for _, ev in test]
    rows.append(
        (
            "ceiling: oracle on event sequence (uses test labels)",
            None,
            None,
            oracle_ceiling(seqs, y, "sequence"),
            None,
        )
    )
    rows.append(
        (
            "ceiling: oracle on count vector (uses test labels)",
            None,
            None,
            oracle_ceiling(seqs, y, "counts"),
            None,
        )
    )
    print(f"train sessions={len(train)} test sessions={len(test)} test anomalous={sum(y)}")
    print("| detector | precision | recall | F1 | seconds |")
    print("|---|---|---|---|---|")
    for name, p, r, f1, s in rows:
        cells = ["-" if v is None else f"{v:.3f}" for v in (p, r, f1)]
        print(f"| {name} | {' | '.join(cells)} | {'-' if s is None else f'{s:.2f}'} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train")
    ap.add_argument("--test")
    ap.add_argument("--out", help="predictions CSV (BlockId,Score,Predicted)")
    ap.add_argument("--split", action="store_true", help="hash split of --data, then compare")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--split-dir", help="where to write train.csv/test.csv (default: a temp dir)")
    ap.add_argument("--salt", default="opsloop-hdfs", help="split salt (other salts: other splits)")
    args = ap.parse_args(argv)
    if args.split:
        out_dir = Path(args.split_dir or tempfile.mkdtemp(prefix="opsloop-hdfs-"))
        out_dir.mkdir(parents=True, exist_ok=True)
        train_csv, test_csv = split(args.data, out_dir, salt=args.salt)
        print(f"split written to {out_dir}")
        compare(train_csv, test_csv, Path(args.out or out_dir / "pred.csv"))
        return 0
    if not (args.train and args.test and args.out):
        ap.error("--train, --test and --out are required (or use --split)")
    print(run_hdfs(args.train, args.test, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
