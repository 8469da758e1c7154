"""Training smoke test: 2 steps of masked-image pretraining (with checkpoint/resume) and 2 steps of
fine-tuning on a few real rendered windows. Real code paths, tiny budget; never a training run."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edge_ecg.records.leads import STANDARD_12
from edge_ecg.render import RenderSpec
from export.datasets.cache import rendered
from export.datasets.sources import ludb_windows
from export.train.finetune import FinetuneConfig, finetune, predict
from export.train.pretrain import PretrainConfig, mim_loss, patchify, pretrain

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def few_windows(ludb_dir, tmp_path_factory):
    torch.set_num_threads(1)
    ws = ludb_windows(ludb_dir).subset(np.arange(6))
    spec = RenderSpec(layout="12lead", width=64, height=64)
    images = np.asarray(rendered(ws, spec, tmp_path_factory.mktemp("cache"), leads=STANDARD_12, progress=False))
    return ws, images


def test_patchify_matches_the_patch_embedding_order():
    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).reshape(2, 3, 32, 32)
    p = patchify(x, 16)
    assert p.shape == (2, 4, 16 * 16 * 3)
    assert torch.equal(p[0, 1].reshape(16, 16, 3).permute(2, 0, 1), x[0, :, 0:16, 16:32])


def test_pretrain_two_steps_checkpoints_and_resumes(few_windows, tmp_path):
    _, images = few_windows
    cfg = PretrainConfig(size="tiny", img_size=64, steps=2, batch_size=4, warmup_steps=1, threads=1, checkpoint_every=1)
    path = pretrain(images, cfg, tmp_path)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 2 and state["history"][-1]["step"] == 2
    assert np.isfinite([h["loss"] for h in state["history"]]).all()
    cfg.steps = 3  # resume continues from step 2, not from scratch
    pretrain(images, cfg, tmp_path, resume=True)
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    assert state["step"] == 3 and [h["step"] for h in state["history"]] == [2, 3]
    from export.models.heartbeit import load_checkpoint

    model, extra = load_checkpoint(path)
    assert extra["pretrain"]["mask_ratio"] == 0.4 and model.cfg.img_size == 64


def test_gpu_side_normalisation_is_bit_identical_to_the_renderers(few_windows):
    """Training on a GPU converts uint8 pixels there (``model_input_torch``); it must give the very
    floats ``to_model_input`` gives serving, for RGB and for the grey images packs hold."""
    from edge_ecg.render import to_model_input
    from export.train.common import ImageStore, model_input_torch, resolve_device

    _, images = few_windows
    rgb = np.array(images)  # a writable copy: torch.from_numpy warns on the read-only cache
    expect = to_model_input(rgb)
    assert np.array_equal(model_input_torch(torch.from_numpy(rgb)).numpy(), expect)
    assert np.array_equal(model_input_torch(torch.from_numpy(rgb[..., 0].copy())).numpy(), expect)
    store = ImageStore(rgb[..., 0].copy(), resolve_device("cpu"))
    assert np.array_equal(store.batch(np.array([1, 3])).numpy(), expect[[1, 3]])


def test_asking_for_a_gpu_that_is_not_there_is_a_config_error():
    from edge_ecg.errors import ConfigError
    from export.train.common import resolve_device

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(ConfigError, match="no CUDA device"):
        resolve_device("cuda")
    assert resolve_device("auto").type == "cpu"


def test_mask_bank_keeps_the_block_masking_ratio():
    from export.train.masking import MaskBank

    rng = np.random.default_rng(0)
    bank = MaskBank((14, 14), 0.4, rng, size=64)
    m = bank.sample(32, rng)
    assert m.shape == (32, 196) and (m.sum(axis=1) == round(0.4 * 196)).all()
    assert len({r.tobytes() for r in m}) > 16  # sampled from many different masks


def test_masked_loss_ignores_unmasked_patches():
    from export.models.heartbeit import create_model
    from export.train.pretrain import _mim_decoder

    torch.manual_seed(0)
    m = create_model("tiny", img_size=32)
    dec = _mim_decoder(m)
    x = torch.randn(1, 3, 32, 32)
    mask = torch.tensor([[True, False, False, False]])
    loss = mim_loss(m, dec, x, mask)
    loss.backward()
    assert torch.isfinite(loss) and m.mask_token.grad is not None and m.mask_token.grad.abs().sum() > 0


def test_finetune_two_steps_from_pretrained_and_random(few_windows, tmp_path):
    ws, images = few_windows
    cfg = FinetuneConfig(size="tiny", img_size=64, steps=2, batch_size=3, eval_every=1, warmup_steps=1, threads=1)
    pre = pretrain(images, PretrainConfig(size="tiny", img_size=64, steps=1, batch_size=3, threads=1), tmp_path)
    for init in (pre, None):
        res = finetune(images[:4], ws.labels[:4], images[4:], ws.labels[4:], cfg, init)
        p = predict(res.model, images)
        assert p.shape == (6, len(ws.label_names)) and ((p >= 0) & (p <= 1)).all()
        assert res.best_step in (1, 2) and len(res.history) >= 1
