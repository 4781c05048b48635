"""A small module to complete in: `make demo` asks for the body of `mean`."""

from dataclasses import dataclass


@dataclass
class Point:
    x: float
    y: float


def distance(a: Point, b: Point) -> float:
    """Euclidean distance between two points."""
    return ((a.x - b.x) ** 2 + (a.y - b.y) ** 2) ** 0.5


def mean(values: list[float]) -> float:
    """Arithmetic mean of a non-empty list."""
    return
