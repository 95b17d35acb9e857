"""The run's loaders: a rendered validation set is rendered once and kept; other sets are not."""

import torch

from handmesh.data.stream import SynthStream, parse_stream_spec
from handmesh.train.config import TrainConfig
from handmesh.train.data import RenderedOnce, is_rendered, make_loaders
from handmesh.train.distributed import DistInfo


def test_a_rendered_validation_set_is_rendered_once_and_kept(monkeypatch):
    rendered: list[int] = []
    record = SynthStream.record

    def counted(self, i, side="right"):
        rendered.append(int(i))
        return record(self, i, side)

    monkeypatch.setattr(SynthStream, "record", counted)
    stream = SynthStream(parse_stream_spec("synth:", 32), length=3)
    cfg = TrainConfig(data="synth:", batch_size=2, workers=1, epoch_images=4)
    loaders = make_loaders(
        cfg, stream, torch.utils.data.ConcatDataset([stream]), DistInfo(), torch.device("cpu")
    )
    assert isinstance(loaders.val.dataset, RenderedOnce) and loaders.val.num_workers == 0
    first = [batch["image"] for batch in loaders.val]
    second = [batch["image"] for batch in loaders.val]
    assert rendered == [0, 1, 2]  # the second pass renders nothing
    assert [len(b) for b in first] == [2, 1]
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(first[0][1], stream[1]["image"])  # what a fresh render of index 1 gives


def test_only_rendered_sets_are_kept():
    stream = SynthStream(parse_stream_spec("synth:", 32), length=3)
    folder_like = torch.utils.data.TensorDataset(torch.zeros(3, 1))
    assert is_rendered(stream) and is_rendered(torch.utils.data.ConcatDataset([stream, stream]))
    assert not is_rendered(folder_like)
    assert not is_rendered(torch.utils.data.ConcatDataset([stream, folder_like]))
