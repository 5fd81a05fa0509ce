"""The report's PNGs are real images, and the Pareto front keeps exactly the undominated points."""
import matplotlib.image
import pytest
from report_records import frame, sft

from reports.plots import pareto_front, write_plots
from reports.table import groups

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("points, lower_better, front", [
    ([(1, 0.5), (2, 0.7), (3, 0.6), (4, 0.9)], False, [0, 1, 3]),
    ([(1, 0.5), (1, 0.6)], False, [1]),                  # same memory, better quality wins
    ([(1, 2.0), (2, 1.5), (3, 1.8)], True, [0, 1]),      # loss: lower is better
    ([(2, 0.5), (2, 0.5)], False, [0, 1]),               # identical points dominate neither
])
def test_pareto_front(points, lower_better, front):
    assert pareto_front(points, lower_better) == front


def test_plots_are_valid_pngs(tmp_path):
    (group,) = groups(frame([sft("full", trainable=134_515_008, mem_gib=4.9, metric_after=0.8, forgetting=0.3),
                             sft("lora", trainable=2_442_240, mem_gib=4.5, metric_after=0.78, forgetting=0.05),
                             sft("lora", seed=1, trainable=2_442_240, mem_gib=4.6, metric_after=0.76, forgetting=0.06)]))
    made = write_plots(group, tmp_path)
    names = sorted(p.name for _, p in made)
    assert names == ["forgetting.png", "memory_quality-wiki-topics.png", "share_quality-wiki-topics.png", "tokens_per_s.png"]
    for _, path in made:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        img = matplotlib.image.imread(path)
        assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100


def test_no_figure_without_measurements(tmp_path):
    (group,) = groups(frame([sft("lora", metric_after=None, forgetting=None, peak_rss_bytes=None,
                                 tokens_per_s=None, trainable_share=None)]))
    assert write_plots(group, tmp_path) == []
    assert not list(tmp_path.rglob("*.png"))
