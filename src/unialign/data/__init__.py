"""Training and evaluation data: manifests, the mixed-modality sampler, teacher-feature cache, tar shards.

One dataset holds one modality. A :class:`MixedModalitySampler` step holds a micro-batch of every dataset
(supplement Table 1), each loaded with per-sample augmentation seeds that also key the offline teacher
features (:class:`TeacherCache`, paper §4.1).
"""

from unialign.data.manifest import (
    DATASETS, DatasetConfig, ManifestDataset, ManifestError, MicroBatch, MixtureDataset, build_datasets,
    collate_samples, register_dataset,
)
from unialign.data.sampler import MixedModalitySampler, PoolSpec, aug_seed, cached_view_seeds, split_batch
from unialign.data.shards import ShardDataset, ShardSourceConfig, build_shard_datasets
from unialign.data.teacher_cache import TeacherCache, TeacherCacheMiss, cache_teacher, cache_teacher_cli, join

__all__ = [
    "DATASETS", "DatasetConfig", "ManifestDataset", "ManifestError", "MicroBatch", "MixedModalitySampler",
    "MixtureDataset", "PoolSpec", "ShardDataset", "ShardSourceConfig", "TeacherCache", "TeacherCacheMiss", "aug_seed", "build_datasets", "build_shard_datasets",
    "cache_teacher", "cache_teacher_cli", "cached_view_seeds", "collate_samples", "join", "register_dataset",
    "split_batch",
]
