"""The built-in demo world: seeded multimodal datasets (real assets where packages ship them)."""

from __future__ import annotations

from unialign.demo.world import World, WorldDataset, build_world, load_world, write_world_summary

__all__ = ["World", "WorldDataset", "build_world", "load_world", "write_world_summary"]
