"""Zero-shot evaluation: metrics, text classifiers, benchmark readers and the ``unialign eval`` command.

    from unialign.eval import evaluate, read_benchmark
    results = evaluate(model, read_benchmark("esc50", "/data/ESC-50-master"))
"""

from unialign.eval.base import Benchmark, BenchmarkError, BenchmarkUnavailable, Item
from unialign.eval.benchmarks import BENCHMARKS, describe, get_reader, list_benchmarks, read_benchmark
from unialign.eval.metrics import (
    average_precision, mean_average_precision, mean_per_class_recall, recall_at_k, retrieval_metrics, topk_accuracy,
)
from unialign.eval.run import add_parser, cmd_eval, evaluate
from unialign.eval.zeroshot import ZeroShotClassifier, class_embeddings, group_max

__all__ = [
    "BENCHMARKS", "Benchmark", "BenchmarkError", "BenchmarkUnavailable", "Item", "ZeroShotClassifier",
    "add_parser", "average_precision", "class_embeddings", "cmd_eval", "describe", "evaluate", "get_reader",
    "group_max", "list_benchmarks", "mean_average_precision", "mean_per_class_recall", "read_benchmark",
    "recall_at_k", "retrieval_metrics", "topk_accuracy",
]
