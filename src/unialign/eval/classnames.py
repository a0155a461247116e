"""Class lists that benchmarks do not ship in a readable file, as immutable constants.

Everything else is read from the dataset's own files (ImageNet's ``LOC_synset_mapping.txt``, ModelNet40's
``modelnet40_shape_names.txt``, AudioSet's ``class_labels_indices.csv``, ESC-50's ``esc50.csv``,
UCF101's ``classInd.txt``), so the label order is always the dataset's.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

# ScanObjectNN (Uy et al. 2019): the label order of its HDF5 files (``label`` 0..14), as in its
# ``shape_names.txt`` and the ULIP / OpenShape / ViT-Lens loaders.
SCANOBJECTNN: tuple[str, ...] = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table", "bed", "pillow",
    "sink", "sofa", "toilet",
)

# SUN RGB-D scene classification (Song et al. 2015): the 19 scene categories with >= 80 images, used by
# the depth-only test of Omnivore / ImageBind / ViT-Lens (4,660 test samples).
SUN_RGBD: tuple[str, ...] = (
    "bathroom", "bedroom", "classroom", "computer_room", "conference_room", "corridor", "dining_area",
    "dining_room", "discussion_area", "furniture_store", "home_office", "kitchen", "lab", "lecture_theatre",
    "library", "living_room", "office", "rest_space", "study_space",
)

# NYU-Depth v2 (654 test samples), 10-class scheme (supplement §3.1): nine scene classes and "others".
NYU_DEPTH_V2: tuple[str, ...] = (
    "bathroom", "bedroom", "bookstore", "classroom", "dining_room", "home_office", "kitchen", "living_room",
    "office", "others",
)

# "others" is scored as the max cosine over these seven member classes (supplement §3.1).
NYU_OTHERS: tuple[str, ...] = (
    "computer_room", "study", "playroom", "office_kitchen", "reception_room", "lobby", "study_space",
)

NYU_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({"others": NYU_OTHERS})

__all__ = ["NYU_DEPTH_V2", "NYU_GROUPS", "NYU_OTHERS", "SCANOBJECTNN", "SUN_RGBD"]
